package builder

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/storage"
)

// Blob I/O: every write is staged and committed whole (storage.Store), so
// nothing half-written is ever visible under a key.

func (b *Builder) putManifest(ctx context.Context, m interface {
	RawManifest() ([]byte, error)
	MediaType() (types.MediaType, error)
}) (Ref, error) {
	raw, err := m.RawManifest()
	if err != nil {
		return Ref{}, err
	}
	mt, err := m.MediaType()
	if err != nil {
		return Ref{}, err
	}
	d, err := b.putBlob(ctx, raw)
	if err != nil {
		return Ref{}, err
	}
	return Ref{Digest: d, MediaType: mt, Size: int64(len(raw))}, nil
}

// putBlob stores data under its digest unless it is there already.
func (b *Builder) putBlob(ctx context.Context, data []byte) (string, error) {
	d := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	key := storage.BlobKey(d)
	if info, err := b.opts.Store.Stat(ctx, key); err == nil && info.Size == int64(len(data)) {
		return d, nil
	}
	return d, b.put(ctx, key, data)
}

func (b *Builder) put(ctx context.Context, key string, data []byte) error {
	w, err := b.opts.Store.Create(ctx)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		_ = w.Cancel(ctx)
		return err
	}
	return w.Commit(ctx, key)
}

func (b *Builder) get(ctx context.Context, key string) ([]byte, error) {
	r, err := b.opts.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, 64<<20))
}

// ReadBlob returns a stored blob's bytes (manifests and configs).
func (b *Builder) ReadBlob(ctx context.Context, digest string) ([]byte, error) {
	return b.get(ctx, storage.BlobKey(digest))
}
