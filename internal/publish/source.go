package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Artifact is what a Target writes: one image or one index, and the
// manifests that refer to it (SBOMs, signatures: each has a subject that is
// the image, the index or one of the index's children). Referrers may have
// referrers of their own.
type Artifact struct {
	// Image is set for an image; exactly one of Image and Index is set.
	Image v1.Image
	// Index is set for an index.
	Index v1.ImageIndex
	// Referrers are written after the artifact, by digest. Default none.
	Referrers []Artifact
}

// taggable is the image or the index.
func (a Artifact) taggable() remote.Taggable {
	if a.Index != nil {
		return a.Index
	}
	return a.Image
}

// describe returns the digest, media type and raw manifest.
func (a Artifact) describe() (v1.Hash, types.MediaType, []byte, error) {
	if a.Index == nil && a.Image == nil {
		return v1.Hash{}, "", nil, errors.New("empty artifact: neither an image nor an index")
	}
	var (
		d   v1.Hash
		mt  types.MediaType
		raw []byte
		err error
	)
	if a.Index != nil {
		if d, err = a.Index.Digest(); err == nil {
			if mt, err = a.Index.MediaType(); err == nil {
				raw, err = a.Index.RawManifest()
			}
		}
	} else if d, err = a.Image.Digest(); err == nil {
		if mt, err = a.Image.MediaType(); err == nil {
			raw, err = a.Image.RawManifest()
		}
	}
	return d, mt, raw, err
}

// referrerDigests lists the digests of every referrer, depth first.
func (a Artifact) referrerDigests() []string {
	var out []string
	for _, r := range a.Referrers {
		if d, _, _, err := r.describe(); err == nil {
			out = append(out, d.String())
		}
		out = append(out, r.referrerDigests()...)
	}
	return out
}

// SourceOptions selects what Open reads from a source.
type SourceOptions struct {
	// Platform picks one platform's image: from a layout or archive
	// holding several images, or a child of an index. Default nil: the
	// source must hold one image or index.
	Platform *v1.Platform
	// NoReferrers leaves the referrers (SBOMs, signatures) behind.
	// Default false: they come along.
	NoReferrers bool
}

// open resolves a source location into an artifact.
func (c *client) open(ctx context.Context, loc Location, o SourceOptions) (Artifact, error) {
	switch loc.Kind {
	case KindOCI:
		return openLayout(loc, o)
	case KindArchive:
		return openArchive(loc, o)
	}
	return c.openRemote(ctx, loc.Reference, o)
}

// subjectOf reads the subject of a raw manifest or index, if any.
func subjectOf(raw []byte) *v1.Descriptor {
	var m struct {
		Subject *v1.Descriptor `json:"subject"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m.Subject
}

// layoutEntry is one manifest listed in a layout's index.json.
type layoutEntry struct {
	desc    v1.Descriptor
	subject string // digest of its subject, "" for none
}

// candidate is an image a source could mean, for --platform and for the
// error that lists them.
type candidate struct {
	art      Artifact
	digest   string
	platform string // "" when unknown
	name     string // tag or ref.name; "" for none
}

func (c candidate) String() string {
	s := c.platform
	if s == "" {
		s = "unknown platform"
	}
	s += " " + c.digest
	if c.name != "" {
		s += " (" + c.name + ")"
	}
	return s
}

func imagePlatform(img v1.Image) string {
	cf, err := img.ConfigFile()
	if err != nil || cf.OS == "" {
		return ""
	}
	return platformString(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant})
}

// openLayout reads the artifact of an OCI layout source: the manifest
// named by its REF, else the one that is no other's referrer (choose picks
// by --platform among several), with its referrers from the layout.
func openLayout(loc Location, o SourceOptions) (Artifact, error) {
	l, err := readLayout(loc.Path, o.NoReferrers)
	if err != nil {
		return Artifact{}, err
	}
	picked, err := l.pick(loc.Ref)
	if err != nil {
		return Artifact{}, err
	}
	var cands []candidate
	for _, e := range picked {
		a, err := l.load(e.desc)
		if err != nil {
			return Artifact{}, err
		}
		cands = append(cands, candidate{art: a, digest: e.desc.Digest.String(),
			name: e.desc.Annotations["org.opencontainers.image.ref.name"]})
	}
	a, err := choose("OCI layout "+l.dir, "oci:"+l.dir+":REF", cands, o.Platform)
	if err != nil {
		return Artifact{}, err
	}
	return l.withReferrers(a)
}

// ociLayout is an OCI layout opened as a source.
type ociLayout struct {
	dir         string
	top         v1.ImageIndex
	entries     []layoutEntry   // the manifests of index.json
	present     map[string]bool // their digests and their children's
	noReferrers bool            // leave referrers behind
}

// readLayout reads the layout in dir: index.json's entries, each with
// its subject.
func readLayout(dir string, noReferrers bool) (*ociLayout, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("open OCI layout %s: %w (want a directory with index.json and oci-layout)", dir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("read OCI layout %s: %w", dir, err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read %s/index.json: %w", dir, err)
	}
	l := &ociLayout{dir: dir, top: top, present: map[string]bool{}, noReferrers: noReferrers}
	for _, d := range im.Manifests {
		raw, err := p.Bytes(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("read manifest %s in %s: %w", d.Digest, dir, err)
		}
		e := layoutEntry{desc: d}
		if s := subjectOf(raw); s != nil {
			e.subject = s.Digest.String()
		}
		l.entries = append(l.entries, e)
		l.present[d.Digest.String()] = true
		if d.MediaType.IsIndex() {
			// An SBOM of a child is a referrer too, not an image.
			if im, err := v1.ParseIndexManifest(bytes.NewReader(raw)); err == nil {
				for _, ch := range im.Manifests {
					l.present[ch.Digest.String()] = true
				}
			}
		}
	}
	return l, nil
}

// pick returns the candidates: the manifest named by ref (a name or a
// digest), else every manifest that is not a referrer of another one in
// the layout.
func (l *ociLayout) pick(ref string) ([]layoutEntry, error) {
	var picked []layoutEntry
	for _, e := range l.entries {
		n := e.desc.Annotations["org.opencontainers.image.ref.name"]
		switch {
		case ref != "" && (n == ref || e.desc.Digest.String() == ref):
			picked = append(picked, e)
		case ref == "" && (e.subject == "" || !l.present[e.subject]):
			picked = append(picked, e)
		}
	}
	switch {
	case len(picked) == 0 && ref != "":
		return nil, fmt.Errorf("OCI layout %s has no manifest named %q (%s)", l.dir, ref, listLayout(l.entries))
	case len(picked) == 0:
		return nil, fmt.Errorf("OCI layout %s is empty", l.dir)
	case len(picked) > 1 && ref != "":
		return nil, fmt.Errorf("OCI layout %s has %d manifests named %q: name one by digest (oci:%s:sha256:...)", l.dir, len(picked), ref, l.dir)
	}
	return picked, nil
}

// load reads the image or index d of the layout.
func (l *ociLayout) load(d v1.Descriptor) (Artifact, error) {
	if d.MediaType.IsIndex() {
		idx, err := l.top.ImageIndex(d.Digest)
		if err != nil {
			return Artifact{}, fmt.Errorf("read index %s in %s: %w", d.Digest, l.dir, err)
		}
		return Artifact{Index: idx}, nil
	}
	img, err := l.top.Image(d.Digest)
	if err != nil {
		return Artifact{}, fmt.Errorf("read image %s in %s: %w", d.Digest, l.dir, err)
	}
	return Artifact{Image: img}, nil
}

// referrersOf gathers the entries whose subject is one of digests,
// recursively (a signature of an SBOM), at most depth levels deep.
func (l *ociLayout) referrersOf(digests []string, depth int) ([]Artifact, error) {
	if l.noReferrers || depth == 0 {
		return nil, nil
	}
	want := map[string]bool{}
	for _, d := range digests {
		want[d] = true
	}
	var out []Artifact
	for _, e := range l.entries {
		if e.subject == "" || !want[e.subject] {
			continue
		}
		a, err := l.load(e.desc)
		if err != nil {
			return nil, err
		}
		if a.Referrers, err = l.referrersOf([]string{e.desc.Digest.String()}, depth-1); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// withReferrers adds to a the layout's referrers of it and, for an index,
// of its children.
func (l *ociLayout) withReferrers(a Artifact) (Artifact, error) {
	d, _, _, err := a.describe()
	if err != nil {
		return Artifact{}, err
	}
	subjects := []string{d.String()}
	if a.Index != nil {
		cm, err := a.Index.IndexManifest()
		if err != nil {
			return Artifact{}, err
		}
		for _, ch := range cm.Manifests {
			subjects = append(subjects, ch.Digest.String())
		}
	}
	a.Referrers, err = l.referrersOf(subjects, 4)
	return a, err
}

// listLayout names the manifests of a layout for an error.
func listLayout(entries []layoutEntry) string {
	var names []string
	for _, e := range entries {
		if n := e.desc.Annotations["org.opencontainers.image.ref.name"]; n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "it names no manifest: pick one by digest"
	}
	return "it has " + strings.Join(names, ", ")
}

// choose picks one artifact of cands: the only one without a platform
// asked for; else the one image of that platform, looking into indexes.
func choose(what, byRef string, cands []candidate, want *v1.Platform) (Artifact, error) {
	if want == nil {
		if len(cands) == 1 {
			return cands[0].art, nil
		}
		var list []string
		for _, c := range expand(cands) {
			list = append(list, c.String())
		}
		return Artifact{}, fmt.Errorf("%s holds %d images: %s; pick one with --platform OS/ARCH or %s", what, len(cands), strings.Join(list, ", "), byRef)
	}
	all := expand(cands)
	var match []candidate
	for _, c := range all {
		if c.art.Image == nil || c.platform == "" {
			continue
		}
		p, err := v1.ParsePlatform(c.platform)
		if err == nil && satisfies(*p, *want) {
			match = append(match, c)
		}
	}
	var list []string
	for _, c := range all {
		list = append(list, c.String())
	}
	switch len(match) {
	case 1:
		return match[0].art, nil
	case 0:
		return Artifact{}, fmt.Errorf("%s has no %s image: it holds %s", what, platformString(*want), strings.Join(list, ", "))
	}
	return Artifact{}, fmt.Errorf("%s holds %d %s images: %s; pick one with %s", what, len(match), platformString(*want), strings.Join(list, ", "), byRef)
}

// expand lists the images of cands: an image as it is, an index as its
// children (with the platform of their descriptor or config).
func expand(cands []candidate) []candidate {
	var out []candidate
	for _, c := range cands {
		if c.art.Image != nil {
			if c.platform == "" {
				c.platform = imagePlatform(c.art.Image)
			}
			out = append(out, c)
			continue
		}
		im, err := c.art.Index.IndexManifest()
		if err != nil {
			out = append(out, c)
			continue
		}
		for _, d := range im.Manifests {
			if d.MediaType.IsIndex() {
				continue
			}
			img, err := c.art.Index.Image(d.Digest)
			if err != nil {
				continue
			}
			ch := candidate{art: Artifact{Image: img}, digest: d.Digest.String(), name: c.name}
			if d.Platform != nil {
				ch.platform = platformString(*d.Platform)
			} else {
				ch.platform = imagePlatform(img)
			}
			out = append(out, ch)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].platform < out[j].platform })
	return out
}

func openArchive(loc Location, o SourceOptions) (Artifact, error) {
	file := loc.Path
	if _, err := os.Stat(file); err != nil {
		return Artifact{}, fmt.Errorf("docker-archive %s: %w", file, err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
	if err != nil {
		return Artifact{}, fmt.Errorf("read docker-archive %s: %w (want a file written by docker save or strata build --output docker-archive:FILE)", file, err)
	}
	var cands []candidate
	for i, d := range m {
		n := ""
		if len(d.RepoTags) > 0 {
			n = d.RepoTags[0]
		}
		if loc.Ref != "" && !archiveTagMatches(d.RepoTags, loc.Ref) {
			continue
		}
		var tag *name.Tag
		if n != "" {
			t, err := name.NewTag(n, name.WeakValidation)
			if err != nil {
				return Artifact{}, fmt.Errorf("docker-archive %s: image %q: %w", file, n, err)
			}
			tag = &t
		} else if len(m) > 1 {
			continue // an untagged image of several cannot be opened alone
		}
		img, err := tarball.ImageFromPath(file, tag)
		if err != nil {
			return Artifact{}, fmt.Errorf("read image %d of docker-archive %s: %w", i+1, file, err)
		}
		d, err := img.Digest()
		if err != nil {
			return Artifact{}, fmt.Errorf("read image %d of docker-archive %s: %w", i+1, file, err)
		}
		cands = append(cands, candidate{art: Artifact{Image: img}, digest: d.String(), name: n})
	}
	if len(cands) == 0 {
		if loc.Ref != "" {
			return Artifact{}, fmt.Errorf("docker-archive %s has no image %q", file, loc.Ref)
		}
		return Artifact{}, fmt.Errorf("docker-archive %s holds no image that can be named: docker-archive:FILE:REPO:TAG", file)
	}
	return choose("docker-archive "+file, "docker-archive:"+file+":REPO:TAG", cands, o.Platform)
}

// archiveTagMatches reports whether ref ("repo:tag" or a bare tag) names
// one of tags.
func archiveTagMatches(tags []string, ref string) bool {
	for _, t := range tags {
		if t == ref {
			return true
		}
		if pt, err := name.NewTag(t, name.WeakValidation); err == nil {
			if pt.TagStr() == ref && !strings.Contains(ref, ":") {
				return true
			}
			if r, err := name.NewTag(ref, name.WeakValidation); err == nil && r.String() == pt.String() {
				return true
			}
		}
	}
	return false
}

// maxReferrerDepth bounds how deep referrers of referrers are followed.
const maxReferrerDepth = 4

func (c *client) openRemote(ctx context.Context, ref name.Reference, o SourceOptions) (Artifact, error) {
	desc, err := remote.Get(ref, c.opts(ctx)...)
	if err != nil {
		return Artifact{}, fmt.Errorf("fetch %s: %w", ref, explain(err))
	}
	var a Artifact
	switch {
	case desc.MediaType.IsSchema1():
		return Artifact{}, fmt.Errorf("%s is a Docker schema 1 manifest, which strata does not copy: convert it with a newer client first", ref)
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return Artifact{}, fmt.Errorf("read index %s: %w", ref, err)
		}
		a.Index = idx
	default:
		img, err := desc.Image()
		if err != nil {
			return Artifact{}, fmt.Errorf("read image %s: %w", ref, err)
		}
		a.Image = img
	}
	if o.Platform != nil {
		if a, err = choose(ref.String(), "REGISTRY/REPOSITORY@DIGEST", []candidate{{art: a, digest: desc.Digest.String()}}, o.Platform); err != nil {
			return Artifact{}, err
		}
	}
	if o.NoReferrers {
		return a, nil
	}
	d, _, _, err := a.describe()
	if err != nil {
		return Artifact{}, err
	}
	subjects := []string{d.String()}
	if a.Index != nil {
		im, err := a.Index.IndexManifest()
		if err != nil {
			return Artifact{}, fmt.Errorf("read index %s: %w", ref, err)
		}
		for _, ch := range im.Manifests {
			subjects = append(subjects, ch.Digest.String())
		}
	}
	if a.Referrers, err = c.remoteReferrers(ctx, ref.Context(), subjects, maxReferrerDepth); err != nil {
		return Artifact{}, err
	}
	return a, nil
}

// remoteReferrers lists the referrers of subjects in repo (the referrers
// API, or the referrers tag schema where the registry lacks it) and opens
// each, with its own referrers down to depth levels.
func (c *client) remoteReferrers(ctx context.Context, repo name.Repository, subjects []string, depth int) ([]Artifact, error) {
	if depth == 0 {
		return nil, nil
	}
	var out []Artifact
	seen := map[string]bool{}
	for _, s := range subjects {
		idx, err := remote.Referrers(repo.Digest(s), c.opts(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("list the referrers of %s@%s: %w (--referrers=false leaves them behind)", repo, s, explain(err))
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("list the referrers of %s@%s: %w", repo, s, err)
		}
		for _, d := range im.Manifests {
			if seen[d.Digest.String()] {
				continue
			}
			seen[d.Digest.String()] = true
			r, err := c.openRemote(ctx, repo.Digest(d.Digest.String()), SourceOptions{NoReferrers: true})
			if err != nil {
				return nil, fmt.Errorf("referrer of %s@%s: %w", repo, s, err)
			}
			if r.Referrers, err = c.remoteReferrers(ctx, repo, []string{d.Digest.String()}, depth-1); err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}
