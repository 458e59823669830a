package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"strata/internal/buildreq"
	"strata/internal/layer"
	"strata/internal/layering"
)

// imageKey is the cache key of a request: everything that changes the
// result. It is the one image key, whichever front door made the request.
func (b *Builder) imageKey(ctx context.Context, req buildreq.Request) (key, rev string, err error) {
	rev, err = b.opts.Nix.Revision(ctx, req.Ref)
	if err != nil {
		return "", "", err
	}
	ts, err := b.targets(req)
	if err != nil {
		return "", "", err
	}
	var plats []string
	for _, p := range ts {
		plats = append(plats, p.Platform.String()+"="+p.Target.System+">"+p.Target.CrossSystem)
	}
	k := struct {
		V           int
		Rev         string
		Req         buildreq.Request
		Platforms   []string
		MaxLayers   int
		Strategy    string
		Compression layer.Compression
		Level       int
		MTime       int64
		// StrategyData identifies the package-set data the strategy
		// groups with; empty (and absent from the key) without any.
		StrategyData string `json:",omitempty"`
	}{3, rev, req, plats, b.budget(req), b.opts.Strategy.Name(), b.opts.Compression, b.opts.Level, b.opts.MTime.Unix(), layering.FingerprintOf(b.opts.Strategy)}
	return hashJSON(k), rev, nil
}

// layerKey is the cache key of a layer made from parts (its store paths,
// or what else determines its content) with the builder's options.
func (b *Builder) layerKey(parts ...string) string {
	return hashJSON(struct {
		V           int
		Parts       []string
		Compression layer.Compression
		Level       int
		MTime       int64
	}{1, parts, b.opts.Compression, b.opts.Level, b.opts.MTime.Unix()})
}

// budget is req's layer budget.
func (b *Builder) budget(req buildreq.Request) int {
	if req.MaxLayers > 0 {
		return req.MaxLayers
	}
	return b.opts.MaxLayers
}

func hashJSON(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	s := sha256.Sum256(raw)
	return hex.EncodeToString(s[:])
}
