package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"time"

	"strata/internal/storage"
)

// Garbage collection.
//
// Mark: the live set is every digest reachable from
//   - the on-demand caches written by the builder (cache/images/*.json,
//     cache/layers/*.json and cache/referrers/*.json, the last listing
//     the SBOM artifacts of built images): every digest string anywhere in
//     a record, and everything reachable from those that are manifests or
//     indexes;
//   - each pushed repository's tags, and (unless DeleteUntagged) every
//     manifest linked in it; referrers whose subject is live in the same
//     repository; and everything reachable from those manifests.
//
// Sweep: a pushed repository's manifest links, blob links and referrer
// entries that are not live go; then every blob under blobs/ that is not
// live goes; then uploads whose newest file is older than UploadMaxAge go.
// Nothing younger than Grace (by modification time) is ever removed, so a
// push in progress (blobs uploaded and linked, manifest not yet put) is
// safe, and uploads in progress are untouched.
//
// The online variant (the handler's CollectGarbage) holds a lock that
// every link-creating write takes for reading, so a manifest put during the
// collection waits for it instead of racing its sweep. The offline
// command relies on Grace alone.

// GCOptions configure a collection.
type GCOptions struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Grace: objects modified more recently are kept. Default 1h;
	// negative means 0 (tests).
	Grace time.Duration
	// UploadMaxAge: uploads not written to for longer are removed.
	// Default 24h.
	UploadMaxAge time.Duration
	// DeleteUntagged removes manifests of pushed repositories that no tag
	// reaches (after Grace), like distribution's --delete-untagged.
	DeleteUntagged bool
	// Log receives one line per removal (debug) and a summary. Default
	// discard.
	Log *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// GCReport says what a collection removed (or would remove).
type GCReport struct {
	Blobs      []string // digests of removed blobs
	BlobBytes  int64    // their total size
	Links      []string // removed repository keys (manifest, blob and referrer links)
	Uploads    []string // removed upload ids
	LiveBlobs  int      // blobs kept
	DryRun     bool
	StartedAt  time.Time
	FinishedAt time.Time
}

var digestRE = regexp.MustCompile(`^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$`)

// CollectGarbage runs one collection on store. See the package's garbage
// collection notes in gc.go for what is live.
func CollectGarbage(ctx context.Context, store storage.Store, o GCOptions) (GCReport, error) {
	if o.Grace == 0 {
		o.Grace = time.Hour
	} else if o.Grace < 0 {
		o.Grace = 0
	}
	if o.UploadMaxAge <= 0 {
		o.UploadMaxAge = 24 * time.Hour
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &gc{ctx: ctx, s: store, o: o, live: map[string]bool{}, expanded: map[string]bool{}}
	g.rep.DryRun = o.DryRun
	g.rep.StartedAt = o.Now()
	g.cutoff = g.rep.StartedAt.Add(-o.Grace)
	if err := g.markCaches(); err != nil {
		return g.rep, err
	}
	if err := g.repos(); err != nil {
		return g.rep, err
	}
	if err := g.sweepBlobs(); err != nil {
		return g.rep, err
	}
	if err := g.sweepUploads(); err != nil {
		return g.rep, err
	}
	g.rep.FinishedAt = o.Now()
	o.Log.Info("garbage collection", "dryRun", o.DryRun, "blobsRemoved", len(g.rep.Blobs), "bytesFreed", g.rep.BlobBytes,
		"linksRemoved", len(g.rep.Links), "uploadsRemoved", len(g.rep.Uploads), "blobsKept", g.rep.LiveBlobs,
		"duration", g.rep.FinishedAt.Sub(g.rep.StartedAt))
	return g.rep, nil
}

// CollectGarbage runs a collection on the handler's store while holding
// off every write that links content (online garbage collection).
func (h *handler) CollectGarbage(ctx context.Context, o GCOptions) (GCReport, error) {
	h.gcMu.Lock()
	defer h.gcMu.Unlock()
	defer h.cache.invalidateAll()
	return CollectGarbage(ctx, h.store, o)
}

// Collector is implemented by the handler New returns.
type Collector interface {
	CollectGarbage(ctx context.Context, o GCOptions) (GCReport, error)
}

type gc struct {
	ctx      context.Context
	s        storage.Store
	o        GCOptions
	cutoff   time.Time
	live     map[string]bool // global live digests
	expanded map[string]bool // manifests whose references are marked
	rep      GCReport
}

// young reports whether key was modified after the grace cutoff (or
// cannot be stat'ed: then it is kept too).
func (g *gc) young(key string) bool {
	info, err := g.s.Stat(g.ctx, key)
	if err != nil {
		return true
	}
	return info.ModTime.After(g.cutoff)
}

// mark adds digest and, if it is a manifest or index, everything it
// references, to set (and to the global live set).
func (g *gc) mark(set map[string]bool, digest string) {
	stack := []string{digest}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !digestRE.MatchString(d) {
			continue
		}
		g.live[d] = true
		if set[d] {
			continue
		}
		set[d] = true
		refs, ok := g.manifestRefs(d)
		if ok {
			stack = append(stack, refs...)
		}
	}
}

// manifestRefs returns the references of digest if it is a stored
// manifest or index.
func (g *gc) manifestRefs(digest string) ([]string, bool) {
	key := storage.BlobKey(digest)
	info, err := g.s.Stat(g.ctx, key)
	if err != nil || info.Size > MaxManifestSize {
		return nil, false
	}
	body, err := getSmall(g.ctx, g.s, key, MaxManifestSize)
	if err != nil {
		return nil, false
	}
	if _, err := detectManifest(body); err != nil {
		return nil, false
	}
	pm, err := parseManifest(body)
	if err != nil {
		return nil, false
	}
	return pm.references(), true
}

// markCaches marks everything the builder's records name.
func (g *gc) markCaches() error {
	set := map[string]bool{}
	for _, prefix := range storage.CacheRecordPrefixes() {
		keys, err := g.s.List(g.ctx, prefix)
		if err != nil {
			return fmt.Errorf("registry: gc: list %s: %w", prefix, err)
		}
		for _, k := range keys {
			raw, err := getSmall(g.ctx, g.s, k, 16<<20)
			if err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				return fmt.Errorf("registry: gc: %w", err)
			}
			var v any
			if json.Unmarshal(raw, &v) != nil {
				continue
			}
			for _, d := range digestsIn(v, nil) {
				g.mark(set, d)
			}
		}
	}
	return nil
}

// digestsIn collects every string in a JSON value that is a digest.
func digestsIn(v any, out []string) []string {
	switch x := v.(type) {
	case string:
		if digestRE.MatchString(x) {
			out = append(out, x)
		}
	case []any:
		for _, e := range x {
			out = digestsIn(e, out)
		}
	case map[string]any:
		for _, e := range x {
			out = digestsIn(e, out)
		}
	}
	return out
}

// repoKeys are one pushed repository's keys by kind.
type repoKeys struct {
	tags      []string
	manifests map[string]string   // digest → link key
	blobs     map[string]string   // digest → link key
	referrers map[string][]string // referrer digest → entry keys
}

// repos marks and sweeps every pushed repository.
func (g *gc) repos() error {
	keys, err := g.s.List(g.ctx, storage.ReposPrefix)
	if err != nil {
		return fmt.Errorf("registry: gc: list repositories: %w", err)
	}
	byRepo := map[string]*repoKeys{}
	get := func(name string) *repoKeys {
		r := byRepo[name]
		if r == nil {
			r = &repoKeys{manifests: map[string]string{}, blobs: map[string]string{}, referrers: map[string][]string{}}
			byRepo[name] = r
		}
		return r
	}
	for _, k := range keys {
		name, kind, tail, ok := storage.RepoKey(k)
		if !ok {
			continue
		}
		r := get(name)
		switch kind {
		case storage.RepoTags:
			r.tags = append(r.tags, k)
		case storage.RepoManifests:
			r.manifests[strings.Replace(tail, "/", ":", 1)] = k
		case storage.RepoBlobs:
			r.blobs[strings.Replace(tail, "/", ":", 1)] = k
		case storage.RepoReferrers:
			if j := strings.LastIndexByte(tail, '/'); j >= 0 {
				d := strings.Replace(tail[j+1:], "-", ":", 1)
				r.referrers[d] = append(r.referrers[d], k)
			}
		}
	}
	names := make([]string, 0, len(byRepo))
	for n := range byRepo {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := g.repo(byRepo[n]); err != nil {
			return err
		}
	}
	return nil
}

// repo marks one repository's live content and removes its dead links.
func (g *gc) repo(r *repoKeys) error {
	set := map[string]bool{}
	for _, k := range r.tags {
		raw, err := getSmall(g.ctx, g.s, k, 1024)
		if err != nil {
			continue
		}
		g.mark(set, strings.TrimSpace(string(raw)))
	}
	for d, k := range r.manifests {
		if !g.o.DeleteUntagged || g.young(k) {
			g.mark(set, d)
		}
	}
	// Referrers of live subjects, to a fixed point.
	for changed := true; changed; {
		changed = false
		for d := range r.manifests {
			if set[d] {
				continue
			}
			body, err := getSmall(g.ctx, g.s, storage.BlobKey(d), MaxManifestSize)
			if err != nil {
				continue
			}
			pm, err := parseManifest(body)
			if err == nil && pm.Subject != nil && set[pm.Subject.Digest] {
				g.mark(set, d)
				changed = true
			}
		}
	}
	var dead []string
	for d, k := range r.manifests {
		if !set[d] {
			dead = append(dead, k)
			dead = append(dead, r.referrers[d]...)
		}
	}
	for d, entries := range r.referrers {
		if _, linked := r.manifests[d]; !linked {
			dead = append(dead, entries...) // an entry whose manifest is gone
		}
	}
	for d, k := range r.blobs {
		if set[d] {
			continue
		}
		if g.young(k) {
			g.live[d] = true // a push in progress
			continue
		}
		dead = append(dead, k)
	}
	sort.Strings(dead)
	for _, k := range dead {
		g.rep.Links = append(g.rep.Links, k)
		if err := g.remove(k, "link", "key", k); err != nil {
			return err
		}
	}
	return nil
}

// remove logs the removal of key k (a what, described by attrs) and, unless
// this is a dry run, deletes it.
func (g *gc) remove(k, what string, attrs ...any) error {
	g.o.Log.Debug("gc: remove "+what, append(attrs, "dryRun", g.o.DryRun)...)
	if g.o.DryRun {
		return nil
	}
	if err := g.s.Delete(g.ctx, k); err != nil {
		return fmt.Errorf("registry: gc: %w", err)
	}
	return nil
}

// sweepBlobs removes blobs that are not live and older than the grace.
func (g *gc) sweepBlobs() error {
	keys, err := g.s.List(g.ctx, storage.BlobsPrefix)
	if err != nil {
		return fmt.Errorf("registry: gc: list blobs: %w", err)
	}
	for _, k := range keys {
		d, ok := storage.BlobKeyDigest(k)
		if !ok {
			continue
		}
		if g.live[d] {
			g.rep.LiveBlobs++
			continue
		}
		info, err := g.s.Stat(g.ctx, k)
		if err != nil || info.ModTime.After(g.cutoff) {
			g.rep.LiveBlobs++
			continue
		}
		g.rep.Blobs = append(g.rep.Blobs, d)
		g.rep.BlobBytes += info.Size
		if err := g.remove(k, "blob", "digest", d, "size", info.Size); err != nil {
			return err
		}
	}
	return nil
}

// sweepUploads removes uploads not written to for UploadMaxAge.
func (g *gc) sweepUploads() error {
	keys, err := g.s.List(g.ctx, storage.UploadsPrefix)
	if err != nil {
		return fmt.Errorf("registry: gc: list uploads: %w", err)
	}
	newest := map[string]time.Time{}
	var ids []string
	for _, k := range keys {
		id, _, _ := strings.Cut(strings.TrimPrefix(k, storage.UploadsPrefix), "/")
		if _, ok := newest[id]; !ok {
			ids = append(ids, id)
			newest[id] = time.Time{}
		}
		info, err := g.s.Stat(g.ctx, k)
		if err != nil {
			newest[id] = g.rep.StartedAt // changing right now
			continue
		}
		if info.ModTime.After(newest[id]) {
			newest[id] = info.ModTime
		}
	}
	cut := g.rep.StartedAt.Add(-g.o.UploadMaxAge)
	for _, id := range ids {
		if newest[id].After(cut) {
			continue
		}
		g.rep.Uploads = append(g.rep.Uploads, id)
		g.o.Log.Debug("gc: remove upload", "id", id, "dryRun", g.o.DryRun)
		if !g.o.DryRun {
			if err := removePrefix(g.ctx, g.s, storage.UploadPrefix(id)); err != nil {
				return err
			}
		}
	}
	return nil
}
