package publish

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// IndexOptions configures CreateIndex.
type IndexOptions struct {
	// From are the per-platform images, each a registry reference by digest
	// or tag, in any registry. Required.
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
	ref      name.Reference
	img      v1.Image
	digest   v1.Hash
	platform v1.Platform
}

// CreateIndex assembles an OCI image index from per-platform images, pushes
// each image by digest into dst's repository when it is not there already,
// then pushes the index to dst (a tag, or a digest which must match). The
// platform of each entry is read from its image's config. It fails closed
// (pushes nothing) when a platform in Require is missing or two images
// share a platform. Entries are sorted by platform, so the same images give
// the same index whatever their order in From.
func CreateIndex(ctx context.Context, dst string, opts IndexOptions) (Result, error) {
	if len(opts.From) == 0 {
		return Result{}, fmt.Errorf("index: no images: name each per-platform image with --from")
	}
	c, err := newClient(ctx, opts.Jobs, opts.Insecure, opts.Keychain, opts.Retry, 0, opts.Log, nil)
	if err != nil {
		return Result{}, err
	}
	dstRef, err := name.ParseReference(dst, c.names...)
	if err != nil {
		return Result{}, fmt.Errorf("destination %q: %w (want REGISTRY/REPOSITORY[:TAG|@DIGEST])", dst, err)
	}

	// Read everything first: nothing is pushed until the index is known good.
	children := make([]indexChild, 0, len(opts.From))
	seen := map[string]string{}
	for _, from := range opts.From {
		ref, err := name.ParseReference(strings.TrimPrefix(from, "docker://"), c.names...)
		if err != nil {
			return Result{}, fmt.Errorf("--from %q: %w", from, err)
		}
		a, err := c.openRemote(ctx, ref)
		if err != nil {
			return Result{}, err
		}
		if a.idx != nil {
			return Result{}, fmt.Errorf("--from %s is an index: name a single-platform image (by digest) instead", from)
		}
		cf, err := a.img.ConfigFile()
		if err != nil {
			return Result{}, fmt.Errorf("read config of %s: %w", from, err)
		}
		p := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion, OSFeatures: cf.OSFeatures}
		if p.OS == "" || p.Architecture == "" {
			return Result{}, fmt.Errorf("image %s has no os/architecture in its config: rebuild it with a platform", from)
		}
		if prev, dup := seen[platformKey(p)]; dup {
			return Result{}, fmt.Errorf("images %s and %s are both %s: an index holds one image per platform", prev, from, platformString(p))
		}
		seen[platformKey(p)] = from
		d, err := a.img.Digest()
		if err != nil {
			return Result{}, fmt.Errorf("digest of %s: %w", from, err)
		}
		children = append(children, indexChild{ref: ref, img: a.img, digest: d, platform: p})
	}
	have := make([]v1.Platform, len(children))
	for i, ch := range children {
		have[i] = ch.platform
	}
	if missing := MissingPlatforms(have, opts.Require); len(missing) > 0 {
		return Result{}, fmt.Errorf("required platform %s missing: add an image for it with --from (nothing was pushed)", strings.Join(missing, ", "))
	}
	idx, err := assembleIndex(children, opts.Annotations)
	if err != nil {
		return Result{}, err
	}
	d, err := idx.Digest()
	if err != nil {
		return Result{}, fmt.Errorf("index digest: %w", err)
	}
	if dg, ok := dstRef.(name.Digest); ok && dg.DigestStr() != d.String() {
		return Result{}, fmt.Errorf("destination digest %s differs from the index's %s: name the destination by tag", dg.DigestStr(), d)
	}

	// Each image by digest into the destination repository (ggcr skips what
	// is there and mounts blobs from other repositories of the registry).
	for _, ch := range children {
		target := dstRef.Context().Digest(ch.digest.String())
		if err := c.push(ctx, target, ch.img); err != nil {
			return Result{}, fmt.Errorf("copy %s to %s: %w", ch.ref, target, explain(err))
		}
	}
	if err := c.push(ctx, dstRef, idx); err != nil {
		return Result{}, fmt.Errorf("push index %s: %w", dstRef, explain(err))
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return Result{}, err
	}
	return Result{Ref: dstRef.String(), Digest: d.String(), MediaType: string(types.OCIImageIndex), Size: int64(len(raw))}, nil
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
		mt, err := ch.img.MediaType()
		if err != nil {
			return nil, fmt.Errorf("media type of %s: %w", ch.ref, err)
		}
		p := ch.platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        ch.img,
			Descriptor: v1.Descriptor{MediaType: mt, Platform: &p},
		})
	}
	if len(annotations) > 0 {
		idx = mutate.Annotations(idx, annotations).(v1.ImageIndex)
	}
	return idx, nil
}
