package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// IndexOptions configures CreateIndex.
type IndexOptions struct {
	// From are the per-platform images, each "[OS/ARCH[/VARIANT]=]REF"
	// with REF by tag, by digest or "REPO:TAG@DIGEST", in any registry
	// (see CreateIndex). Required.
	From []string
	// Annotations go on the outer index. Default: none (in particular no
	// org.opencontainers.image.created, so the index is reproducible).
	Annotations map[string]string
	// Require lists platforms that must be among From; when one is missing
	// nothing is pushed. Default: none.
	Require []v1.Platform
	// Jobs is the number of blobs transferred at once. Default 4.
	Jobs int
	// Insecure: see CopyOptions. Default false.
	Insecure bool
	// Keychain supplies credentials. Default: Keychain(CredOptions{}).
	Keychain authn.Keychain
	// Retry bounds retries of each request. Default: see RetryOptions.
	Retry RetryOptions
	// DryRun reads and checks every image and computes the index, but
	// pushes nothing. Default false.
	DryRun bool
	// NoReferrers leaves the referrers (SBOMs) of images copied from
	// another repository behind. Default false: they come along.
	NoReferrers bool
	// Log receives debug lines. Default: no logging.
	Log *slog.Logger
}

// ParsePlatform parses "os/arch[/variant]".
func ParsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("platform %q: %w (want os/arch[/variant], e.g. linux/arm64)", s, err)
	}
	if p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant], e.g. linux/arm64", s)
	}
	return *p, nil
}

// platformKey normalises a platform for comparison: arm64 has variant v8
// unless it says otherwise, as in containerd.
func platformKey(p v1.Platform) string {
	v := p.Variant
	if p.Architecture == "arm64" && v == "" {
		v = "v8"
	}
	return p.OS + "/" + p.Architecture + "/" + v
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// satisfies reports whether have meets want; an empty variant in want
// matches any variant.
func satisfies(have, want v1.Platform) bool {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	return want.Variant == "" || platformKey(have) == platformKey(want)
}

type indexChild struct {
	from     string // the --from value as given
	ref      name.Reference
	art      Artifact
	digest   v1.Hash
	platform v1.Platform
}

// indexFrom is one parsed --from: "[OS/ARCH[/VARIANT]=]REF".
type indexFrom struct {
	raw  string
	want *v1.Platform // the platform the image must have; nil: any
	ref  name.Reference
	tag  string // the tag of "REPO:TAG@DIGEST", checked against DIGEST
}

func (c *client) parseFrom(s string) (indexFrom, error) {
	f := indexFrom{raw: s}
	r := s
	if p, rest, ok := strings.Cut(s, "="); ok {
		pl, err := ParsePlatform(p)
		if err != nil {
			return f, fmt.Errorf("--from %q: %w (want [OS/ARCH=]REGISTRY/REPOSITORY[:TAG][@DIGEST])", s, err)
		}
		f.want, r = &pl, rest
	}
	ref, err := c.ref(r)
	if err != nil {
		return f, fmt.Errorf("--from %q: %w (want [OS/ARCH=]REGISTRY/REPOSITORY[:TAG][@DIGEST])", s, err)
	}
	f.ref = ref
	f.tag = pinnedTag(r)
	return f, nil
}

// pinnedTag is the TAG of "REPO:TAG@DIGEST", else "".
func pinnedTag(s string) string {
	before, _, ok := strings.Cut(strings.TrimPrefix(s, "docker://"), "@")
	if !ok {
		return ""
	}
	if i := strings.LastIndexByte(before, ':'); i > strings.LastIndexByte(before, '/') {
		return before[i+1:]
	}
	return ""
}

// checkPinned fails unless ref's repository has tag naming digest.
func (c *client) checkPinned(ctx context.Context, what string, ref name.Reference, tag string, digest v1.Hash) error {
	tagRef := ref.Context().Tag(tag)
	now, err := remote.Head(tagRef, c.opts(ctx)...)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%s: the tag %s is gone (it was pushed as %s): it was deleted or never pushed; nothing was pushed", what, tagRef, digest)
	}
	if err != nil {
		return fmt.Errorf("%s: the tag %s: %w (it was pushed as %s; nothing was pushed)", what, tagRef, explain(err), digest)
	}
	if now.Digest != digest {
		return fmt.Errorf("%s: the tag %s moved: it names %s now, not the pushed %s (nothing was pushed; run the push step again, or name the digest alone)",
			what, tagRef, now.Digest, digest)
	}
	return nil
}

// describeIndex names the manifests of an index for an error: their
// platforms, or artifact types.
func describeIndex(raw []byte) string {
	var im v1.IndexManifest
	if err := json.Unmarshal(raw, &im); err != nil {
		return "unreadable"
	}
	var parts []string
	for _, d := range im.Manifests {
		switch {
		case d.Platform != nil:
			parts = append(parts, platformString(*d.Platform))
		case d.ArtifactType != "":
			parts = append(parts, d.ArtifactType)
		default:
			parts = append(parts, string(d.MediaType))
		}
	}
	return fmt.Sprintf("%d manifests: %s", len(im.Manifests), strings.Join(parts, ", "))
}

// openChild reads one --from image and checks it: an image (not an
// index), of the platform asked for, still under its tag.
func (c *client) openChild(ctx context.Context, f indexFrom, dst name.Repository, noReferrers bool) (indexChild, error) {
	desc, err := remote.Get(f.ref, c.opts(ctx)...)
	if err != nil {
		return indexChild{}, fmt.Errorf("--from %s: %w", f.raw, explain(err))
	}
	if desc.MediaType.IsIndex() {
		return indexChild{}, fmt.Errorf("--from %s names an image index (%s, %s), not an image: an index entry must be one platform's image; push the image itself (strata push --platform OS/ARCH oci:DIR %s) and name that",
			f.raw, desc.Digest, describeIndex(desc.Manifest), refWithoutDigest(f.ref))
	}
	if desc.MediaType.IsSchema1() || !desc.MediaType.IsImage() {
		return indexChild{}, fmt.Errorf("--from %s is %s, not an image manifest", f.raw, desc.MediaType)
	}
	if f.tag != "" {
		if err := c.checkPinned(ctx, "--from "+f.raw, f.ref, f.tag, desc.Digest); err != nil {
			return indexChild{}, err
		}
	}
	img, err := desc.Image()
	if err != nil {
		return indexChild{}, fmt.Errorf("read image %s: %w", f.raw, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return indexChild{}, fmt.Errorf("read the config of %s: %w", f.raw, explain(err))
	}
	p := configPlatform(cf)
	if p.OS == "" || p.Architecture == "" {
		return indexChild{}, fmt.Errorf("--from %s (%s) has no os/architecture in its config: rebuild it with --platform", f.raw, desc.Digest)
	}
	if f.want != nil && !satisfies(p, *f.want) {
		return indexChild{}, fmt.Errorf("--from %s is a %s image (%s), not %s: that step pushed the wrong platform; build it again with --platform %s and push it (nothing was pushed)",
			f.raw, platformString(p), desc.Digest, platformString(*f.want), platformString(*f.want))
	}
	ch := indexChild{from: f.raw, ref: f.ref, art: Artifact{Image: img}, digest: desc.Digest, platform: p}
	// Referrers in another repository come along; in dst's they are there.
	if !noReferrers && f.ref.Context().String() != dst.String() {
		if ch.art.Referrers, err = c.remoteReferrers(ctx, f.ref.Context(), []string{desc.Digest.String()}, maxReferrerDepth); err != nil {
			return indexChild{}, err
		}
	}
	return ch, nil
}

// openChildren reads and checks every --from (openChild): one image per
// platform.
func (c *client) openChildren(ctx context.Context, from []string, dst name.Repository, noReferrers bool) ([]indexChild, error) {
	children := make([]indexChild, 0, len(from))
	seen := map[string]string{}
	for _, s := range from {
		f, err := c.parseFrom(s)
		if err != nil {
			return nil, err
		}
		ch, err := c.openChild(ctx, f, dst, noReferrers)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[platformKey(ch.platform)]; dup {
			return nil, fmt.Errorf("--from %s and --from %s are both %s images: an index holds one image per platform; one step pushed the wrong platform (nothing was pushed)", prev, s, platformString(ch.platform))
		}
		seen[platformKey(ch.platform)] = s
		children = append(children, ch)
	}
	return children, nil
}

func refWithoutDigest(r name.Reference) string {
	return r.Context().String() + ":TAG"
}

// CreateIndex assembles an OCI image index from per-platform images and
// pushes it to dst (a tag, or a digest which must match). Each From is
// "[OS/ARCH[/VARIANT]=]REF": REF by tag, by digest, or "REPO:TAG@DIGEST"
// (the digest is what goes in the index, and the tag must still name it:
// a tag moved since the push is an error). Every entry is pinned by
// digest. The platform of each entry is read from its image's config and
// must match the one given before "=".
//
// It fails closed, pushing nothing, when a From is an index rather than an
// image, has the wrong platform, moved, or shares its platform with
// another, or when a platform of Require is missing. Then each image is
// copied by digest into dst's repository when not there already (with its
// referrers, unless NoReferrers), then the index by digest, then its tag.
// Entries are sorted by platform, so the same images give the same index
// whatever their order in From.
func CreateIndex(ctx context.Context, dst string, opts IndexOptions) (Result, error) {
	if len(opts.From) == 0 {
		return Result{}, fmt.Errorf("index: no images: name each per-platform image with --from")
	}
	c, err := newClient(ctx, CopyOptions{Jobs: opts.Jobs, Insecure: opts.Insecure, Keychain: opts.Keychain, Retry: opts.Retry, Log: opts.Log})
	if err != nil {
		return Result{}, err
	}
	dstRef, err := c.ref(dst)
	if err != nil {
		return Result{}, fmt.Errorf("destination %q: %w (want REGISTRY/REPOSITORY[:TAG|@DIGEST])", dst, err)
	}

	// Read and check everything first: nothing is pushed until the index
	// is known good.
	children, err := c.openChildren(ctx, opts.From, dstRef.Context(), opts.NoReferrers)
	if err != nil {
		return Result{}, err
	}
	idx, d, err := indexOf(children, opts.Require, opts.Annotations, func(missing []string) error {
		var found []string
		for _, ch := range children {
			found = append(found, fmt.Sprintf("%s is %s", ch.from, platformString(ch.platform)))
		}
		return fmt.Errorf("required platform %s missing (%s): add an image for it with --from (nothing was pushed)", strings.Join(missing, ", "), strings.Join(found, "; "))
	})
	if err != nil {
		return Result{}, err
	}
	if dg, ok := dstRef.(name.Digest); ok && dg.DigestStr() != d.String() {
		return Result{}, fmt.Errorf("destination digest %s differs from the index's %s: name the destination by tag", dg.DigestStr(), d)
	}

	if opts.DryRun {
		raw, err := idx.RawManifest()
		if err != nil {
			return Result{}, err
		}
		return Result{Ref: dstRef.String(), Digest: d.String(), MediaType: string(types.OCIImageIndex), Size: int64(len(raw))}, nil
	}

	// Each image by digest into the destination repository (ggcr skips what
	// is there and mounts blobs from other repositories of the registry),
	// then the index by digest, then its tag.
	for _, ch := range children {
		t := &registryTarget{c: c, ref: dstRef.Context().Digest(ch.digest.String())}
		if _, err := t.Write(ctx, ch.art); err != nil {
			return Result{}, fmt.Errorf("copy %s to %s: %w (the index was not pushed)", ch.from, t.ref, err)
		}
	}
	res, err := (&registryTarget{c: c, ref: dstRef}).Write(ctx, Artifact{Index: idx})
	if err != nil {
		return Result{}, fmt.Errorf("push the index: %w", err)
	}
	return res, nil
}

// MissingPlatforms returns the platforms of want (as os/arch[/variant])
// that none of have satisfies; an empty variant in want matches any.
func MissingPlatforms(have, want []v1.Platform) []string {
	var missing []string
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || satisfies(h, w)
		}
		if !found {
			missing = append(missing, platformString(w))
		}
	}
	return missing
}

// configPlatform is the platform an image's config names.
func configPlatform(cf *v1.ConfigFile) v1.Platform {
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion, OSFeatures: cf.OSFeatures}
}

// indexOf is the index of children, as CreateIndex and Release push it:
// it checks that they cover require (missingErr is the error naming the
// platforms missing), assembles the index (assembleIndex) and computes its
// digest.
func indexOf(children []indexChild, require []v1.Platform, annotations map[string]string, missingErr func(missing []string) error) (v1.ImageIndex, v1.Hash, error) {
	have := make([]v1.Platform, len(children))
	for i, ch := range children {
		have[i] = ch.platform
	}
	if missing := MissingPlatforms(have, require); len(missing) > 0 {
		return nil, v1.Hash{}, missingErr(missing)
	}
	idx, err := assembleIndex(children, annotations)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("index digest: %w", err)
	}
	return idx, d, nil
}

// assembleIndex sorts children by platform (so the order of From never
// changes the digest) and makes an OCI index of them, with annotations on
// the index.
func assembleIndex(children []indexChild, annotations map[string]string) (v1.ImageIndex, error) {
	sort.SliceStable(children, func(i, j int) bool {
		return platformKey(children[i].platform) < platformKey(children[j].platform)
	})
	var idx v1.ImageIndex = empty.Index
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	for _, ch := range children {
		mt, err := ch.art.Image.MediaType()
		if err != nil {
			return nil, fmt.Errorf("media type of %s: %w", ch.ref, err)
		}
		p := ch.platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        ch.art.Image,
			Descriptor: v1.Descriptor{MediaType: mt, Platform: &p},
		})
	}
	if len(annotations) > 0 {
		idx = mutate.Annotations(idx, annotations).(v1.ImageIndex)
	}
	return idx, nil
}
