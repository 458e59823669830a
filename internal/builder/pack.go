package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"strata/internal/layer"
	"strata/internal/layering"
	"strata/internal/storage"
)

// stats counts what one build did.
type stats struct {
	packed atomic.Int64
}

// storePathLayer returns the layer of a group of store paths, packing it
// only when no stored layer has the same paths and options.
func (b *Builder) storePathLayer(ctx context.Context, grp layering.Group, st *stats) (v1.Layer, error) {
	key := b.layerKey(grp.Paths...)
	return b.cachedLayer(ctx, key, func(w io.Writer) error {
		return layer.WriteStorePaths(ctx, w, grp.Paths, layer.Options{Root: b.opts.StoreRoot, MTime: b.opts.MTime})
	}, st)
}

// cachedLayer returns the stored layer under key, or packs what write
// writes, stores the blob and then its record. Concurrent calls for one
// key pack once; at most Options.Jobs layers are packed at a time.
func (b *Builder) cachedLayer(ctx context.Context, key string, write func(io.Writer) error, st *stats) (v1.Layer, error) {
	rkey := storage.LayerRecordKey(key)
	if l, err := b.loadLayer(ctx, rkey); err == nil {
		b.observer().LayerCached()
		return l, nil
	}
	v, err, _ := b.layers.Do(key, func() (any, error) {
		if l, err := b.loadLayer(ctx, rkey); err == nil {
			b.observer().LayerCached()
			return l, nil
		}
		select {
		case b.packs <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-b.packs }()
		st.packed.Add(1)
		b.observer().LayerPacked()
		w, err := b.opts.Store.Create(ctx)
		if err != nil {
			return nil, err
		}
		d, err := layer.Pack(ctx, w, b.opts.Compression, b.opts.Level, write)
		if err != nil {
			_ = w.Cancel(ctx)
			return nil, err
		}
		if err := w.Commit(ctx, storage.BlobKey(d.Digest.String())); err != nil {
			return nil, err
		}
		rec := layerRecord{Digest: d.Digest.String(), DiffID: d.DiffID.String(), Size: d.Size, MediaType: d.MediaType}
		if err := b.saveLayer(ctx, rkey, rec); err != nil {
			return nil, err
		}
		return b.storedLayer(rec)
	})
	if err != nil {
		return nil, err
	}
	return v.(v1.Layer), nil
}

// customLayer packs the customisation layer. Its content is a function of
// its inputs, so it is cached like any other layer.
func (b *Builder) customLayer(ctx context.Context, c layer.Custom, st *stats) (v1.Layer, []string, error) {
	var buf bytes.Buffer
	res, err := layer.WriteCustomisation(ctx, &buf, c)
	if err != nil {
		return nil, nil, err
	}
	key := b.layerKey("custom", fmt.Sprintf("%x", sha256.Sum256(buf.Bytes())))
	l, err := b.cachedLayer(ctx, key, func(w io.Writer) error {
		_, err := w.Write(buf.Bytes())
		return err
	}, st)
	return l, res.Env, err
}
