package registry_test

import (
	"io"
	"net/url"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"strata/internal/registry"
)

// storeImage puts an image's layers, config and manifest into the store and
// returns its manifest as the backend serves it.
func storeImage(t *testing.T, e *env, img v1.Image) registry.Manifest {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		e.put(t, b)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, cfg)
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	d := e.put(t, raw)
	return registry.Manifest{Body: raw, MediaType: string(mt), Digest: d}
}

func host(t *testing.T, e *env) string {
	u, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func TestGGCRPullImage(t *testing.T) {
	e := newEnv(t)
	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	m := storeImage(t, e, img)
	e.backend.manifests["shell/git:latest"] = m

	// By tag, through the backend.
	ref, err := name.ParseReference(host(t, e)+"/shell/git:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("validate by tag: %v", err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Errorf("digest %s, want %s", d, want)
	}

	// By digest, under another name, straight from the store.
	ref, err = name.ParseReference(host(t, e)+"/other/name@"+m.Digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err = remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("validate by digest: %v", err)
	}

	// HEAD and tags through the client.
	desc, err := remote.Head(ref)
	if err != nil || desc.Digest.String() != m.Digest {
		t.Fatalf("Head = %v, %v", desc, err)
	}
	e.backend.tags["shell/git"] = []string{"latest", "v1"}
	repo, _ := name.NewRepository(host(t, e)+"/shell/git", name.Insecure)
	tags, err := remote.List(repo)
	if err != nil || len(tags) != 2 {
		t.Fatalf("List = %q, %v", tags, err)
	}
}

func TestGGCRPullIndex(t *testing.T) {
	e := newEnv(t)
	idx, err := random.Index(1024, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		storeImage(t, e, img)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := idx.MediaType()
	d := e.put(t, raw)
	e.backend.manifests["multi:latest"] = registry.Manifest{Body: raw, MediaType: string(mt), Digest: d}

	for _, r := range []string{"/multi:latest", "/any/name@" + d} {
		ref, err := name.ParseReference(host(t, e)+r, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Index(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Index(got); err != nil {
			t.Fatalf("validate %s: %v", r, err)
		}
	}
}
