package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/closure"
	"strata/internal/image"
	"strata/internal/nix"
	"strata/internal/storage"
)

// SBOMs.
//
// Every image manifest a build stores (per platform, the OCI and the
// Docker one) gets an SBOM: the SPDX document of its closure
// (image.SBOM) stored as a blob, and an OCI artifact manifest whose
// subject is the image manifest:
//
//	artifactType  application/spdx+json
//	config        the empty descriptor (application/vnd.oci.empty.v1+json, {})
//	layers        the SPDX document (application/spdx+json)
//	subject       the image manifest
//	annotations   org.opencontainers.image.created = the image's creation time
//
// The image manifests are unchanged: the SBOM points at the image, never
// the other way round. A record per subject,
//
//	cache/referrers/<alg>-<hex>.json   {"manifests": [descriptor, ...]}
//
// lists the artifact manifests; Referrers answers the registry's referrers
// API for on-demand names from it, and the garbage collector keeps what it
// names (the subject's digest is only in the key, so a record never keeps
// an image alive by itself).

// SBOMArtifactType is the artifactType of SBOM artifact manifests.
const SBOMArtifactType = image.SPDXMediaType

// emptyJSON is the OCI empty descriptor's content.
var emptyJSON = []byte("{}")

// referrersRecord is a stored list of a subject's referrers.
type referrersRecord struct {
	Manifests []v1.Descriptor `json:"manifests"`
}

// artifactManifest is an OCI image manifest carrying an artifact; its
// field order is the image-spec's.
type artifactManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        v1.Descriptor     `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// sbomPackages are the built packages with the metadata Resolve found.
func sbomPackages(r *resolved, built []nix.Package) []nix.Package {
	out := make([]nix.Package, 0, len(built))
	for _, p := range built {
		if m, ok := r.meta[p.Attr]; ok {
			m.OutPath = p.OutPath
			if m.Name == "" {
				m.Name = p.Name
			}
			p = m
		}
		out = append(out, p)
	}
	return out
}

// readPURLs reads the package URLs the closure's store paths list in their
// image.PURLFile (under root, default "/"): one per line, each starting
// "pkg:". A path without the file has none.
func readPURLs(root string, g *closure.Graph) (map[string][]string, error) {
	if root == "" {
		root = "/"
	}
	out := map[string][]string{}
	for _, p := range g.Sorted() {
		f := filepath.Join(root, p, image.PURLFile)
		data, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			if !strings.HasPrefix(line, "pkg:") || strings.ContainsAny(line, " \t") {
				return nil, fmt.Errorf("%s line %d: %q is not a package URL (pkg:TYPE/NAME@VERSION)", p+"/"+image.PURLFile, i+1, line)
			}
			out[p] = append(out[p], line)
		}
	}
	return out, nil
}

// attachSBOM stores the SBOM of one platform's image (closure graph,
// packages) and an artifact manifest for each of subjects, and records
// them as the subjects' referrers.
func (b *Builder) attachSBOM(ctx context.Context, name string, img v1.Image, graph *closure.Graph, pkgs []nix.Package, subjects ...Ref) error {
	cfg, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("builder: sbom: %w", err)
	}
	version := b.opts.Version
	if version == "" {
		version = "dev"
	}
	purls, err := readPURLs(b.opts.StoreRoot, graph)
	if err != nil {
		return fmt.Errorf("builder: sbom: %w", err)
	}
	doc, err := image.SBOM(graph, image.SBOMOptions{Name: name, ConfigDigest: cfg.String(), Created: b.opts.MTime,
		Tool: "strata-" + version, Packages: pkgs, PURLs: purls})
	if err != nil {
		return fmt.Errorf("builder: %w", err)
	}
	docD, err := b.putBlob(ctx, doc)
	if err != nil {
		return fmt.Errorf("builder: store sbom: %w", err)
	}
	emptyD, err := b.putBlob(ctx, emptyJSON)
	if err != nil {
		return fmt.Errorf("builder: store sbom: %w", err)
	}
	docH, _ := v1.NewHash(docD)
	emptyH, _ := v1.NewHash(emptyD)
	created := b.opts.MTime.UTC().Format(time.RFC3339)
	for _, s := range subjects {
		sh, err := v1.NewHash(s.Digest)
		if err != nil {
			return fmt.Errorf("builder: sbom subject: %w", err)
		}
		m := artifactManifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			ArtifactType:  SBOMArtifactType,
			Config:        v1.Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: emptyH, Size: int64(len(emptyJSON)), Data: emptyJSON},
			Layers: []v1.Descriptor{{MediaType: SBOMArtifactType, Digest: docH, Size: int64(len(doc)),
				Annotations: map[string]string{"org.opencontainers.image.title": "sbom.spdx.json"}}},
			Subject:     &v1.Descriptor{MediaType: s.MediaType, Digest: sh, Size: s.Size},
			Annotations: map[string]string{"org.opencontainers.image.created": created},
		}
		raw, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("builder: sbom manifest: %w", err)
		}
		d, err := b.putBlob(ctx, raw)
		if err != nil {
			return fmt.Errorf("builder: store sbom manifest: %w", err)
		}
		h, _ := v1.NewHash(d)
		rec, err := json.Marshal(referrersRecord{Manifests: []v1.Descriptor{{MediaType: types.OCIManifestSchema1, Digest: h,
			Size: int64(len(raw)), ArtifactType: SBOMArtifactType, Annotations: m.Annotations}}})
		if err != nil {
			return fmt.Errorf("builder: referrers record: %w", err)
		}
		if err := b.put(ctx, storage.ReferrersRecordKey(s.Digest), rec); err != nil {
			return fmt.Errorf("builder: store referrers record: %w", err)
		}
	}
	return nil
}

// Referrers implements registry.ReferrersBackend: the stored manifests
// whose subject is digest (the SBOM of an image this builder built), the
// same under every name, as all content is. None when digest is not an
// image the builder built (or was built before SBOMs were attached).
func (b *Builder) Referrers(ctx context.Context, repo, digest string) ([]v1.Descriptor, error) {
	if _, err := v1.NewHash(digest); err != nil {
		return nil, fmt.Errorf("builder: referrers: %w", err)
	}
	raw, err := b.get(ctx, storage.ReferrersRecordKey(digest))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("builder: referrers of %s: %w", digest, err)
	}
	var rec referrersRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("builder: referrers record of %s: %w", digest, err)
	}
	out := rec.Manifests[:0]
	for _, d := range rec.Manifests {
		// The record is written after its blobs; skip what is gone.
		if _, err := b.opts.Store.Stat(ctx, storage.BlobKey(d.Digest.String())); err == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// LoadReferrer returns a referrer Referrers listed (an SBOM artifact) as a
// v1.Image for the sinks: layout.AppendImage writes it with its
// artifactType, remote.Write pushes it with its subject.
func (b *Builder) LoadReferrer(ctx context.Context, d v1.Descriptor) (v1.Image, error) {
	raw, err := b.ReadBlob(ctx, d.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("builder: referrer %s: %w", d.Digest, err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("builder: referrer %s: %w", d.Digest, err)
	}
	cfg := m.Config.Data
	if cfg == nil {
		if cfg, err = b.ReadBlob(ctx, m.Config.Digest.String()); err != nil {
			return nil, fmt.Errorf("builder: referrer %s config: %w", d.Digest, err)
		}
	}
	desc := d
	desc.Size = int64(len(raw))
	return partial.CompressedToImage(&referrerImage{ctx: ctx, b: b, raw: raw, m: &m, cfg: cfg, desc: desc})
}

// referrerImage is partial.CompressedImageCore over a stored artifact
// manifest whose layers are small blobs.
type referrerImage struct {
	ctx  context.Context
	b    *Builder
	raw  []byte
	m    *v1.Manifest
	cfg  []byte
	desc v1.Descriptor
}

func (r *referrerImage) RawConfigFile() ([]byte, error)      { return r.cfg, nil }
func (r *referrerImage) MediaType() (types.MediaType, error) { return r.desc.MediaType, nil }
func (r *referrerImage) RawManifest() ([]byte, error)        { return r.raw, nil }

// Descriptor keeps the artifactType and annotations in layouts' index.json.
func (r *referrerImage) Descriptor() (*v1.Descriptor, error) {
	d := r.desc
	return &d, nil
}

func (r *referrerImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range r.m.Layers {
		if l.Digest != h {
			continue
		}
		data, err := r.b.ReadBlob(r.ctx, h.String())
		if err != nil {
			return nil, fmt.Errorf("builder: referrer layer %s: %w", h, err)
		}
		if int64(len(data)) != l.Size {
			return nil, fmt.Errorf("builder: referrer layer %s: %d bytes stored, %d expected", h, len(data), l.Size)
		}
		return static.NewLayer(bytes.Clone(data), l.MediaType), nil
	}
	return nil, fmt.Errorf("builder: referrer has no layer %s", h)
}
