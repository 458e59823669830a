package publish

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/test/registries"
)

// pushByDigest copies img into repo by digest and returns the digest reference.
func pushByDigest(t *testing.T, ctx context.Context, repo string, img v1.Image) string {
	t.Helper()
	ref := repo + "@" + mustDigest(t, img)
	if _, err := Copy(ctx, writeLayout(t, img), ref, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestCreateIndex(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	amd := platformImage(t, 1024, 2, v1.Platform{OS: "linux", Architecture: "amd64"})
	arm := platformImage(t, 1024, 2, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})
	// Built in another repository: CreateIndex copies them into the index's.
	fromAmd := pushByDigest(t, ctx, reg.Host+"/build/amd64", amd)
	fromArm := pushByDigest(t, ctx, reg.Host+"/build/arm64", arm)
	annots := map[string]string{"org.opencontainers.image.version": "1.2.3", "org.opencontainers.image.source": "https://example.com/app"}
	res, err := CreateIndex(ctx, reg.Host+"/release/app:1.2.3", IndexOptions{
		From:        []string{fromArm, fromAmd},
		Annotations: annots,
		Require:     []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(reg.Host + "/release/app:1.2.3")
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d := mustDigest(t, idx); d != res.Digest {
		t.Errorf("registry index %s, result %s", d, res.Digest)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("media type %s", im.MediaType)
	}
	for k, v := range annots {
		if im.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, im.Annotations[k], v)
		}
	}
	if _, ok := im.Annotations["org.opencontainers.image.created"]; ok {
		t.Error("index has a creation time nobody asked for")
	}
	got := map[string]string{}
	for _, m := range im.Manifests {
		if m.Platform == nil {
			t.Fatalf("manifest %s without platform", m.Digest)
		}
		got[platformString(*m.Platform)] = m.Digest.String()
	}
	if got["linux/amd64"] != mustDigest(t, amd) || got["linux/arm64/v8"] != mustDigest(t, arm) || len(got) != 2 {
		t.Errorf("index platforms %v", got)
	}
	// The children are in the index's repository now.
	for _, d := range got {
		if _, err := remote.Head(ref.Context().Digest(d)); err != nil {
			t.Errorf("child %s not in %s: %v", d, ref.Context(), err)
		}
	}
	// Reproducible: same images, other order, same digest.
	res2, err := CreateIndex(ctx, reg.Host+"/release/app:again", IndexOptions{From: []string{fromAmd, fromArm}, Annotations: annots})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Digest != res.Digest {
		t.Errorf("same inputs, digests %s and %s", res.Digest, res2.Digest)
	}
	// By digest: the destination digest must match.
	if _, err := CreateIndex(ctx, reg.Host+"/release/app@"+res.Digest, IndexOptions{From: []string{fromAmd, fromArm}, Annotations: annots}); err != nil {
		t.Errorf("push by matching digest: %v", err)
	}
}

func TestCreateIndexFailsClosed(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	amd := pushByDigest(t, ctx, reg.Host+"/build/app", platformImage(t, 512, 1, v1.Platform{OS: "linux", Architecture: "amd64"}))
	amd2 := pushByDigest(t, ctx, reg.Host+"/build/app", platformImage(t, 512, 1, v1.Platform{OS: "linux", Architecture: "amd64"}))
	reg.Sync(t)
	n := reg.Log.Len()

	_, err := CreateIndex(ctx, reg.Host+"/release/app:v1", IndexOptions{
		From:    []string{amd},
		Require: []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}},
	})
	if err == nil || !strings.Contains(err.Error(), "linux/arm64") {
		t.Errorf("missing platform: %v, want an error naming linux/arm64", err)
	}
	_, err = CreateIndex(ctx, reg.Host+"/release/app:v1", IndexOptions{From: []string{amd, amd2}})
	if err == nil || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("duplicate platform: %v, want an error naming linux/amd64", err)
	}
	_, err = CreateIndex(ctx, reg.Host+"/release/app:v1", IndexOptions{From: []string{amd}, Require: []v1.Platform{{OS: "linux", Architecture: "arm", Variant: "v7"}}})
	if err == nil || !strings.Contains(err.Error(), "linux/arm/v7") {
		t.Errorf("missing variant: %v", err)
	}
	reg.Sync(t)
	if m := reg.Mutations(n); len(m) != 0 {
		t.Errorf("a failed index create mutated the registry: %v", m)
	}
}
