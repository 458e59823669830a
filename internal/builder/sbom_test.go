package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/buildreq"
	"strata/internal/image"
	"strata/internal/layer"
)

func TestBuildAttachesSBOM(t *testing.T) {
	ctx := context.Background()
	f, root := newFake(t)
	b := newTestBuilder(t, f, root)
	res, err := b.Build(ctx, buildreq.Request{Name: "curl", Packages: []string{"curl"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []Ref{res.OCI, res.Docker} {
		refs, err := b.Referrers(ctx, "curl", subj.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if len(refs) != 1 || refs[0].ArtifactType != "application/spdx+json" || refs[0].MediaType != types.OCIManifestSchema1 ||
			refs[0].Annotations["org.opencontainers.image.created"] != "1970-01-01T00:00:01Z" {
			t.Fatalf("referrers of %s: %+v", subj.Digest, refs)
		}
		raw, err := b.ReadBlob(ctx, refs[0].Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		var m v1.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if m.Subject == nil || m.Subject.Digest.String() != subj.Digest || m.Subject.MediaType != subj.MediaType || m.Subject.Size != subj.Size {
			t.Errorf("subject %+v, want %+v", m.Subject, subj)
		}
		if m.Config.MediaType != "application/vnd.oci.empty.v1+json" || string(m.Config.Data) != "{}" || m.Config.Size != 2 ||
			len(m.Layers) != 1 || m.Layers[0].MediaType != "application/spdx+json" || int64(len(raw)) != refs[0].Size {
			t.Errorf("artifact manifest: %s", raw)
		}
		doc, err := b.ReadBlob(ctx, m.Layers[0].Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			SPDXVersion  string `json:"spdxVersion"`
			CreationInfo struct {
				Creators []string `json:"creators"`
			} `json:"creationInfo"`
			Packages []struct {
				Name string `json:"name"`
			} `json:"packages"`
		}
		if err := json.Unmarshal(doc, &d); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range d.Packages {
			names = append(names, p.Name)
		}
		if d.SPDXVersion != "SPDX-2.3" || strings.Join(names, ",") != "curl,libc,libssl" || d.CreationInfo.Creators[0] != "Tool: strata-dev" {
			t.Errorf("sbom: %s", doc)
		}
	}
	// A subject the builder did not build has none.
	if refs, err := b.Referrers(ctx, "curl", "sha256:"+strings.Repeat("0", 64)); err != nil || len(refs) != 0 {
		t.Errorf("unknown subject: %v, %v", refs, err)
	}
	if _, err := b.Referrers(ctx, "curl", "nonsense"); err == nil {
		t.Error("a bad digest was accepted")
	}

	// The artifact goes into a layout with its artifactType.
	refs, _ := b.Referrers(ctx, "curl", res.OCI.Digest)
	img, err := b.LoadReferrer(ctx, refs[0])
	if err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(t.TempDir(), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != refs[0].Digest || im.Manifests[0].ArtifactType != "application/spdx+json" {
		t.Fatalf("layout index: %+v", im.Manifests)
	}
	got, _ := img.RawManifest()
	want, _ := b.ReadBlob(ctx, refs[0].Digest.String())
	if !bytes.Equal(got, want) {
		t.Error("layout manifest differs from the stored one")
	}
}

// The SBOM is reproducible: a fresh builder on another store writes the
// same bytes.
func TestSBOMReproducible(t *testing.T) {
	ctx := context.Background()
	digest := func() (string, string) {
		f, root := newFake(t)
		b := newTestBuilder(t, f, root)
		res, err := b.Build(ctx, buildreq.Request{Name: "app", Packages: []string{"app", "tool"}})
		if err != nil {
			t.Fatal(err)
		}
		refs, err := b.Referrers(ctx, "app", res.OCI.Digest)
		if err != nil || len(refs) != 1 {
			t.Fatalf("%v %v", refs, err)
		}
		return res.OCI.Digest, refs[0].Digest.String()
	}
	i1, s1 := digest()
	i2, s2 := digest()
	if i1 != i2 || s1 != s2 {
		t.Fatalf("image %s/%s, sbom %s/%s", i1, i2, s1, s2)
	}
}

// Store paths declare image environment (layer.EnvFile) and package URLs
// (image.PURLFile); the description's env overrides a declared variable.
func TestPackageEnvAndPURLs(t *testing.T) {
	ctx := context.Background()
	f, root := newFake(t)
	write := func(pkg, file, content string) {
		p := filepath.Join(root, sp(pkg), file)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("libssl", layer.EnvFile, "OPENSSL_MODULES="+sp("libssl")+"/lib/ossl-modules\nFOO=from-libssl\n")
	write("curl", image.PURLFile, "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64\npkg:deb/debian/libcurl4@7.88.1-10%2Bdeb12u5?arch=amd64\n")
	b := newTestBuilder(t, f, root)
	res, err := b.Build(ctx, buildreq.Request{Name: "curl", Packages: []string{"curl"},
		Config: image.Config{Env: []string{"FOO=mine", "LANG=C"}}})
	if err != nil {
		t.Fatal(err)
	}
	art, err := b.Load(ctx, res.OCI)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := art.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := []string{"PATH=" + layer.DefaultPath, "FOO=mine", "OPENSSL_MODULES=" + sp("libssl") + "/lib/ossl-modules", "LANG=C"}
	if !slices.Equal(cf.Config.Env, wantEnv) {
		t.Errorf("env %q, want %q", cf.Config.Env, wantEnv)
	}
	refs, err := b.Referrers(ctx, "curl", res.OCI.Digest)
	if err != nil || len(refs) != 1 {
		t.Fatalf("referrers %v %v", refs, err)
	}
	raw, _ := b.ReadBlob(ctx, refs[0].Digest.String())
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	doc, err := b.ReadBlob(ctx, m.Layers[0].Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Packages []struct {
			Name         string `json:"name"`
			ExternalRefs []struct {
				Locator string `json:"referenceLocator"`
			} `json:"externalRefs"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, p := range d.Packages {
		for _, r := range p.ExternalRefs {
			got[p.Name] = append(got[p.Name], r.Locator)
		}
	}
	if !slices.Equal(got["curl"], []string{"pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64", "pkg:deb/debian/libcurl4@7.88.1-10%2Bdeb12u5?arch=amd64"}) {
		t.Errorf("curl purls %q", got["curl"])
	}
	if !slices.Equal(got["libc"], []string{"pkg:nix/libc"}) {
		t.Errorf("libc purls %q: a path without the file keeps its pkg:nix purl", got["libc"])
	}

	// A line that is no package URL fails the build with the file named.
	write("app", image.PURLFile, "curl 7.88\n")
	if _, err := b.Build(ctx, buildreq.Request{Name: "app", Packages: []string{"app"}}); err == nil || !strings.Contains(err.Error(), image.PURLFile) {
		t.Errorf("bad purl file: error %v", err)
	}
}
