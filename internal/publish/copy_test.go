package publish

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"strata/test/registries"
)

func TestCopyLayoutToRegistry(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	src := writeLayout(t, img)
	want := mustDigest(t, img)
	dst := reg.Host + "/a/img:v1"

	var updates int
	res, err := Copy(ctx, src, dst, CopyOptions{Progress: func(v1.Update) { updates++ }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want {
		t.Errorf("result digest %s, want %s", res.Digest, want)
	}
	if got, _ := remoteDigest(t, dst); got != want {
		t.Errorf("registry has %s, want %s", got, want)
	}
	if updates == 0 {
		t.Error("no progress updates")
	}
	reg.Sync(t)
	first := blobWrites(reg.Log.Requests())
	if len(first) == 0 {
		t.Fatal("first copy uploaded no blob according to the access log")
	}
	ref, _ := name.ParseReference(dst)
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(pulled); err != nil {
		t.Errorf("pushed image invalid: %v", err)
	}

	// Second copy: every blob exists, nothing is uploaded.
	n := reg.Log.Len()
	if _, err := Copy(ctx, src, dst, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	reg.Sync(t)
	if w := blobWrites(reg.Log.Since(n)); len(w) != 0 {
		t.Errorf("second copy uploaded blobs: %v", w)
	}
	if m := reg.Mutations(n); len(m) != 0 {
		t.Errorf("second copy mutated the registry: %v", m)
	}
}

func TestCopyCrossRepoMount(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, writeLayout(t, img), reg.Host+"/team/one:v1", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	reg.Sync(t)
	n := reg.Log.Len()
	res, err := Copy(ctx, reg.Host+"/team/one:v1", reg.Host+"/team/two:v1", CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != mustDigest(t, img) {
		t.Errorf("digest %s, want %s", res.Digest, mustDigest(t, img))
	}
	reg.Sync(t)
	reqs := reg.Log.Since(n)
	mounts := registries.Filter(reqs, func(r registries.Request) bool {
		return r.Method == "POST" && strings.Contains(r.URI, "mount=") && strings.Contains(r.URI, "from=team%2Fone") && r.Status == 201
	})
	// Two layers and the config blob.
	if len(mounts) != 3 {
		t.Errorf("want 3 mounts answered 201, got %d; requests: %v", len(mounts), reqs)
	}
	if w := blobWrites(reqs); len(w) != 0 {
		t.Errorf("blobs uploaded instead of mounted: %v", w)
	}
}

func TestCopyIndexPreservesDigest(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	idx := twoPlatformIndex(t)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	want := mustDigest(t, idx)
	res, err := Copy(ctx, "oci:"+dir, reg.Host+"/multi/app:v1", CopyOptions{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want {
		t.Errorf("digest %s, want %s", res.Digest, want)
	}
	got, mt := remoteDigest(t, reg.Host+"/multi/app:v1")
	if got != want || !mt.IsIndex() {
		t.Errorf("registry has %s (%s), want index %s", got, mt, want)
	}
	// Registry to registry, other repository: same digest again, children too.
	res2, err := Copy(ctx, reg.Host+"/multi/app:v1", reg.Host+"/multi/copy:v1", CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Digest != want {
		t.Errorf("registry copy digest %s, want %s", res2.Digest, want)
	}
	ref, _ := name.ParseReference(reg.Host + "/multi/copy:v1")
	ri, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(ri); err != nil {
		t.Errorf("copied index invalid: %v", err)
	}
	// Cross-check with a peer client.
	out, err := exec.Command(registries.GoBin(t, "crane"), "digest", "--insecure", reg.Host+"/multi/copy:v1").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Errorf("crane digest: %s (%v), want %s", out, err, want)
	}

	// A layout holding several images needs a platform.
	src := writeLayout(t, platformImage(t, 512, 1, v1.Platform{OS: "linux", Architecture: "amd64"}),
		platformImage(t, 512, 1, v1.Platform{OS: "linux", Architecture: "arm64"}))
	if _, err := Copy(ctx, src, reg.Host+"/multi/layout:v1", CopyOptions{}); err == nil || !strings.Contains(err.Error(), "--platform") {
		t.Errorf("layout of two images without a platform: %v", err)
	}
}

func TestCopyDockerArchive(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("example.com/app:v1")
	file := filepath.Join(t.TempDir(), "app.tar")
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		t.Fatal(err)
	}
	want := mustDigest(t, img)
	for _, src := range []string{"docker-archive:" + file, "docker-archive:" + file + ":example.com/app:v1"} {
		res, err := Copy(ctx, src, reg.Host+"/archive/app:v1", CopyOptions{})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if res.Digest != want {
			t.Errorf("%s: digest %s, want %s", src, res.Digest, want)
		}
		if got, _ := remoteDigest(t, reg.Host+"/archive/app:v1"); got != want {
			t.Errorf("registry has %s, want %s", got, want)
		}
	}
	if _, err := Copy(ctx, "docker-archive:"+file+":example.com/app:nope", reg.Host+"/archive/app:v2", CopyOptions{}); err == nil {
		t.Error("copy of a tag absent from the archive succeeded")
	}
}

func TestCopyErrors(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	for _, tc := range []struct{ src, dst, want string }{
		{"oci:" + filepath.Join(t.TempDir(), "missing"), "127.0.0.1:1/ab:b", "open OCI layout"},
		{"docker-archive:/nonexistent.tar", "127.0.0.1:1/ab:b", "docker-archive"},
		{"oci:" + t.TempDir(), "NOT A REF", "destination"},
	} {
		_, err := Copy(ctx, tc.src, tc.dst, CopyOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Copy(%q, %q) = %v, want error containing %q", tc.src, tc.dst, err, tc.want)
		}
	}
	// A private address without --insecure never falls back to plain HTTP.
	img, _ := random.Image(10, 1)
	_, err := Copy(ctx, writeLayout(t, img), "10.255.255.1:5000/a:b", CopyOptions{Retry: RetryOptions{Attempts: 1}})
	if err == nil {
		t.Error("push to a private address without --insecure succeeded")
	}
	_ = os.Remove
}
