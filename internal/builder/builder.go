// Package builder is the pipeline's orchestration: a build request in,
// stored manifests out. Build is its one entry point; every front door
// (the on-demand registry through internal/ondemand, strata build and
// publish through internal/buildspec) turns what it was given into a
// buildreq.Request and calls it.
//
// A build runs in named stages, per platform (stages.go):
//
//	realise      Nix builds the attributes and realises the store paths
//	             the request names → the closure graph
//	planLayers   explicit layer groups first, the strategy's groups under
//	             the rest of the budget
//	packLayers   each group packed once into a stored layer (shared by
//	             every image with the same group), in parallel
//	customise    the customisation layer (symlinks, accounts, files)
//	assemble     OCI and Docker image manifests, stored with their SBOM
//
// then, for several platforms, an index over the platform images.
//
// Caches, all in storage (key layout: internal/storage/paths.go) and so
// shared by every replica on the same store:
//
//	image records     a request's manifests; key = source revision +
//	                  request + platforms + options (key.go)
//	layer records     a packed layer's descriptor; key = its store paths +
//	                  compression + mtime (records.go)
//	referrers records an image manifest's referrers (its SBOM artifact,
//	                  see sbom.go)
//	blobs             layers, configs and manifests by digest (blobs.go)
//
// Concurrent requests for one image share one build (singleflight), and
// concurrent builds that need the same layer share one packing (pack.go).
package builder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"

	"strata/internal/buildreq"
	"strata/internal/layer"
	"strata/internal/layering"
	"strata/internal/storage"
)

// Builder builds images on demand. It is safe for concurrent use.
type Builder struct {
	opts   Options
	images singleflight.Group
	layers singleflight.Group
	packs  chan struct{}
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
	return &Builder{opts: opts, packs: make(chan struct{}, opts.Jobs), failed: failures{ttl: opts.FailureTTL}}, nil
}

// Platforms returns the configured platforms, sorted.
func (b *Builder) Platforms() []v1.Platform {
	out := make([]v1.Platform, len(b.opts.Platforms))
	for i, p := range b.opts.Platforms {
		out[i] = p.Platform
	}
	return out
}

// Build returns the image for req, building it if it is not stored yet;
// concurrent calls for the same request run one build.
func (b *Builder) Build(ctx context.Context, req buildreq.Request) (Result, error) {
	if req.Name == "" {
		req.Name = "image"
	}
	if _, err := b.targets(req); err != nil {
		return Result{}, err
	}
	key, rev, err := b.imageKey(ctx, req)
	if err != nil {
		return Result{}, err
	}
	return b.run(ctx, key, rev, req)
}

// run returns the stored image under key, or builds req and stores it
// there. Concurrent calls for the same key run one build (singleflight);
// a failure that would repeat is answered from memory (failures.go).
func (b *Builder) run(ctx context.Context, key, rev string, req buildreq.Request) (Result, error) {
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
		return b.buildOnce(context.WithoutCancel(ctx), key, rev, req)
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

// buildOnce builds req under key unless it is stored by now, or another
// process on the same store builds it meanwhile (distlock.go).
func (b *Builder) buildOnce(ctx context.Context, key, rev string, req buildreq.Request) (Result, error) {
	if r, err := b.loadResult(ctx, key); err == nil {
		r.Cached = true
		return r, nil
	}
	release, prior, done, err := b.coordinate(ctx, key, req.Name)
	if err != nil {
		return Result{}, err
	}
	if done {
		prior.Cached = true
		return prior, nil
	}
	defer release()
	return b.buildAndStore(ctx, key, rev, req)
}

// buildAndStore builds req and stores its image record under key; it
// tells the observer and the build log, logs the outcome and remembers a
// failure.
func (b *Builder) buildAndStore(ctx context.Context, key, rev string, req buildreq.Request) (Result, error) {
	start := time.Now()
	b.observer().BuildStarted()
	r, err := b.build(ctx, req, rev)
	if b.opts.Builds != nil {
		b.opts.Builds.Add(Record{Name: req.Name, Ref: req.Ref, Time: start, Duration: time.Since(start), Digest: r.OCI.Digest, Err: err})
	}
	b.observer().BuildFinished(time.Since(start), err)
	if err != nil {
		b.opts.Log.Error("build failed", "image", req.Name, "ref", req.Ref, "err", err, "nixLog", nixLogTail(err))
		b.failed.put(key, err)
		return Result{}, err
	}
	if err := b.saveResult(ctx, key, r); err != nil {
		return Result{}, err
	}
	b.opts.Log.Info("built", "image", req.Name, "ref", req.Ref, "digest", r.OCI.Digest, "duration", time.Since(start), "layersPacked", r.LayersPacked)
	return r, nil
}
