package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/layer"
	"strata/internal/storage"
)

// Artifact is a stored image or index as go-containerregistry values, for
// the sinks (layout, tarball, remote). Exactly one of Image and Index is
// set.
type Artifact struct {
	Image v1.Image
	Index v1.ImageIndex
}

// Load returns the stored manifest ref points at as an image or an index
// whose blobs are read from storage on demand.
func (b *Builder) Load(ctx context.Context, ref Ref) (Artifact, error) {
	raw, err := b.ReadBlob(ctx, ref.Digest)
	if err != nil {
		return Artifact{}, fmt.Errorf("builder: manifest %s: %w", ref.Digest, err)
	}
	switch ref.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return Artifact{}, fmt.Errorf("builder: index %s: %w", ref.Digest, err)
		}
		return Artifact{Index: &storedIndex{b: b, raw: raw, mt: ref.MediaType, m: im}}, nil
	default:
		img, err := b.loadImage(ctx, raw, ref.MediaType)
		return Artifact{Image: img}, err
	}
}

func (b *Builder) loadImage(ctx context.Context, raw []byte, mt types.MediaType) (v1.Image, error) {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("builder: manifest: %w", err)
	}
	cfg, err := b.ReadBlob(ctx, m.Config.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("builder: config %s: %w", m.Config.Digest, err)
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(cfg, &cf); err != nil {
		return nil, fmt.Errorf("builder: config %s: %w", m.Config.Digest, err)
	}
	si := &storedImage{b: b, raw: raw, mt: mt, m: m, cfg: cfg, diffs: map[v1.Hash]v1.Hash{}}
	for i, l := range m.Layers {
		if i < len(cf.RootFS.DiffIDs) {
			si.diffs[l.Digest] = cf.RootFS.DiffIDs[i]
		}
	}
	return partial.CompressedToImage(si)
}

// storedImage is partial.CompressedImageCore over stored blobs.
type storedImage struct {
	b     *Builder
	raw   []byte
	mt    types.MediaType
	m     *v1.Manifest
	cfg   []byte
	diffs map[v1.Hash]v1.Hash
}

func (s *storedImage) RawConfigFile() ([]byte, error)      { return s.cfg, nil }
func (s *storedImage) MediaType() (types.MediaType, error) { return s.mt, nil }
func (s *storedImage) RawManifest() ([]byte, error)        { return s.raw, nil }

func (s *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range s.m.Layers {
		if l.Digest != h {
			continue
		}
		st := s.b.opts.Store
		key := storage.BlobKey(h.String())
		return layer.NewStored(layer.Desc{Digest: h, DiffID: s.diffs[h], Size: l.Size, MediaType: l.MediaType}, func() (io.ReadCloser, error) {
			return st.Open(context.Background(), key)
		})
	}
	return nil, fmt.Errorf("builder: image has no layer %s", h)
}

// storedIndex is a v1.ImageIndex over stored blobs.
type storedIndex struct {
	b   *Builder
	raw []byte
	mt  types.MediaType
	m   *v1.IndexManifest
}

func (s *storedIndex) MediaType() (types.MediaType, error)       { return s.mt, nil }
func (s *storedIndex) Digest() (v1.Hash, error)                  { return partial.Digest(s) }
func (s *storedIndex) Size() (int64, error)                      { return int64(len(s.raw)), nil }
func (s *storedIndex) IndexManifest() (*v1.IndexManifest, error) { return s.m, nil }
func (s *storedIndex) RawManifest() ([]byte, error)              { return s.raw, nil }
func (s *storedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("builder: nested index %s", h)
}

func (s *storedIndex) Image(h v1.Hash) (v1.Image, error) {
	for _, d := range s.m.Manifests {
		if d.Digest == h {
			raw, err := s.b.ReadBlob(context.Background(), h.String())
			if err != nil {
				return nil, err
			}
			return s.b.loadImage(context.Background(), raw, d.MediaType)
		}
	}
	return nil, fmt.Errorf("builder: index has no manifest %s", h)
}
