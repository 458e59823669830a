package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// StagingMaxAge is how old a file in StagingDir must be before NewFS removes
// it. Younger files may belong to a writer of another process that shares
// the directory, so they are left alone.
const StagingMaxAge = time.Hour

// FS is a Store on a local filesystem directory.
//
// Layout: the object under key "a/b/c" is the file DIR/a/b/c. Writes go to a
// temporary file in DIR/_staging (on the same filesystem, so a rename is
// atomic); Commit fsyncs the file, creates the parent directories of the
// key and renames the file into place, then fsyncs the parent directory.
// Readers therefore see either the previous object or the complete new one,
// never a mix; concurrent writers of one key each rename a complete file and
// the last Commit wins.
//
// Crash safety: a crash at any point leaves at most a temporary file in
// DIR/_staging, never a partial object under a key. NewFS removes staging
// files older than StagingMaxAge when it starts.
//
// Keys must pass ValidKey and must not start with "_staging"; other keys
// give an error wrapping ErrInvalidKey. A key that is a directory of other
// keys ("blobs" when "blobs/x" exists) is not an object: Stat and Open
// answer ErrNotFound, and committing to it fails.
type FS struct {
	dir     string
	staging string

	// createTemp opens the staging file of a new writer; tests replace it
	// to simulate a full disk.
	createTemp func(dir string) (stagedFile, error)
}

// stagedFile is the part of *os.File a writer uses.
type stagedFile interface {
	io.Writer
	Name() string
	Sync() error
	Close() error
}

var _ Store = (*FS)(nil)

// NewFS returns a filesystem store rooted at dir, creating dir if needed,
// and removes staging files older than StagingMaxAge left by a crash.
func NewFS(dir string) (*FS, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: fs root %q: %w", dir, err)
	}
	staging := filepath.Join(abs, StagingDir)
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return nil, fmt.Errorf("storage: fs staging dir: %w", err)
	}
	s := &FS{
		dir:     abs,
		staging: staging,
		createTemp: func(dir string) (stagedFile, error) {
			return os.CreateTemp(dir, "w-*")
		},
	}
	if err := s.cleanStaging(time.Now().Add(-StagingMaxAge)); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the root directory of the store.
func (s *FS) Dir() string { return s.dir }

// cleanStaging removes staging files last modified before cutoff.
func (s *FS) cleanStaging(cutoff time.Time) error {
	entries, err := os.ReadDir(s.staging)
	if err != nil {
		return fmt.Errorf("storage: read staging dir: %w", err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue // removed concurrently
		}
		if info.ModTime().Before(cutoff) {
			if err := os.RemoveAll(filepath.Join(s.staging, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("storage: clean staging: %w", err)
			}
		}
	}
	return nil
}

// path validates key and returns its file path.
func (s *FS) path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if key == StagingDir || strings.HasPrefix(key, StagingDir+"/") {
		return "", fmt.Errorf("%w: %q is reserved", ErrInvalidKey, key)
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

// errNotDir is what the OS answers when a key's parent is an object.
var errNotDir error = syscall.ENOTDIR

// notFound reports whether err means the key has no object.
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir)
}

// Stat implements Store.
func (s *FS) Stat(ctx context.Context, key string) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	p, err := s.path(key)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if notFound(err) {
			return Info{}, fmt.Errorf("stat %q: %w", key, ErrNotFound)
		}
		return Info{}, fmt.Errorf("storage: stat %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("stat %q: %w", key, ErrNotFound)
	}
	return Info{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Open implements Store. The reader is an *os.File.
func (s *FS) Open(ctx context.Context, key string) (io.ReadSeekCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("open %q: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("storage: open %q: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: open %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open %q: %w", key, ErrNotFound)
	}
	return f, nil
}

// Create implements Store.
func (s *FS) Create(ctx context.Context) (Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := s.createTemp(s.staging)
	if errors.Is(err, fs.ErrNotExist) {
		// The staging dir was removed under us; recreate it once.
		if err = os.MkdirAll(s.staging, 0o755); err == nil {
			f, err = s.createTemp(s.staging)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("storage: create staging file: %w", err)
	}
	return &fsWriter{s: s, f: f}, nil
}

// Delete implements Store. Empty parent directories are removed too.
func (s *FS) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return fmt.Errorf("storage: delete %q: %w", key, err)
	}
	if fi.IsDir() {
		return nil // not an object
	}
	if err := os.Remove(p); err != nil && !notFound(err) {
		return fmt.Errorf("storage: delete %q: %w", key, err)
	}
	// Best effort: prune empty parents. os.Remove fails on a non-empty
	// directory, so a concurrent Commit into it is never harmed; a Commit
	// whose fresh parent is pruned before its rename retries.
	for dir := filepath.Dir(p); dir != s.dir && strings.HasPrefix(dir, s.dir); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// List implements Store: every key that starts with prefix, sorted.
func (s *FS) List(ctx context.Context, prefix string) ([]string, error) {
	if err := CheckPrefix(prefix); err != nil {
		return nil, err
	}
	// Walk from the deepest complete directory of the prefix.
	base := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		base = prefix[:i]
	}
	root := s.dir
	if base != "" {
		root = filepath.Join(s.dir, filepath.FromSlash(base))
	}
	var keys []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && notFound(err) {
				return fs.SkipAll
			}
			if notFound(err) {
				return nil // removed while walking
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		rel, rerr := filepath.Rel(s.dir, p)
		if rerr != nil {
			return rerr
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if key == StagingDir {
				return fs.SkipDir
			}
			// Prune directories that cannot hold a matching key.
			if key != "." && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("storage: list %q: %w", prefix, err)
	}
	sort.Strings(keys)
	return keys, nil
}

var _ Mover = (*FS)(nil)

// Move implements Mover with a rename; to's parent directories are
// created, and the parent is fsynced afterwards.
func (s *FS) Move(ctx context.Context, from, to string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	src, err := s.path(from)
	if err != nil {
		return err
	}
	dst, err := s.path(to)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		if notFound(err) {
			return fmt.Errorf("move %q: %w", from, ErrNotFound)
		}
		return fmt.Errorf("storage: move %q: %w", from, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("move %q: %w", from, ErrNotFound)
	}
	dir := filepath.Dir(dst)
	for attempt := 0; ; attempt++ {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			if err = os.Rename(src, dst); err == nil {
				break
			}
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 5 {
			if notFound(err) {
				if _, serr := os.Stat(src); notFound(serr) {
					return fmt.Errorf("move %q: %w", from, ErrNotFound)
				}
			}
			return fmt.Errorf("storage: move %q to %q: %w", from, to, err)
		}
	}
	syncDir(dir)
	return nil
}

// fsWriter is a staged write to a temporary file.
type fsWriter struct {
	staging
	s *FS
	f stagedFile
}

func (w *fsWriter) Write(p []byte) (int, error) {
	return w.write(p, func(p []byte) (int, error) {
		n, err := w.f.Write(p)
		if err != nil {
			return n, fmt.Errorf("storage: write staging file: %w", err)
		}
		return n, nil
	})
}

// Commit implements Writer. On any failure the staging file is removed and
// nothing is visible under key.
func (w *fsWriter) Commit(ctx context.Context, key string) (err error) {
	if !w.finish() {
		return errWriterDone
	}
	defer w.mu.Unlock()
	tmp := w.f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				w.f.Close()
			}
			os.Remove(tmp)
		}
	}()
	p, err := w.s.path(key)
	if err != nil {
		return err
	}
	if w.err != nil {
		return fmt.Errorf("storage: commit %q: %w", key, w.err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("storage: commit %q: sync: %w", key, err)
	}
	closed = true
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("storage: commit %q: close: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: commit %q: %w", key, err)
	}
	dir := filepath.Dir(p)
	// A concurrent Delete may prune a freshly made parent before the
	// rename; retry a few times.
	for attempt := 0; ; attempt++ {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			if err = os.Rename(tmp, p); err == nil {
				break
			}
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 5 {
			return fmt.Errorf("storage: commit %q: %w", key, err)
		}
	}
	syncDir(dir)
	return nil
}

// Cancel implements Writer.
func (w *fsWriter) Cancel(ctx context.Context) error {
	if !w.finish() {
		return nil
	}
	defer w.mu.Unlock()
	w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: cancel: %w", err)
	}
	return nil
}

// syncDir fsyncs a directory so a rename into it is durable. Best effort:
// some filesystems do not support it.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}
