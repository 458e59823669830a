// Package storage is where strata keeps blobs, manifests and its caches: a
// small key/value interface with staged writes. A writer's bytes become
// visible under a key only when Commit succeeds; Cancel, a failed Commit or a
// crash leave nothing behind under any key. Every backend passes the shared
// suite in storagetest.
package storage

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// ErrNotFound is returned (possibly wrapped) when a key does not exist.
var ErrNotFound = errors.New("storage: not found")

// Info describes a stored object.
type Info struct {
	Size    int64
	ModTime time.Time
}

// Store is a flat namespace of keys ("a/b/c", no leading slash, no "..").
type Store interface {
	// Stat returns the object's size, or ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Open returns a seekable reader of the object, or ErrNotFound.
	Open(ctx context.Context, key string) (io.ReadSeekCloser, error)
	// Create starts a staged write. Nothing is visible until Commit.
	Create(ctx context.Context) (Writer, error)
	// Delete removes the key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the keys under prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
}

// Writer is a staged write.
type Writer interface {
	io.Writer
	// Size is the number of bytes written so far.
	Size() int64
	// Commit makes the written bytes visible under key, atomically,
	// replacing any previous object. The writer is unusable afterwards.
	Commit(ctx context.Context, key string) error
	// Cancel discards the written bytes. Safe to call after Commit (no-op).
	Cancel(ctx context.Context) error
}

// Redirector is implemented by backends that can hand clients a time-limited
// URL for reading an object directly (pre-signed URLs on object storage).
type Redirector interface {
	RedirectURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// Mover is implemented by backends that can move an object to another key
// atomically and without copying its bytes (a rename on a filesystem).
// After a successful Move the object is visible under to, complete, and no
// longer under from; on failure nothing is visible under to.
type Mover interface {
	Move(ctx context.Context, from, to string) error
}

// ValidKey reports whether key is a well-formed storage key.
func ValidKey(key string) bool {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return false
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return !strings.ContainsAny(key, "\x00\\")
}
