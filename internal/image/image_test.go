package image

import (
	"encoding/json"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func layers(t *testing.T) []v1.Layer {
	t.Helper()
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestNewIsValidAndReproducible(t *testing.T) {
	ls := layers(t)
	opts := Options{
		Platform:    v1.Platform{OS: "linux", Architecture: "amd64"},
		Config:      Config{Env: []string{"PATH=/bin"}, Cmd: []string{"hello"}, ExposedPorts: []string{"80", "53/udp"}, Labels: map[string]string{"a": "b"}},
		Annotations: map[string]string{"org.opencontainers.image.title": "t"},
	}
	a, err := New(ls, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(a); err != nil {
		t.Fatal(err)
	}
	b, _ := New(ls, opts)
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("digests differ: %s %s", da, db)
	}
	m, _ := a.Manifest()
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || m.Layers[0].MediaType != types.OCILayer {
		t.Fatalf("media types %s %s %s", m.MediaType, m.Config.MediaType, m.Layers[0].MediaType)
	}
	if m.Annotations["org.opencontainers.image.title"] != "t" {
		t.Fatalf("annotations %v", m.Annotations)
	}
	cf, _ := a.ConfigFile()
	if cf.Architecture != "amd64" || cf.Created.Unix() != 1 || len(cf.RootFS.DiffIDs) != 3 {
		t.Fatalf("config %+v", cf)
	}
	if _, ok := cf.Config.ExposedPorts["80/tcp"]; !ok {
		t.Fatalf("ports %v", cf.Config.ExposedPorts)
	}
	if len(cf.History) != 3 {
		t.Fatalf("history %d", len(cf.History))
	}

	opts.Docker = true
	d, err := New(ls, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(d); err != nil {
		t.Fatal(err)
	}
	dm, _ := d.Manifest()
	if dm.MediaType != types.DockerManifestSchema2 || dm.Layers[0].MediaType != types.DockerLayer || dm.Layers[0].Digest != m.Layers[0].Digest {
		t.Fatalf("docker manifest %+v", dm)
	}
}

func TestIndex(t *testing.T) {
	ls := layers(t)
	var entries []Entry
	for _, arch := range []string{"amd64", "arm64"} {
		p := v1.Platform{OS: "linux", Architecture: arch}
		img, err := New(ls, Options{Platform: p})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, Entry{img, p})
	}
	idx := Index(entries, map[string]string{"org.opencontainers.image.version": "1"}, false)
	if err := validate.Index(idx); err != nil {
		t.Fatal(err)
	}
	raw, _ := idx.RawManifest()
	var im v1.IndexManifest
	if err := json.Unmarshal(raw, &im); err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 || im.Manifests[1].Platform.Architecture != "arm64" || im.Annotations["org.opencontainers.image.version"] != "1" {
		t.Fatalf("index %s", raw)
	}
	dl := Index(entries, nil, true)
	dm, _ := dl.IndexManifest()
	if dm.MediaType != types.DockerManifestList {
		t.Fatalf("docker list %s", dm.MediaType)
	}
}

func TestParsePlatform(t *testing.T) {
	if p, err := ParsePlatform("linux/arm64/v8"); err != nil || p.Variant != "v8" {
		t.Fatal(p, err)
	}
	for _, s := range []string{"", "linux", "/amd64"} {
		if _, err := ParsePlatform(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
