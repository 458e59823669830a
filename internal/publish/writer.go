package publish

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Target is a destination of the one writer: an OCI layout, a
// docker-archive or a registry (see NewTarget). Every write to a registry
// strata makes (build --output, push, copy, index create, publish) goes
// through a registry Target, so through one transport and one keychain.
type Target interface {
	// Write writes a and its referrers. Nothing is visible under the
	// target's name (a tag, a ref.name, a file) until everything it
	// refers to is written.
	Write(ctx context.Context, a Artifact) (Result, error)
	// String is the location as given.
	String() string
}

var (
	_ Target = (*registryTarget)(nil)
	_ Target = (*layoutTarget)(nil)
	_ Target = (*archiveTarget)(nil)
)

// NewTarget returns the Target for dst, a location as ParseLocation takes
// it, configured by opts (the registry transport, credentials, progress;
// ArchiveName for a docker-archive without REPO).
func NewTarget(ctx context.Context, dst string, opts CopyOptions) (Target, error) {
	c, err := newClient(ctx, opts)
	if err != nil {
		return nil, err
	}
	return c.target(dst, opts.ArchiveName)
}

// Write writes a to dst through NewTarget.
func Write(ctx context.Context, dst string, a Artifact, opts CopyOptions) (Result, error) {
	t, err := NewTarget(ctx, dst, opts)
	if err != nil {
		return Result{}, err
	}
	return t.Write(ctx, a)
}

func (c *client) target(dst, archiveName string) (Target, error) {
	loc, err := ParseLocation(dst, c.insecure)
	if err != nil {
		return nil, fmt.Errorf("destination %w", err)
	}
	switch loc.Kind {
	case KindOCI:
		tag := loc.Ref
		if tag == "" {
			tag = "latest"
		}
		return &layoutTarget{loc: loc, tag: tag}, nil
	case KindArchive:
		if archiveName == "" {
			archiveName = "image"
		}
		ref := loc.Ref
		switch {
		case ref == "":
			ref = archiveName + ":latest"
		case !strings.ContainsAny(ref, ":/"):
			ref = archiveName + ":" + ref
		}
		tag, err := name.NewTag(ref, name.WeakValidation)
		if err != nil {
			return nil, fmt.Errorf("destination %s: image name %q: %w (want docker-archive:FILE[:TAG] or docker-archive:FILE:REPO:TAG)", dst, ref, err)
		}
		return &archiveTarget{loc: loc, tag: tag}, nil
	}
	return &registryTarget{c: c, ref: loc.Reference}, nil
}

// registryTarget writes to a registry: the artifact by digest, then its
// referrers by digest (ggcr keeps the referrers tag schema up to date
// where the registry lacks the referrers API), then, for a tag, the tag
// as a PUT of the same manifest bytes. A tag never names anything whose
// content or referrers are not written yet.
type registryTarget struct {
	c   *client
	ref name.Reference
}

func (t *registryTarget) String() string { return t.ref.String() }

func (t *registryTarget) Write(ctx context.Context, a Artifact) (Result, error) {
	d, mt, raw, err := a.describe()
	if err != nil {
		return Result{}, fmt.Errorf("read the source: %w", err)
	}
	if dg, ok := t.ref.(name.Digest); ok && dg.DigestStr() != d.String() {
		return Result{}, fmt.Errorf("destination digest %s differs from the source's %s: name the destination by tag, or by the source's digest", dg.DigestStr(), d)
	}
	repo := t.ref.Context()
	tag, isTag := t.ref.(name.Tag)
	if len(a.Referrers) == 0 || !isTag {
		// Nothing to write between the content and its name.
		if err := t.c.push(ctx, t.ref, a.taggable()); err != nil {
			return Result{}, fmt.Errorf("push %s: %w", t.ref, explain(err))
		}
	} else {
		byDigest := repo.Digest(d.String())
		if err := t.c.push(ctx, byDigest, a.taggable()); err != nil {
			return Result{}, fmt.Errorf("push %s: %w", byDigest, explain(err))
		}
	}
	if err := t.writeReferrers(ctx, repo, a.Referrers); err != nil {
		return Result{}, err
	}
	if isTag && len(a.Referrers) > 0 {
		if err := t.c.tag(ctx, tag, d, raw, mt); err != nil {
			return Result{}, fmt.Errorf("tag %s: %w", tag, explain(err))
		}
	}
	return Result{Ref: t.ref.String(), Digest: d.String(), MediaType: string(mt), Size: int64(len(raw)),
		Referrers: a.referrerDigests()}, nil
}

func (t *registryTarget) writeReferrers(ctx context.Context, repo name.Repository, rs []Artifact) error {
	for _, r := range rs {
		d, _, _, err := r.describe()
		if err != nil {
			return fmt.Errorf("read a referrer: %w", err)
		}
		ref := repo.Digest(d.String())
		if err := t.c.push(ctx, ref, r.taggable()); err != nil {
			return fmt.Errorf("push the referrer %s (an SBOM or signature of the image): %w (--referrers=false, or --sbom=false for build, leaves it behind)", ref, explain(err))
		}
		if err := t.writeReferrers(ctx, repo, r.Referrers); err != nil {
			return err
		}
	}
	return nil
}

// rawManifest is a manifest to PUT byte for byte.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// tag points tag at a manifest whose content is in the repository
// already, unless it names it already.
func (c *client) tag(ctx context.Context, tag name.Tag, d v1.Hash, raw []byte, mt types.MediaType) error {
	if desc, err := remote.Head(tag, c.opts(ctx)...); err == nil && desc.Digest == d {
		return nil
	}
	return c.putRaw(ctx, tag, raw, mt)
}

// putRaw PUTs a manifest whose content is in the repository already.
func (c *client) putRaw(ctx context.Context, ref name.Reference, raw []byte, mt types.MediaType) error {
	return remote.Put(ref, rawManifest{raw: raw, mt: mt}, c.opts(ctx)...)
}

// layoutTarget writes into an OCI image layout: the artifact listed in
// index.json under its ref.name (replacing an earlier one of that name),
// its referrers listed after it (once each). Each blob is written whole
// under its digest by ggcr's layout package; index.json is rewritten per
// entry, so a reader of a layout being written may see the image before
// its SBOM.
type layoutTarget struct {
	loc Location
	tag string
}

func (t *layoutTarget) String() string { return t.loc.Raw }

func (t *layoutTarget) Write(_ context.Context, a Artifact) (Result, error) {
	d, mt, raw, err := a.describe()
	if err != nil {
		return Result{}, fmt.Errorf("read the source: %w", err)
	}
	dir := t.loc.Path
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return Result{}, fmt.Errorf("write OCI layout %s: %w", dir, err)
		}
	}
	im, err := p.ImageIndex()
	if err != nil {
		return Result{}, fmt.Errorf("read OCI layout %s: %w", dir, err)
	}
	top, err := im.IndexManifest()
	if err != nil {
		return Result{}, fmt.Errorf("read %s/index.json: %w", dir, err)
	}
	listed := map[string]bool{}
	for _, e := range top.Manifests {
		listed[e.Digest.String()+"\x00"+e.Annotations[refNameKey]] = true
	}
	if !listed[d.String()+"\x00"+t.tag] {
		ann := layout.WithAnnotations(map[string]string{refNameKey: t.tag})
		if a.Index != nil {
			err = p.AppendIndex(a.Index, ann)
		} else {
			err = p.AppendImage(a.Image, ann)
		}
		if err != nil {
			return Result{}, fmt.Errorf("write OCI layout %s: %w", dir, err)
		}
	}
	if err := t.appendReferrers(p, listed, a.Referrers); err != nil {
		return Result{}, err
	}
	// Earlier manifests of the same name are no longer listed (their
	// blobs stay, as with any layout).
	if err := p.RemoveDescriptors(func(x v1.Descriptor) bool {
		return x.Annotations[refNameKey] == t.tag && x.Digest != d
	}); err != nil {
		return Result{}, fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	return Result{Ref: t.loc.Raw, Digest: d.String(), MediaType: string(mt), Size: int64(len(raw)),
		Referrers: a.referrerDigests()}, nil
}

// refNameKey is the annotation naming a manifest in a layout.
const refNameKey = "org.opencontainers.image.ref.name"

func (t *layoutTarget) appendReferrers(p layout.Path, listed map[string]bool, rs []Artifact) error {
	for _, r := range rs {
		d, _, _, err := r.describe()
		if err != nil {
			return fmt.Errorf("read a referrer: %w", err)
		}
		if !listed[d.String()+"\x00"] {
			if r.Index != nil {
				err = p.AppendIndex(r.Index)
			} else {
				err = p.AppendImage(r.Image)
			}
			if err != nil {
				return fmt.Errorf("write OCI layout %s: referrer %s: %w", t.loc.Path, d, err)
			}
			listed[d.String()+"\x00"] = true
		}
		if err := t.appendReferrers(p, listed, r.Referrers); err != nil {
			return err
		}
	}
	return nil
}

// archiveTarget writes a docker-archive: one image under one tag, written
// to a temporary file and renamed, so the file is whole or absent. A
// docker-archive has no place for referrers: they are left out.
type archiveTarget struct {
	loc Location
	tag name.Tag
}

func (t *archiveTarget) String() string { return t.loc.Raw }

func (t *archiveTarget) Write(_ context.Context, a Artifact) (Result, error) {
	if a.Image == nil {
		n := 0
		if a.Index != nil {
			if im, err := a.Index.IndexManifest(); err == nil {
				n = len(im.Manifests)
			}
		}
		return Result{}, fmt.Errorf("destination %s: a docker-archive holds one image and the source is an index of %d manifests: pick one platform with --platform", t.loc.Raw, n)
	}
	d, mt, raw, err := a.describe()
	if err != nil {
		return Result{}, fmt.Errorf("read the source: %w", err)
	}
	file := t.loc.Path
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return Result{}, fmt.Errorf("write docker-archive %s: %w", file, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = tarball.Write(t.tag, a.Image, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		return Result{}, fmt.Errorf("write docker-archive %s: %w", file, err)
	}
	return Result{Ref: t.loc.Raw, Digest: d.String(), MediaType: string(mt), Size: int64(len(raw))}, nil
}
