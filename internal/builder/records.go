package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/layer"
	"strata/internal/storage"
)

// Cache records: small JSON documents that point at stored blobs. Each is
// written after the blobs it names, and checked against them when read,
// so a crash leaves at most an unreferenced blob, never a record that
// points at nothing.

// Result is a built image: its OCI and Docker manifests, both stored as
// blobs. It is the image record, stored under the image key.
type Result struct {
	Name string `json:"name"`
	// OCI is the OCI manifest or index.
	OCI Ref `json:"oci"`
	// Docker is the Docker schema 2 manifest or manifest list.
	Docker Ref `json:"docker"`
	// LayersPacked is how many layers this call packed rather than took
	// from the cache (not stored in the image record).
	LayersPacked int `json:"-"`
	// Cached is set when the whole image came from the cache.
	Cached bool `json:"-"`
}

// Ref points at a stored manifest.
type Ref struct {
	Digest    string          `json:"digest"`
	MediaType types.MediaType `json:"mediaType"`
	Size      int64           `json:"size"`
}

func (b *Builder) loadResult(ctx context.Context, key string) (Result, error) {
	raw, err := b.get(ctx, storage.ImageRecordKey(key))
	if err != nil {
		return Result{}, err
	}
	var r Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return Result{}, fmt.Errorf("builder: image record %s: %w", key, err)
	}
	for _, d := range []string{r.OCI.Digest, r.Docker.Digest} {
		if _, err := b.opts.Store.Stat(ctx, storage.BlobKey(d)); err != nil {
			return Result{}, err
		}
	}
	return r, nil
}

func (b *Builder) saveResult(ctx context.Context, key string, r Result) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.put(ctx, storage.ImageRecordKey(key), raw)
}

// layerRecord is the cached descriptor of a packed layer.
type layerRecord struct {
	Digest    string          `json:"digest"`
	DiffID    string          `json:"diffID"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType"`
}

func (b *Builder) saveLayer(ctx context.Context, rkey string, rec layerRecord) error {
	raw, _ := json.Marshal(rec)
	return b.put(ctx, rkey, raw)
}

func (b *Builder) loadLayer(ctx context.Context, rkey string) (v1.Layer, error) {
	raw, err := b.get(ctx, rkey)
	if err != nil {
		return nil, err
	}
	var rec layerRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("builder: layer record %s: %w", rkey, err)
	}
	// The record is written after its blob; check the blob is still there.
	if _, err := b.opts.Store.Stat(ctx, storage.BlobKey(rec.Digest)); err != nil {
		return nil, err
	}
	return b.storedLayer(rec)
}

// storedLayer is the layer a record describes, read from storage.
func (b *Builder) storedLayer(rec layerRecord) (v1.Layer, error) {
	dg, err := v1.NewHash(rec.Digest)
	if err != nil {
		return nil, err
	}
	diff, err := v1.NewHash(rec.DiffID)
	if err != nil {
		return nil, err
	}
	st := b.opts.Store
	return layer.NewStored(layer.Desc{Digest: dg, DiffID: diff, Size: rec.Size, MediaType: rec.MediaType}, func() (io.ReadCloser, error) {
		return st.Open(context.Background(), storage.BlobKey(rec.Digest))
	})
}
