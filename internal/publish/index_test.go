package publish

import (
	"context"
	"encoding/json"
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

// TestIndexFromPushedLayouts is the staged flow in one process: each
// platform's layout (image + SBOM) pushed under a per-platform tag, then an
// index of the tags pinned to the pushed digests.
func TestIndexFromPushedLayouts(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	amd := platformImage(t, 1024, 2, amd64)
	arm := platformImage(t, 1024, 2, arm64)
	repo := reg.Host + "/flow/app"
	var from []string
	for _, leg := range []struct {
		img v1.Image
		tag string
	}{{amd, "1.0.0-amd64"}, {arm, "1.0.0-arm64"}} {
		res, err := Copy(ctx, buildLayout(t, map[string]v1.Image{"latest": leg.img}), repo+":"+leg.tag, CopyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		from = append(from, strings.TrimPrefix(leg.tag, "1.0.0-")+"="+repo+":"+leg.tag+"@"+res.Digest)
	}
	// "amd64=..." is not a platform: the form is OS/ARCH=REF.
	from[0], from[1] = "linux/"+from[0], "linux/"+from[1]
	annots := map[string]string{"org.opencontainers.image.version": "1.0.0"}
	res, err := CreateIndex(ctx, repo+":1.0.0", IndexOptions{From: from, Annotations: annots, Require: []v1.Platform{amd64, arm64}})
	if err != nil {
		t.Fatal(err)
	}
	ct, m := getManifest(t, reg.Host, "flow/app", "1.0.0")
	if ct != string(types.OCIImageIndex) {
		t.Fatalf("index content type %s", ct)
	}
	raw, _ := json.Marshal(m)
	var im v1.IndexManifest
	if err := json.Unmarshal(raw, &im); err != nil {
		t.Fatal(err)
	}
	if im.Annotations["org.opencontainers.image.version"] != "1.0.0" || len(im.Manifests) != 2 ||
		im.Manifests[0].Digest.String() != mustDigest(t, amd) || im.Manifests[1].Digest.String() != mustDigest(t, arm) {
		t.Errorf("index %s", raw)
	}
	if res.Digest == "" {
		t.Error("no digest")
	}
	for _, img := range []v1.Image{amd, arm} {
		if got := referrerDigestsOf(t, repo, mustDigest(t, img)); len(got) != 1 || got[0] != mustDigest(t, sbomFor(t, img)) {
			t.Errorf("referrers of %s: %v", mustDigest(t, img), got)
		}
	}
	// Copied to another repository, the index brings both SBOMs along.
	if _, err := CreateIndex(ctx, reg.Host+"/other/app:1.0.0", IndexOptions{From: from, Annotations: annots}); err != nil {
		t.Fatal(err)
	}
	for _, img := range []v1.Image{amd, arm} {
		if got := referrerDigestsOf(t, reg.Host+"/other/app", mustDigest(t, img)); len(got) != 1 {
			t.Errorf("referrers in the other repository of %s: %v", mustDigest(t, img), got)
		}
	}
}

func TestCreateIndexRefusesBadChildren(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	repo := reg.Host + "/bad/app"
	amd := platformImage(t, 512, 1, amd64)
	arm := platformImage(t, 512, 1, arm64)
	pushTag := func(tag string, img v1.Image) string {
		t.Helper()
		res, err := Copy(ctx, writeLayout(t, img), repo+":"+tag, CopyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Digest
	}
	amdD := pushTag("1-amd64", amd)
	// The arm64 step pushed the amd64 image by mistake.
	pushTag("1-arm64", amd)
	// An index under a per-platform tag (what push did before).
	if _, err := Copy(ctx, reg.Host+"/bad/app:1-amd64", repo+":idx", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateIndex(ctx, repo+":multi", IndexOptions{From: []string{repo + ":1-amd64", pushByDigest(t, ctx, repo, arm)}}); err != nil {
		t.Fatal(err)
	}
	reg.Sync(t)
	n := reg.Log.Len()
	for _, tc := range []struct {
		from    []string
		require []v1.Platform
		want    []string
	}{
		{[]string{repo + ":multi"}, nil, []string{repo + ":multi", "image index", "2 manifests: linux/amd64, linux/arm64", "not an image"}},
		{[]string{"linux/amd64=" + repo + ":1-amd64", "linux/arm64=" + repo + ":1-arm64"}, nil,
			[]string{repo + ":1-arm64", "is a linux/amd64 image", "not linux/arm64", "wrong platform"}},
		{[]string{repo + ":1-amd64", repo + ":1-arm64"}, nil, []string{"both linux/amd64", repo + ":1-arm64"}},
		{[]string{repo + ":1-amd64"}, []v1.Platform{amd64, arm64}, []string{"linux/arm64 missing", repo + ":1-amd64 is linux/amd64"}},
		// Pushed as amdD, then the tag moved to another image.
		{[]string{repo + ":1-arm64@" + mustDigest(t, arm)}, nil, []string{"moved", repo + ":1-arm64", mustDigest(t, amd), mustDigest(t, arm)}},
		{[]string{"linux/amd64=" + repo + ":gone@" + amdD}, nil, []string{"is gone", amdD}},
	} {
		_, err := CreateIndex(ctx, repo+":out", IndexOptions{From: tc.from, Require: tc.require})
		if err == nil {
			t.Errorf("%v: no error", tc.from)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tc.from, err, w)
			}
		}
	}
	reg.Sync(t)
	if m := reg.Mutations(n); len(m) != 0 {
		t.Errorf("refused index creates mutated the registry: %v", m)
	}
}
