package registry

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ReferrersBackend is an optional interface of a Backend: the referrers
// of a manifest under an on-demand name (an SBOM the backend attached to
// an image it built, say). A Backend without it has no referrers for
// on-demand names.
type ReferrersBackend interface {
	// Referrers returns the descriptors of the stored manifests whose
	// subject is digest, as seen from repo; none (and no error) when there
	// are none. Each descriptor's manifest must be stored as a blob under
	// its digest, so that clients can pull it by digest.
	Referrers(ctx context.Context, repo, digest string) ([]v1.Descriptor, error)
}

// backendReferrers asks the backend, when it can answer, for the referrers
// of digest under the on-demand name repo.
func (h *handler) backendReferrers(ctx context.Context, repo, digest string) ([]descriptor, error) {
	rb, ok := h.backend.(ReferrersBackend)
	if !ok {
		return nil, nil
	}
	ds, err := rb.Referrers(ctx, repo, digest)
	if err != nil {
		return nil, err
	}
	out := make([]descriptor, 0, len(ds))
	for _, d := range ds {
		out = append(out, descriptor{MediaType: string(d.MediaType), Digest: d.Digest.String(), Size: d.Size,
			ArtifactType: d.ArtifactType, Annotations: d.Annotations})
	}
	return out, nil
}
