package layer

import (
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// stored is a partial.CompressedLayer (plus DiffID and Descriptor) whose
// compressed bytes are kept elsewhere and opened on demand.
type stored struct {
	d    Desc
	open func() (io.ReadCloser, error)
}

// NewStored returns a v1.Layer whose compressed bytes are stored elsewhere
// (storage, a cache directory): open is called each time the blob is read.
// Digest, DiffID, Size and MediaType come from d and never read the blob;
// Uncompressed decompresses what open returns. The layer works unchanged
// with go-containerregistry's remote.Write, layout and tarball.
func NewStored(d Desc, open func() (io.ReadCloser, error)) (v1.Layer, error) {
	if d.Digest.Algorithm == "" || d.DiffID.Algorithm == "" {
		return nil, fmt.Errorf("layer: stored layer needs a digest and a diffID")
	}
	if d.Size < 0 {
		return nil, fmt.Errorf("layer: stored layer %s has negative size %d", d.Digest, d.Size)
	}
	if open == nil {
		return nil, fmt.Errorf("layer: stored layer %s has no opener", d.Digest)
	}
	if d.MediaType == "" {
		d.MediaType = types.OCILayer
	}
	return partial.CompressedToLayer(&stored{d: d, open: open})
}

// Digest implements partial.CompressedLayer.
func (s *stored) Digest() (v1.Hash, error) { return s.d.Digest, nil }

// DiffID implements partial.WithDiffID.
func (s *stored) DiffID() (v1.Hash, error) { return s.d.DiffID, nil }

// Size implements partial.CompressedLayer.
func (s *stored) Size() (int64, error) { return s.d.Size, nil }

// MediaType implements partial.CompressedLayer.
func (s *stored) MediaType() (types.MediaType, error) { return s.d.MediaType, nil }

// Compressed implements partial.CompressedLayer.
func (s *stored) Compressed() (io.ReadCloser, error) {
	rc, err := s.open()
	if err != nil {
		return nil, fmt.Errorf("layer: open blob %s: %w", s.d.Digest, err)
	}
	return rc, nil
}

// Descriptor lets partial.Descriptor describe the layer without reading it.
func (s *stored) Descriptor() (*v1.Descriptor, error) {
	return &v1.Descriptor{MediaType: s.d.MediaType, Size: s.d.Size, Digest: s.d.Digest}, nil
}
