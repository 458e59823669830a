// Package ondemand is the registry's on-demand backend: it turns the image
// name a client pulls (internal/spec) into a build request
// (internal/buildreq), has the builder build it through its one entry
// point, Builder.Build, and answers with the stored manifest.
//
// It sits between the registry and the builder so that neither knows the
// other: the registry only defines the Backend it needs, the builder only
// takes requests, and the name grammar stays with serving.
package ondemand

import (
	"context"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/builder"
	"strata/internal/buildreq"
	"strata/internal/layer"
	"strata/internal/registry"
	"strata/internal/spec"
)

// Backend implements registry.Backend and registry.ReferrersBackend over
// a Builder.
type Backend struct {
	b *builder.Builder
}

// New returns the on-demand backend of b.
func New(b *builder.Builder) *Backend { return &Backend{b: b} }

var (
	_ registry.Backend          = (*Backend)(nil)
	_ registry.ReferrersBackend = (*Backend)(nil)
)

// Manifest implements registry.Backend: it parses the on-demand name,
// builds (or finds) the image and answers with the OCI manifest, or the
// Docker one when the client accepts Docker types and no OCI type.
func (o *Backend) Manifest(ctx context.Context, repo, tag string, accept []string) (registry.Manifest, error) {
	s, err := spec.Parse(repo, tag)
	if err != nil {
		return registry.Manifest{}, err
	}
	r, err := o.b.Build(ctx, Request(s))
	if err != nil {
		return registry.Manifest{}, err
	}
	ref := r.OCI
	if wantsDocker(accept) {
		ref = r.Docker
	}
	body, err := o.b.ReadBlob(ctx, ref.Digest)
	if err != nil {
		return registry.Manifest{}, err
	}
	return registry.Manifest{Body: body, MediaType: string(ref.MediaType), Digest: ref.Digest}, nil
}

// Tags implements registry.Backend. An on-demand name exists at every ref of
// the package source; "latest" is the one that always does.
func (o *Backend) Tags(ctx context.Context, repo string) ([]string, error) {
	if _, err := spec.Parse(repo, ""); err != nil {
		return nil, err
	}
	return []string{"latest"}, nil
}

// Referrers implements registry.ReferrersBackend with the builder's
// records (the SBOMs of the images it built).
func (o *Backend) Referrers(ctx context.Context, repo, digest string) ([]v1.Descriptor, error) {
	return o.b.Referrers(ctx, repo, digest)
}

// Request maps an on-demand name onto a build request.
func Request(s spec.Spec) buildreq.Request {
	req := buildreq.Request{Name: s.Name(), Ref: s.Ref, Shell: s.Shell, Packages: s.Packages}
	if s.NixSnapshotter {
		req.Format = buildreq.FormatNixSnapshotter
	}
	if s.Platform != "" {
		req.Platforms = []string{s.Platform}
	}
	if s.Buildpacks {
		req.Users = []layer.User{{Name: "cnb", UID: 1000, GID: 1000, Home: "/home/cnb", Shell: "/bin/sh"}}
		req.Groups = []layer.Group{{Name: "cnb", GID: 1000}}
		req.Files = []layer.File{{Path: "/home/cnb", Dir: true, Mode: 0o755, UID: 1000, GID: 1000}}
		req.Config.User = "1000:1000"
		req.Config.Labels = map[string]string{"io.buildpacks.stack.id": "strata." + strings.ReplaceAll(s.Ref, "/", "-")}
	}
	return req
}

// wantsDocker reports whether a client's Accept list asks for Docker schema 2
// types and for no OCI manifest type. An empty list gets OCI.
func wantsDocker(accept []string) bool {
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
