// Package builder is the pipeline's orchestration: an image spec in, stored
// manifests out. It resolves and builds packages with Nix, groups the
// closure into layers, packs each distinct layer once, writes the
// customisation layer, assembles manifests and indexes, and records them in
// storage so that later requests, for the same image or for any image that
// shares a layer, reuse the work.
//
// Caches, all in storage and so shared by every replica on the same store:
//
//	cache/images/<key>.json   an image spec's manifests; key = source revision
//	                          + canonical name + platforms + options
//	cache/layers/<key>.json   a packed layer's descriptor; key = its store
//	                          paths + compression + mtime
//	cache/referrers/<digest>  an image manifest's referrers (its SBOM
//	                          artifact, see sbom.go)
//	blobs/sha256/..           layers, configs and manifests by digest
//
// Concurrent requests for one image share one build (singleflight), and
// concurrent builds that need the same layer share one packing.
package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/singleflight"

	"strata/internal/closure"
	"strata/internal/errcode"
	"strata/internal/image"
	"strata/internal/layer"
	"strata/internal/layering"
	"strata/internal/nix"
	"strata/internal/spec"
	"strata/internal/storage"
)

// Nix is what the builder needs from the Nix driver.
type Nix interface {
	Revision(ctx context.Context, ref string) (string, error)
	Resolve(ctx context.Context, ref string, t nix.Target, names []string) ([]nix.Package, error)
	Build(ctx context.Context, ref string, t nix.Target, attrs []string) (*nix.Result, error)
	ShellPackages(ctx context.Context, ref string) ([]string, error)
}

// Platform is a platform the builder produces images for, and how Nix
// builds for it.
type Platform struct {
	Platform v1.Platform
	Target   nix.Target
}

// Options configure a Builder.
type Options struct {
	Nix   Nix
	Store storage.Store
	// Strategy groups a closure into layers; default layering.Default().
	Strategy layering.Strategy
	// MaxLayers is the layer budget of an image, the customisation layer
	// included; default 100.
	MaxLayers int
	// Platforms are the configured platforms, at least one; the order does
	// not matter (indexes are sorted).
	Platforms []Platform
	// MTime is every layer entry's modification time and the config's
	// creation time; default time.Unix(1, 0) (SOURCE_DATE_EPOCH=1).
	MTime time.Time
	// Compression of layers; default gzip.
	Compression layer.Compression
	// Level is the compression level; default 6 (as gzip -6).
	Level int
	// Jobs is how many layers are packed at once; default GOMAXPROCS.
	Jobs int
	// StoreRoot is prefixed to store paths when reading them; default "/".
	StoreRoot string
	// Log receives build events; default slog.Default().
	Log *slog.Logger
	// Progress, when set, receives progress events of every build (from
	// several goroutines at once); default none.
	Progress func(Event)
	// LeaseWait bounds how long a build waits for another process's build
	// of the same image, on a Store that implements storage.Leaser (see
	// distlock.go); set it above the Nix timeout. Default 15 minutes.
	LeaseWait time.Duration
	// Observer, when set, receives build and layer events (for metrics);
	// default none.
	Observer Observer
	// Version is strata's version, named in each SBOM's creators as
	// "Tool: strata-<Version>" (see sbom.go); default "dev".
	Version string
	// FailureTTL is how long a build failure that repeats (an unknown,
	// unfree or broken package, a Nix build that exits with an error) is
	// answered from memory instead of building again; see failures.go.
	// Default 30 seconds; negative: never remembered.
	FailureTTL time.Duration
	// Recorder, when set, records the closure of every platform image a
	// build makes, while its layers are packed: the Nix binary cache
	// (nixcache.Recorder) serves exactly the recorded store paths. A
	// recording error fails the build. Default none.
	Recorder Recorder
}

// Recorder records the store paths of a built image.
type Recorder interface {
	Record(ctx context.Context, g *closure.Graph) error
}

// Builder builds images on demand. It is safe for concurrent use.
type Builder struct {
	opts   Options
	images singleflight.Group
	layers singleflight.Group
	packs  chan struct{}
	recent *Recent
	failed failures
}

// New returns a Builder.
func New(opts Options) (*Builder, error) {
	if opts.Nix == nil || opts.Store == nil {
		return nil, errors.New("builder: Nix and Store are required")
	}
	if len(opts.Platforms) == 0 {
		return nil, errors.New("builder: at least one platform is required")
	}
	if opts.Strategy == nil {
		opts.Strategy = layering.Default()
	}
	if opts.MaxLayers == 0 {
		opts.MaxLayers = 100
	}
	if opts.MaxLayers < 2 {
		return nil, fmt.Errorf("builder: a layer budget of %d leaves no room for store paths; use 2 or more", opts.MaxLayers)
	}
	if opts.MTime.IsZero() {
		opts.MTime = time.Unix(1, 0)
	}
	if opts.Compression == "" {
		opts.Compression = layer.Compression("gzip")
	}
	if opts.Level == 0 {
		opts.Level = 6
	}
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.GOMAXPROCS(0)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	ps := append([]Platform(nil), opts.Platforms...)
	sort.Slice(ps, func(i, j int) bool { return platformLess(ps[i].Platform, ps[j].Platform) })
	opts.Platforms = ps
	if opts.FailureTTL == 0 {
		opts.FailureTTL = 30 * time.Second
	}
	return &Builder{opts: opts, packs: make(chan struct{}, opts.Jobs), recent: NewRecent(50),
		failed: failures{ttl: opts.FailureTTL}}, nil
}

// Recent returns the record of recent builds.
func (b *Builder) Recent() *Recent { return b.recent }

// Platforms returns the configured platforms, sorted.
func (b *Builder) Platforms() []v1.Platform {
	out := make([]v1.Platform, len(b.opts.Platforms))
	for i, p := range b.opts.Platforms {
		out[i] = p.Platform
	}
	return out
}

// Result is a built image: its OCI and Docker manifests, both stored as
// blobs.
type Result struct {
	Name string `json:"name"`
	// OCI is the OCI manifest or index.
	OCI Ref `json:"oci"`
	// Docker is the Docker schema 2 manifest or manifest list.
	Docker Ref `json:"docker"`
	// LayersPacked is how many layers this call packed rather than took
	// from the cache (not stored in the image record).
	LayersPacked int `json:"-"`
	// Cached is set when the whole image came from the cache.
	Cached bool `json:"-"`
}

// Ref points at a stored manifest.
type Ref struct {
	Digest    string          `json:"digest"`
	MediaType types.MediaType `json:"mediaType"`
	Size      int64           `json:"size"`
}

// PlatformError is a build that failed for one platform.
type PlatformError struct {
	Platform string
	Err      error
}

func (e *PlatformError) Error() string { return e.Platform + ": " + e.Err.Error() }
func (e *PlatformError) Unwrap() error { return e.Err }

// ErrorCode passes the underlying error's code through.
func (e *PlatformError) ErrorCode() string {
	if c, ok := errcode.Of(e.Err); ok {
		return string(c)
	}
	return string(errcode.Unknown)
}

// NotConfiguredError is a request for a platform the server does not build.
type NotConfiguredError struct {
	Platform   string
	Configured []string
}

func (e *NotConfiguredError) Error() string {
	return fmt.Sprintf("platform %s is not configured on this server (it builds %s); ask for one of those, or start the server with --platforms including %s",
		e.Platform, strings.Join(e.Configured, ", "), e.Platform)
}

// ErrorCode is the distribution-spec code for an image that cannot exist here.
func (e *NotConfiguredError) ErrorCode() string { return string(errcode.ManifestUnknown) }

// Build returns the image for s, building it if it is not stored yet.
// Concurrent calls for the same image run one build.
func (b *Builder) Build(ctx context.Context, s spec.Spec) (Result, error) {
	key, rev, err := b.imageKey(ctx, s)
	if err != nil {
		return Result{}, err
	}
	return b.run(ctx, key, rev, b.specRequest(s))
}

// run returns the stored image under key, or builds req and stores it
// there. Concurrent calls for the same key run one build.
func (b *Builder) run(ctx context.Context, key, rev string, req Request) (Result, error) {
	if r, err := b.loadResult(ctx, key); err == nil {
		r.Cached = true
		return r, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return Result{}, err
	}
	if err := b.failed.get(key); err != nil {
		return Result{}, err
	}
	ch := b.images.DoChan(key, func() (any, error) {
		// The build outlives any one request: others may be waiting on it.
		// Nix's own timeout bounds it.
		bctx := context.WithoutCancel(ctx)
		if r, err := b.loadResult(bctx, key); err == nil {
			r.Cached = true
			return r, nil
		}
		// Other processes on the same store: one builds, the others wait.
		release, prior, done, err := b.coordinate(bctx, key, req.Name)
		if err != nil {
			return Result{}, err
		}
		if done {
			prior.Cached = true
			return prior, nil
		}
		defer release()
		start := time.Now()
		b.observer().BuildStarted()
		r, err := b.build(bctx, req, rev)
		b.recent.Add(Record{Name: req.Name, Ref: req.Ref, Time: start, Duration: time.Since(start), Digest: r.OCI.Digest, Err: err})
		b.observer().BuildFinished(time.Since(start), err)
		if err != nil {
			b.opts.Log.Error("build failed", "image", req.Name, "ref", req.Ref, "err", err, "nixLog", nixLogTail(err))
			b.failed.put(key, err)
			return Result{}, err
		}
		if err := b.saveResult(bctx, key, r); err != nil {
			return Result{}, err
		}
		b.opts.Log.Info("built", "image", req.Name, "ref", req.Ref, "digest", r.OCI.Digest, "duration", time.Since(start), "layersPacked", r.LayersPacked)
		return r, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Result{}, res.Err
		}
		return res.Val.(Result), nil
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

func nixLogTail(err error) string {
	var be *nix.BuildError
	if errors.As(err, &be) {
		return be.Log
	}
	return ""
}

// imageKey is the cache key of an image spec: everything that changes the
// result.
func (b *Builder) imageKey(ctx context.Context, s spec.Spec) (key, rev string, err error) {
	if s.Platform != "" {
		if _, ok := b.platform(s.Platform); !ok {
			return "", "", b.notConfigured(s.Platform)
		}
	}
	rev, err = b.opts.Nix.Revision(ctx, s.Ref)
	if err != nil {
		return "", "", err
	}
	var plats []string
	for _, p := range b.targets(s) {
		plats = append(plats, p.Platform.String()+"="+p.Target.System+">"+p.Target.CrossSystem)
	}
	k := struct {
		V           int
		Rev, Name   string
		Platforms   []string
		Single      bool
		MaxLayers   int
		Strategy    string
		Compression layer.Compression
		Level       int
		MTime       int64
		// StrategyData identifies the package-set data the strategy
		// groups with; empty (and absent from the key) without any.
		StrategyData string `json:",omitempty"`
	}{2, rev, s.Name(), plats, s.Platform != "", b.opts.MaxLayers, b.opts.Strategy.Name(), b.opts.Compression, b.opts.Level, b.opts.MTime.Unix(), layering.FingerprintOf(b.opts.Strategy)}
	return hashJSON(k), rev, nil
}

func (b *Builder) platform(p string) (Platform, bool) {
	for _, c := range b.opts.Platforms {
		if c.Platform.String() == p {
			return c, true
		}
	}
	return Platform{}, false
}

func (b *Builder) notConfigured(p string) error {
	var names []string
	for _, c := range b.opts.Platforms {
		names = append(names, c.Platform.String())
	}
	return &NotConfiguredError{Platform: p, Configured: names}
}

// targets are the platforms s is built for.
func (b *Builder) targets(s spec.Spec) []Platform {
	if s.Platform != "" {
		p, _ := b.platform(s.Platform)
		return []Platform{p}
	}
	return b.opts.Platforms
}

// versionOf is the version of the only requested package, if there is one.
func versionOf(pkgs []nix.Package) string {
	if len(pkgs) == 1 {
		return pkgs[0].Version
	}
	return ""
}

func groupComment(g layering.Group) string {
	if len(g.Paths) == 1 {
		return "store path " + g.Paths[0]
	}
	return fmt.Sprintf("%d store paths", len(g.Paths))
}

// layerRecord is the cached descriptor of a packed layer.
type layerRecord struct {
	Digest    string          `json:"digest"`
	DiffID    string          `json:"diffID"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType"`
}

func (b *Builder) layerKey(parts ...string) string {
	return hashJSON(struct {
		V           int
		Parts       []string
		Compression layer.Compression
		Level       int
		MTime       int64
	}{1, parts, b.opts.Compression, b.opts.Level, b.opts.MTime.Unix()})
}

// storePathLayer returns the layer of a group of store paths, packing it
// only when no stored layer has the same paths and options.
func (b *Builder) storePathLayer(ctx context.Context, grp layering.Group, st *stats) (v1.Layer, error) {
	key := b.layerKey(grp.Paths...)
	return b.cachedLayer(ctx, key, func(w io.Writer) error {
		return layer.WriteStorePaths(ctx, w, grp.Paths, layer.Options{Root: b.opts.StoreRoot, MTime: b.opts.MTime})
	}, st)
}

// stats counts what one build did.
type stats struct {
	packed atomic.Int64
}

func (b *Builder) cachedLayer(ctx context.Context, key string, write func(io.Writer) error, st *stats) (v1.Layer, error) {
	rkey := storage.LayerRecordKey(key)
	if l, err := b.loadLayer(ctx, rkey); err == nil {
		b.observer().LayerCached()
		return l, nil
	}
	v, err, _ := b.layers.Do(key, func() (any, error) {
		if l, err := b.loadLayer(ctx, rkey); err == nil {
			b.observer().LayerCached()
			return l, nil
		}
		select {
		case b.packs <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-b.packs }()
		st.packed.Add(1)
		b.observer().LayerPacked()
		w, err := b.opts.Store.Create(ctx)
		if err != nil {
			return nil, err
		}
		d, err := layer.Pack(ctx, w, b.opts.Compression, b.opts.Level, write)
		if err != nil {
			_ = w.Cancel(ctx)
			return nil, err
		}
		if err := w.Commit(ctx, storage.BlobKey(d.Digest.String())); err != nil {
			return nil, err
		}
		rec := layerRecord{Digest: d.Digest.String(), DiffID: d.DiffID.String(), Size: d.Size, MediaType: d.MediaType}
		raw, _ := json.Marshal(rec)
		if err := b.put(ctx, rkey, raw); err != nil {
			return nil, err
		}
		return b.storedLayer(rec)
	})
	if err != nil {
		return nil, err
	}
	return v.(v1.Layer), nil
}

func (b *Builder) loadLayer(ctx context.Context, rkey string) (v1.Layer, error) {
	raw, err := b.get(ctx, rkey)
	if err != nil {
		return nil, err
	}
	var rec layerRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("builder: layer record %s: %w", rkey, err)
	}
	// The record is written after its blob; check the blob is still there.
	if _, err := b.opts.Store.Stat(ctx, storage.BlobKey(rec.Digest)); err != nil {
		return nil, err
	}
	return b.storedLayer(rec)
}

func (b *Builder) storedLayer(rec layerRecord) (v1.Layer, error) {
	dg, err := v1.NewHash(rec.Digest)
	if err != nil {
		return nil, err
	}
	diff, err := v1.NewHash(rec.DiffID)
	if err != nil {
		return nil, err
	}
	st := b.opts.Store
	return layer.NewStored(layer.Desc{Digest: dg, DiffID: diff, Size: rec.Size, MediaType: rec.MediaType}, func() (io.ReadCloser, error) {
		return st.Open(context.Background(), storage.BlobKey(rec.Digest))
	})
}

// customLayer packs the customisation layer. Its content is a function of
// its inputs, so it is cached like any other layer.
func (b *Builder) customLayer(ctx context.Context, c layer.Custom, st *stats) (v1.Layer, []string, error) {
	var env []string
	var buf bytes.Buffer
	res, err := layer.WriteCustomisation(ctx, &buf, c)
	if err != nil {
		return nil, nil, err
	}
	env = res.Env
	key := b.layerKey("custom", fmt.Sprintf("%x", sha256.Sum256(buf.Bytes())))
	l, err := b.cachedLayer(ctx, key, func(w io.Writer) error {
		_, err := w.Write(buf.Bytes())
		return err
	}, st)
	return l, env, err
}

func (b *Builder) putManifest(ctx context.Context, m interface {
	RawManifest() ([]byte, error)
	MediaType() (types.MediaType, error)
}) (Ref, error) {
	raw, err := m.RawManifest()
	if err != nil {
		return Ref{}, err
	}
	mt, err := m.MediaType()
	if err != nil {
		return Ref{}, err
	}
	d, err := b.putBlob(ctx, raw)
	if err != nil {
		return Ref{}, err
	}
	return Ref{Digest: d, MediaType: mt, Size: int64(len(raw))}, nil
}

// putBlob stores data under its digest unless it is there already.
func (b *Builder) putBlob(ctx context.Context, data []byte) (string, error) {
	d := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	key := storage.BlobKey(d)
	if info, err := b.opts.Store.Stat(ctx, key); err == nil && info.Size == int64(len(data)) {
		return d, nil
	}
	return d, b.put(ctx, key, data)
}

func (b *Builder) put(ctx context.Context, key string, data []byte) error {
	w, err := b.opts.Store.Create(ctx)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		_ = w.Cancel(ctx)
		return err
	}
	return w.Commit(ctx, key)
}

func (b *Builder) get(ctx context.Context, key string) ([]byte, error) {
	r, err := b.opts.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, 64<<20))
}

// ReadBlob returns a stored blob's bytes (manifests and configs).
func (b *Builder) ReadBlob(ctx context.Context, digest string) ([]byte, error) {
	return b.get(ctx, storage.BlobKey(digest))
}

func (b *Builder) loadResult(ctx context.Context, key string) (Result, error) {
	raw, err := b.get(ctx, storage.ImageRecordKey(key))
	if err != nil {
		return Result{}, err
	}
	var r Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return Result{}, fmt.Errorf("builder: image record %s: %w", key, err)
	}
	for _, d := range []string{r.OCI.Digest, r.Docker.Digest} {
		if _, err := b.opts.Store.Stat(ctx, storage.BlobKey(d)); err != nil {
			return Result{}, err
		}
	}
	return r, nil
}

func (b *Builder) saveResult(ctx context.Context, key string, r Result) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.put(ctx, storage.ImageRecordKey(key), raw)
}

func hashJSON(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	s := sha256.Sum256(raw)
	return hex.EncodeToString(s[:])
}

func unique(s []string) []string {
	seen := map[string]bool{}
	out := s[:0:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func platformLess(a, b v1.Platform) bool {
	ps := []v1.Platform{b, a}
	image.SortPlatforms(ps)
	return ps[0].String() == a.String() && a.String() != b.String()
}

// Record is one build, for the status page.
type Record struct {
	Name     string
	Ref      string
	Time     time.Time
	Duration time.Duration
	Digest   string
	Err      error
}

// Recent is a bounded list of recent builds, newest first.
type Recent struct {
	mu   sync.Mutex
	max  int
	list []Record
}

// NewRecent returns a list that keeps max records.
func NewRecent(max int) *Recent { return &Recent{max: max} }

// Add records a build.
func (r *Recent) Add(rec Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append([]Record{rec}, r.list...)
	if len(r.list) > r.max {
		r.list = r.list[:r.max]
	}
}

// List returns the records, newest first.
func (r *Recent) List() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.list...)
}
