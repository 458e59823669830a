package publish

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PlatformImage is one platform's image of a release.
type PlatformImage struct {
	// Platform overrides the platform read from the image's config.
	// Default: the config's os, architecture and variant.
	Platform *v1.Platform
	Image    v1.Image
	// Referrers (the image's SBOM) are pushed after the image, by digest,
	// before any index or tag names it. Default none.
	Referrers []v1.Image
}

// ReleaseOptions configures Release.
type ReleaseOptions struct {
	// Repository is the destination REGISTRY/REPOSITORY. Required.
	Repository string
	// Version is the release version; it is pushed as the tag
	// VersionTag(Version). Required.
	Version string
	// Images are the per-platform images, one per platform. Required.
	Images []PlatformImage
	// Annotations go on the outer index. Default: none.
	Annotations map[string]string
	// Require lists platforms that must be among Images; when one is
	// missing nothing is pushed. Default: none.
	Require []v1.Platform
	// MoveLatest moves latest to the index, as the last mutation. The
	// caller decides (IsRelease). Default false.
	MoveLatest bool
	// DryRun plans and reports the steps without making any request.
	// Default false.
	DryRun bool
	// Step is called for every mutation: in a dry run as it is planned,
	// otherwise once it is done, in order. Default: nil.
	Step func(Step)
	// Progress is called with the bytes done of an image push as it goes
	// (never from two goroutines at once). Default: nil.
	Progress func(Step, v1.Update)
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

// Step actions.
const (
	ActionPushImage = "push image"
	ActionPushIndex = "push index"
	ActionTag       = "tag"
)

// Step is one mutation of a release.
type Step struct {
	// Action is ActionPushImage, ActionPushIndex or ActionTag.
	Action string `json:"action"`
	// Platform of a pushed image.
	Platform string `json:"platform,omitempty"`
	// Ref is what is written: REPOSITORY@DIGEST or REPOSITORY:TAG.
	Ref string `json:"ref"`
	// Digest of the manifest or index written.
	Digest string `json:"digest"`
	// Size is the image's size (manifest, config and layers) or the
	// index's, in bytes.
	Size int64 `json:"size"`
}

// String is the step as one line, e.g.
// "push image linux/amd64 → r.example/app@sha256:..." or
// "tag r.example/app:1.2.3 → sha256:...".
func (s Step) String() string {
	switch s.Action {
	case ActionPushImage:
		return fmt.Sprintf("%s %s → %s", s.Action, s.Platform, s.Ref)
	case ActionPushIndex:
		return fmt.Sprintf("%s → %s", s.Action, s.Ref)
	}
	return fmt.Sprintf("%s %s → %s", s.Action, s.Ref, s.Digest)
}

// PlatformDigest is one platform's image in a release.
type PlatformDigest struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
	// Referrers are the digests of its referrers pushed with it (its
	// SBOM). Default none.
	Referrers []string `json:"referrers,omitempty"`
}

// ReleaseResult describes a release (made, or planned in a dry run).
type ReleaseResult struct {
	Repository string           `json:"repository"`
	Version    string           `json:"version"`
	Index      string           `json:"index"`
	Platforms  []PlatformDigest `json:"platforms"`
	// Tags are the tags moved to the index (or that would be).
	Tags   []string `json:"tags"`
	DryRun bool     `json:"dryRun"`
	Steps  []Step   `json:"steps"`
}

// Release publishes per-platform images as one version, in this order:
// each image by digest, the index of them by digest (OCI, entries sorted by
// platform, Annotations on it), the version tag, and, when MoveLatest,
// latest as the very last mutation. Tags are PUTs of the index's exact
// bytes, so every tag names the same digest. Everything is checked before
// the first request (platforms, duplicates, Require, the version's tag);
// a failure mid-way leaves the tags where they were until the index is
// complete. Run Preflight first.
func Release(ctx context.Context, opts ReleaseOptions) (ReleaseResult, error) {
	c, err := newClient(ctx, CopyOptions{Jobs: opts.Jobs, Insecure: opts.Insecure, Keychain: opts.Keychain, Retry: opts.Retry, Log: opts.Log})
	if err != nil {
		return ReleaseResult{}, err
	}
	var nopts []name.Option
	if opts.Insecure || IsLoopback(strings.SplitN(opts.Repository, "/", 2)[0]) {
		nopts = append(nopts, name.Insecure)
	}
	repo, err := name.NewRepository(opts.Repository, nopts...)
	if err != nil {
		return ReleaseResult{}, fmt.Errorf("repository %q: %w (want REGISTRY/REPOSITORY)", opts.Repository, err)
	}
	tag, err := VersionTag(opts.Version)
	if err != nil {
		return ReleaseResult{}, fmt.Errorf("version %q: %w", opts.Version, err)
	}
	if len(opts.Images) == 0 {
		return ReleaseResult{}, fmt.Errorf("release: no images to publish")
	}
	children, err := releaseChildren(repo, opts.Images)
	if err != nil {
		return ReleaseResult{}, err
	}
	idx, idxDigest, err := indexOf(children, opts.Require, opts.Annotations, func(missing []string) error {
		return fmt.Errorf("required platform %s missing: nothing was pushed (build it, or drop it from require)", strings.Join(missing, ", "))
	})
	if err != nil {
		return ReleaseResult{}, err
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return ReleaseResult{}, fmt.Errorf("index: %w", err)
	}
	res, err := planRelease(repo, tag, opts, children, idxDigest, int64(len(raw)))
	if err != nil {
		return ReleaseResult{}, err
	}
	step := func(s Step) {
		if opts.Step != nil {
			opts.Step(s)
		}
	}
	if opts.DryRun {
		for _, s := range res.Steps {
			step(s)
		}
		return res, nil
	}
	for i, s := range res.Steps {
		if err := c.releaseStep(ctx, s, children, i, raw, nopts, opts.Progress); err != nil {
			return res, err
		}
		step(s)
	}
	return res, nil
}

// releaseChildren are the index entries of a release's images, each with
// its platform (given, else its config's) and its referrers, checked: one
// image per platform, each with an os and architecture.
func releaseChildren(repo name.Repository, images []PlatformImage) ([]indexChild, error) {
	children := make([]indexChild, 0, len(images))
	seen := map[string]bool{}
	for _, pi := range images {
		var p v1.Platform
		if pi.Platform != nil {
			p = *pi.Platform
		} else {
			cf, err := pi.Image.ConfigFile()
			if err != nil {
				return nil, fmt.Errorf("read image config: %w", err)
			}
			p = configPlatform(cf)
		}
		if p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("an image has no os/architecture: rebuild it with a platform")
		}
		if seen[platformKey(p)] {
			return nil, fmt.Errorf("two images are %s: a release holds one image per platform", platformString(p))
		}
		seen[platformKey(p)] = true
		d, err := pi.Image.Digest()
		if err != nil {
			return nil, fmt.Errorf("digest of the %s image: %w", platformString(p), err)
		}
		art := Artifact{Image: pi.Image}
		for _, r := range pi.Referrers {
			art.Referrers = append(art.Referrers, Artifact{Image: r})
		}
		children = append(children, indexChild{from: platformString(p), ref: repo.Digest(d.String()), art: art, digest: d, platform: p})
	}
	return children, nil
}

// planRelease lists a release's mutations in order: each image by digest
// (one step per child, in the children's order), the index by digest, the
// version tag, and latest when opts.MoveLatest.
func planRelease(repo name.Repository, tag string, opts ReleaseOptions, children []indexChild, idxDigest v1.Hash, idxSize int64) (ReleaseResult, error) {
	res := ReleaseResult{Repository: repo.String(), Version: opts.Version, Index: idxDigest.String(),
		DryRun: opts.DryRun, Platforms: []PlatformDigest{}, Tags: []string{tag}}
	for _, ch := range children {
		size, err := imageSize(ch.art.Image)
		if err != nil {
			return ReleaseResult{}, err
		}
		ps := platformString(ch.platform)
		res.Platforms = append(res.Platforms, PlatformDigest{Platform: ps, Digest: ch.digest.String(), Referrers: ch.art.referrerDigests()})
		res.Steps = append(res.Steps, Step{Action: ActionPushImage, Platform: ps, Ref: ch.ref.String(), Digest: ch.digest.String(), Size: size})
	}
	idxStep := Step{Action: ActionPushIndex, Ref: repo.Digest(idxDigest.String()).String(), Digest: idxDigest.String(), Size: idxSize}
	res.Steps = append(res.Steps, idxStep,
		Step{Action: ActionTag, Ref: repo.Tag(tag).String(), Digest: idxDigest.String(), Size: idxSize})
	if opts.MoveLatest {
		res.Tags = append(res.Tags, "latest")
		res.Steps = append(res.Steps, Step{Action: ActionTag, Ref: repo.Tag("latest").String(), Digest: idxDigest.String(), Size: idxSize})
	}
	return res, nil
}

// releaseStep makes the mutation s, the i-th of the plan: an image push
// (children[i], with its referrers), or a PUT of the index's raw bytes by
// digest or under a tag.
func (c *client) releaseStep(ctx context.Context, s Step, children []indexChild, i int, raw []byte, nopts []name.Option, progress func(Step, v1.Update)) error {
	if s.Action == ActionPushImage {
		ch := children[i]
		c.prog = nil // images go one at a time: no push is running
		if progress != nil {
			c.prog = func(u v1.Update) { progress(s, u) }
		}
		if _, err := (&registryTarget{c: c, ref: ch.ref}).Write(ctx, ch.art); err != nil {
			return fmt.Errorf("push the %s image: %w (no tag was moved)", s.Platform, err)
		}
		return nil
	}
	ref, err := name.ParseReference(s.Ref, nopts...)
	if err != nil {
		return err
	}
	if err := c.putRaw(ctx, ref, raw, types.OCIImageIndex); err != nil {
		what := "push the index to " + s.Ref
		if s.Action == ActionTag {
			what = "tag " + s.Ref
		}
		return fmt.Errorf("%s: %w", what, explain(err))
	}
	return nil
}

// imageSize is the bytes of an image: manifest, config and layers.
func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, fmt.Errorf("image manifest: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, fmt.Errorf("image manifest: %w", err)
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}
