package ondemand

import (
	"context"
	"errors"
	"slices"
	"testing"

	"strata/internal/buildreq"
	"strata/internal/spec"
)

func TestRequest(t *testing.T) {
	s, err := spec.Parse("shell/arm64/hello/curl", "v1")
	if err != nil {
		t.Fatal(err)
	}
	req := Request(s)
	if req.Name != s.Name() || req.Ref != "v1" || !req.Shell || !slices.Equal(req.Packages, []string{"curl", "hello"}) ||
		!slices.Equal(req.Platforms, []string{"linux/arm64"}) || req.Format != "" || len(req.Users) != 0 {
		t.Errorf("Request(%+v) = %+v", s, req)
	}

	s, err = spec.Parse("buildpacks/nix-snapshotter/hello", "v2")
	if err != nil {
		t.Fatal(err)
	}
	req = Request(s)
	if req.Format != buildreq.FormatNixSnapshotter || len(req.Platforms) != 0 {
		t.Errorf("format %q, platforms %v", req.Format, req.Platforms)
	}
	if len(req.Users) != 1 || req.Users[0].Name != "cnb" || req.Users[0].UID != 1000 || req.Config.User != "1000:1000" ||
		req.Config.Labels["io.buildpacks.stack.id"] != "strata.v2" || len(req.Files) != 1 || req.Files[0].Path != "/home/cnb" {
		t.Errorf("buildpacks request %+v", req)
	}
}

func TestWantsDocker(t *testing.T) {
	const (
		oci    = "application/vnd.oci.image.manifest.v1+json"
		docker = "application/vnd.docker.distribution.manifest.v2+json"
	)
	for _, c := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{docker}, true},
		{[]string{docker, oci}, false},
		{[]string{docker, "*/*"}, false},
		{[]string{"application/vnd.docker.distribution.manifest.list.v2+json"}, true},
	} {
		if got := wantsDocker(c.accept); got != c.want {
			t.Errorf("wantsDocker(%q) = %v, want %v", c.accept, got, c.want)
		}
	}
}

func TestTagsOfABadName(t *testing.T) {
	o := New(nil)
	if _, err := o.Tags(context.Background(), "Bad//Name"); !errors.As(err, new(*spec.Error)) {
		t.Errorf("Tags of a malformed name: %v, want a spec error", err)
	}
	if tags, err := o.Tags(context.Background(), "shell/hello"); err != nil || !slices.Equal(tags, []string{"latest"}) {
		t.Errorf("Tags = %v, %v", tags, err)
	}
	if _, err := o.Manifest(context.Background(), "Bad//Name", "latest", nil); !errors.As(err, new(*spec.Error)) {
		t.Errorf("Manifest of a malformed name: %v, want a spec error", err)
	}
}
