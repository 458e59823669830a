package publish

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/test/registries"
)

// sbomFor is an SPDX artifact manifest whose subject is subject.
func sbomFor(t testing.TB, subject interface {
	Digest() (v1.Hash, error)
	MediaType() (types.MediaType, error)
	RawManifest() ([]byte, error)
}) v1.Image {
	t.Helper()
	d, err := subject.Digest()
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := subject.MediaType()
	raw, _ := subject.RawManifest()
	l := static.NewLayer([]byte(`{"spdxVersion":"SPDX-2.3","name":"`+d.String()+`"}`), "application/spdx+json")
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, "application/vnd.oci.empty.v1+json")
	img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: "application/spdx+json"})
	if err != nil {
		t.Fatal(err)
	}
	return mutate.Subject(img, v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}).(v1.Image)
}

// buildLayout is what strata build writes: images under ref.name tags and
// an SBOM beside each, with the image as subject.
func buildLayout(t testing.TB, tagged map[string]v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for tag, img := range tagged {
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refNameKey: tag})); err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(sbomFor(t, img)); err != nil {
			t.Fatal(err)
		}
	}
	return "oci:" + dir
}

// referrerDigests lists the referrers of repo@digest as ggcr sees them
// (the referrers API, or the tag schema).
func referrerDigestsOf(t testing.TB, repo, digest string) []string {
	t.Helper()
	d, err := name.NewDigest(repo + "@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(d)
	if err != nil {
		t.Fatalf("referrers of %s: %v", d, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range im.Manifests {
		out = append(out, m.Digest.String())
	}
	return out
}

// getManifest GETs a manifest with an OCI Accept header, as podman would.
func getManifest(t testing.TB, host, repo, ref string) (string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", string(types.OCIManifestSchema1)+", "+string(types.OCIImageIndex)+", "+string(types.DockerManifestSchema2)+", "+string(types.DockerManifestList))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("GET %s:%s: %d: %v", repo, ref, resp.StatusCode, err)
	}
	return resp.Header.Get("Content-Type"), m
}

func TestPushLayoutKeepsImageAndSBOMReferrer(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	img := platformImage(t, 1024, 2, amd64)
	sbom := sbomFor(t, img)
	src := buildLayout(t, map[string]v1.Image{"1.0": img})
	want := mustDigest(t, img)

	res, err := Copy(ctx, src, reg.Host+"/app/x:1.0-amd64", CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want || len(res.Referrers) != 1 || res.Referrers[0] != mustDigest(t, sbom) {
		t.Fatalf("result %+v, want image %s with referrer %s", res, want, mustDigest(t, sbom))
	}
	ct, m := getManifest(t, reg.Host, "app/x", "1.0-amd64")
	if !types.MediaType(ct).IsImage() || m["config"] == nil {
		t.Fatalf("the tag names %s %v, want an image manifest", ct, m)
	}
	if got, _ := remoteDigest(t, reg.Host+"/app/x:1.0-amd64"); got != want {
		t.Errorf("tag names %s, want the image %s", got, want)
	}
	// docker-registry 2.8 has no referrers API: the tag schema holds it.
	if got := referrerDigestsOf(t, reg.Host+"/app/x", want); len(got) != 1 || got[0] != mustDigest(t, sbom) {
		t.Errorf("referrers %v, want [%s]", got, mustDigest(t, sbom))
	}
	if d, _ := remoteDigest(t, reg.Host+"/app/x:"+strings.Replace(want, ":", "-", 1)); d == "" {
		t.Error("no referrers tag")
	}

	// copy brings the referrer along; --referrers=false does not.
	if _, err := Copy(ctx, reg.Host+"/app/x:1.0-amd64", reg.Host+"/app/copy:1", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := referrerDigestsOf(t, reg.Host+"/app/copy", want); len(got) != 1 {
		t.Errorf("copy: referrers %v, want the SBOM", got)
	}
	if _, err := Copy(ctx, reg.Host+"/app/x:1.0-amd64", reg.Host+"/app/bare:1", CopyOptions{NoReferrers: true}); err != nil {
		t.Fatal(err)
	}
	if got := referrerDigestsOf(t, reg.Host+"/app/bare", want); len(got) != 0 {
		t.Errorf("NoReferrers: referrers %v, want none", got)
	}

	// Registry back to a layout: image under its name, SBOM beside it,
	// and that layout pushes the same way.
	dir := filepath.Join(t.TempDir(), "back")
	if _, err := Copy(ctx, reg.Host+"/app/copy:1", "oci:"+dir+":v1", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil || len(idx.Manifests) != 2 || idx.Manifests[0].Digest.String() != want || idx.Manifests[0].Annotations[refNameKey] != "v1" {
		t.Errorf("layout index.json: %s", raw)
	}
}

func TestPushLayoutSeveralImagesNeedsPlatform(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	amd := platformImage(t, 512, 1, amd64)
	arm := platformImage(t, 512, 1, arm64)
	src := buildLayout(t, map[string]v1.Image{"amd": amd, "arm": arm})

	reg.Sync(t)
	n := reg.Log.Len()
	_, err := Copy(ctx, src, reg.Host+"/app/y:1", CopyOptions{})
	if err == nil || !strings.Contains(err.Error(), "holds 2 images") || !strings.Contains(err.Error(), "linux/amd64 "+mustDigest(t, amd)) ||
		!strings.Contains(err.Error(), "linux/arm64") || !strings.Contains(err.Error(), "--platform") {
		t.Fatalf("push of two images without --platform: %v", err)
	}
	reg.Sync(t)
	if m := reg.Mutations(n); len(m) != 0 {
		t.Errorf("refused push mutated the registry: %v", m)
	}
	res, err := Copy(ctx, src, reg.Host+"/app/y:1-arm64", CopyOptions{Platform: &arm64})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != mustDigest(t, arm) || len(res.Referrers) != 1 || res.Referrers[0] != mustDigest(t, sbomFor(t, arm)) {
		t.Errorf("--platform linux/arm64 pushed %+v", res)
	}
	if _, err := Copy(ctx, src, reg.Host+"/app/y:1-s390x", CopyOptions{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}); err == nil ||
		!strings.Contains(err.Error(), "no linux/s390x image") || !strings.Contains(err.Error(), "linux/arm64") {
		t.Errorf("--platform linux/s390x: %v", err)
	}

	// A multi-platform build: one index in the layout, an SBOM per child.
	idx := twoPlatformIndex(t)
	dir := t.TempDir()
	p, _ := layout.Write(dir, empty.Index)
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameKey: "latest"})); err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	for _, d := range im.Manifests {
		ch, _ := idx.Image(d.Digest)
		if err := p.AppendImage(sbomFor(t, ch)); err != nil {
			t.Fatal(err)
		}
	}
	res, err = Copy(ctx, "oci:"+dir, reg.Host+"/app/z:1-amd64", CopyOptions{Platform: &amd64})
	if err != nil {
		t.Fatal(err)
	}
	if _, mt := remoteDigest(t, reg.Host+"/app/z:1-amd64"); !mt.IsImage() || len(res.Referrers) != 1 {
		t.Errorf("--platform of an index pushed %s with %d referrers, want one image and its SBOM", mt, len(res.Referrers))
	}
	// Without --platform the index goes whole, with both SBOMs.
	res, err = Copy(ctx, "oci:"+dir, reg.Host+"/app/z:1", CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != mustDigest(t, idx) || len(res.Referrers) != 2 {
		t.Errorf("index push: %+v", res)
	}
	// A docker-archive cannot hold the index.
	if _, err := Copy(ctx, "oci:"+dir, "docker-archive:"+filepath.Join(t.TempDir(), "x.tar"), CopyOptions{}); err == nil || !strings.Contains(err.Error(), "--platform") {
		t.Errorf("index to docker-archive: %v", err)
	}
}

func TestWriteDockerArchiveAtomicAndNamed(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	img := platformImage(t, 512, 1, amd64)
	file := filepath.Join(t.TempDir(), "app.tar")
	res, err := Write(ctx, "docker-archive:"+file+":1.0", Artifact{Image: img}, CopyOptions{ArchiveName: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != mustDigest(t, img) {
		t.Errorf("digest %s", res.Digest)
	}
	entries, _ := os.ReadDir(filepath.Dir(file))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	// It reads back under hello:1.0, and by tag alone.
	for _, src := range []string{"docker-archive:" + file, "docker-archive:" + file + ":hello:1.0", "docker-archive:" + file + ":1.0"} {
		loc, err := ParseLocation(src, false)
		if err != nil {
			t.Fatal(err)
		}
		a, err := openArchive(loc, SourceOptions{})
		if err != nil || mustDigest(t, a.Image) != mustDigest(t, img) {
			t.Errorf("%s: %v", src, err)
		}
	}
}

func TestParseLocation(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		in         string
		kind       Kind
		path, ref  string
		registry   string
		wantScheme string
	}{
		{in: "oci:" + dir, kind: KindOCI, path: dir},
		{in: "oci:" + dir + ":1.0", kind: KindOCI, path: dir, ref: "1.0"},
		{in: "oci:" + dir + ":sha256:abc", kind: KindOCI, path: dir, ref: "sha256:abc"},
		{in: "oci:new-dir:v2", kind: KindOCI, path: "new-dir", ref: "v2"},
		{in: "docker-archive:out.tar", kind: KindArchive, path: "out.tar"},
		{in: "docker-archive:out.tar:repo/app:1", kind: KindArchive, path: "out.tar", ref: "repo/app:1"},
		{in: "ghcr.io/o/app:1", kind: KindRegistry, registry: "ghcr.io", wantScheme: "https"},
		{in: "docker://ghcr.io/o/app:1", kind: KindRegistry, registry: "ghcr.io", wantScheme: "https"},
		{in: "127.0.0.1:5000/app:1", kind: KindRegistry, registry: "127.0.0.1:5000", wantScheme: "http"},
		{in: "127.0.0.2:5000/app:1", kind: KindRegistry, registry: "127.0.0.2:5000", wantScheme: "http"},
		{in: "localhost:5000/app:1", kind: KindRegistry, registry: "localhost:5000", wantScheme: "http"},
		{in: "[::1]:5000/app:1", kind: KindRegistry, registry: "[::1]:5000", wantScheme: "http"},
		// Names that only look local are HTTPS only.
		{in: "localhost.evil.com/app:1", kind: KindRegistry, registry: "localhost.evil.com", wantScheme: "https"},
		{in: "127.evil.com/app:1", kind: KindRegistry, registry: "127.evil.com", wantScheme: "https"},
		{in: "localhost.evil.com:5000/app:1", kind: KindRegistry, registry: "localhost.evil.com:5000", wantScheme: "https"},
	} {
		loc, err := ParseLocation(tc.in, false)
		if err != nil {
			t.Errorf("ParseLocation(%q): %v", tc.in, err)
			continue
		}
		if loc.Kind != tc.kind || loc.Path != tc.path || loc.Ref != tc.ref {
			t.Errorf("ParseLocation(%q) = %v %q %q, want %v %q %q", tc.in, loc.Kind, loc.Path, loc.Ref, tc.kind, tc.path, tc.ref)
		}
		if tc.kind == KindRegistry {
			r := loc.Reference.Context().Registry
			if r.RegistryStr() != tc.registry || r.Scheme() != tc.wantScheme {
				t.Errorf("ParseLocation(%q): registry %s scheme %s, want %s %s", tc.in, r.RegistryStr(), r.Scheme(), tc.registry, tc.wantScheme)
			}
		}
	}
	for _, bad := range []string{"oci:", "docker-archive:", "NOT A REF", "a/b:c:d"} {
		if _, err := ParseLocation(bad, false); err == nil {
			t.Errorf("ParseLocation(%q) succeeded", bad)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for _, h := range []string{"localhost", "LOCALHOST:5000", "localhost:5000", "127.0.0.1", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000", "::1", "[::1]"} {
		if !IsLoopback(h) {
			t.Errorf("IsLoopback(%q) = false, want true", h)
		}
	}
	for _, h := range []string{"localhost.evil.com", "localhost.evil.com:5000", "127.evil.com", "127.evil.com:5000",
		"127.0.0.1.evil.com", "localhostx", "10.0.0.1:5000", "192.168.1.1", "example.com", "::2", ""} {
		if IsLoopback(h) {
			t.Errorf("IsLoopback(%q) = true, want false", h)
		}
	}
}

func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"oci:dir:tag", "docker-archive:f.tar:r:t", "127.0.0.1:5000/a:b", "localhost.evil.com/a", "a@sha256:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := ParseLocation(s, false)
		if err != nil {
			return
		}
		if loc.Kind != KindRegistry {
			return
		}
		// Whatever ggcr's scheme, plain HTTP goes only to loopback hosts.
		host := loc.Reference.Context().RegistryStr()
		req, err := http.NewRequest(http.MethodGet, "http://"+host+"/v2/", nil)
		if err != nil {
			return
		}
		g := &guard{inner: refuseAll{}}
		_, err = g.RoundTrip(req)
		if refused := err != nil && strings.Contains(err.Error(), "refusing plain HTTP"); refused == IsLoopback(req.URL.Host) {
			t.Errorf("%q: plain HTTP to %s: refused %v, loopback %v", s, host, refused, IsLoopback(req.URL.Host))
		}
	})
}

// refuseAll is a transport that answers nothing.
type refuseAll struct{}

func (refuseAll) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in this test")
}
