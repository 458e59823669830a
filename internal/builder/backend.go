package builder

import (
	"context"
	"slices"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/registry"
	"strata/internal/spec"
)

// Manifest implements registry.Backend: it parses the on-demand name,
// builds (or finds) the image and answers with the OCI manifest, or the
// Docker one when the client accepts Docker types and no OCI type.
func (b *Builder) Manifest(ctx context.Context, repo, tag string, accept []string) (registry.Manifest, error) {
	s, err := spec.Parse(repo, tag)
	if err != nil {
		return registry.Manifest{}, err
	}
	r, err := b.Build(ctx, s)
	if err != nil {
		return registry.Manifest{}, err
	}
	ref := r.OCI
	if WantsDocker(accept) {
		ref = r.Docker
	}
	body, err := b.ReadBlob(ctx, ref.Digest)
	if err != nil {
		return registry.Manifest{}, err
	}
	return registry.Manifest{Body: body, MediaType: string(ref.MediaType), Digest: ref.Digest}, nil
}

// Tags implements registry.Backend. An on-demand name exists at every ref of
// the package source; "latest" is the one that always does.
func (b *Builder) Tags(ctx context.Context, repo string) ([]string, error) {
	if _, err := spec.Parse(repo, ""); err != nil {
		return nil, err
	}
	return []string{"latest"}, nil
}

// WantsDocker reports whether a client's Accept list asks for Docker schema 2
// types and for no OCI manifest type. An empty list gets OCI.
func WantsDocker(accept []string) bool {
	docker := false
	for _, a := range accept {
		switch types.MediaType(a) {
		case types.OCIManifestSchema1, types.OCIImageIndex:
			return false
		case types.DockerManifestSchema2, types.DockerManifestList:
			docker = true
		}
	}
	return docker && !slices.Contains(accept, "*/*")
}
