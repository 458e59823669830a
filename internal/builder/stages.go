package builder

import (
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"strata/internal/buildreq"
	"strata/internal/closure"
	"strata/internal/image"
	"strata/internal/layer"
	"strata/internal/layering"
	"strata/internal/nix"
	"strata/internal/nixcache"
)

// buildPlatform builds and stores req's image for one platform, stage by
// stage (see the package documentation).
func (b *Builder) buildPlatform(ctx context.Context, req buildreq.Request, p Platform, r *resolved, names []string, st *stats) (*built, error) {
	rz, err := b.realise(ctx, req, p, r, names)
	if err != nil {
		return nil, err
	}
	plan, err := b.planLayers(req, r, rz)
	if err != nil {
		return nil, err
	}
	pk, err := b.packLayers(ctx, p, plan, rz.graph, st)
	if err != nil {
		return nil, err
	}
	custom, env, err := b.customise(ctx, req, p, r, names, rz, st)
	if err != nil {
		return nil, err
	}
	parts := stack(plan, pk, custom)
	parts.env = env
	if v := versionOf(rz.pkgs); v != "" && len(names) == 1 && len(req.Layers) == 0 {
		parts.version = v
	}
	im, err := b.assemble(ctx, req, p, parts)
	if err != nil {
		return nil, err
	}
	if err := b.attachSBOM(ctx, req.Name, im.ociImg, rz.graph, sbomPackages(r, rz.pkgs), im.oci, im.docker); err != nil {
		return nil, err
	}
	return im, nil
}

// realised is what Nix made for one platform.
type realised struct {
	graph *closure.Graph    // the closure of everything the request names
	outs  map[string]string // attribute → out path
	pkgs  []nix.Package     // the built attributes, with their metadata
}

// realise is the first stage: Nix builds the resolved attributes and
// realises the store paths (and inputs) the request names; their closure
// graphs merge into one.
func (b *Builder) realise(ctx context.Context, req buildreq.Request, p Platform, r *resolved, names []string) (*realised, error) {
	plat := p.Platform.String()
	rz := &realised{outs: map[string]string{}}
	var graphs []*closure.Graph
	if len(r.attrs) > 0 {
		b.opts.Log.Info("nix build", "image", req.Name, "platform", plat, "attrs", r.attrs)
		b.progress(Event{Kind: "nix", Platform: plat, Total: len(r.attrs)})
		res, err := b.opts.Nix.Build(ctx, req.Ref, p.Target, r.attrs)
		if err != nil {
			return nil, err
		}
		if res.Graph != nil {
			graphs = append(graphs, res.Graph)
		}
		for _, pk := range res.Packages {
			rz.outs[pk.Attr] = pk.OutPath
		}
		rz.pkgs = res.Packages
	}
	var storePaths []string
	for _, n := range append(append(append([]string(nil), names...), groupNames(req.Layers)...), req.Include...) {
		if isStorePath(n) {
			sp, err := nix.StorePathOf(n)
			if err != nil {
				return nil, err
			}
			storePaths = append(storePaths, sp)
		}
	}
	storePaths = unique(storePaths)
	if len(storePaths) > 0 || len(req.Inputs) > 0 {
		pn, _ := b.opts.Nix.(PathNix)
		if pn == nil {
			return nil, errors.New("builder: this Nix driver cannot build store paths")
		}
		b.progress(Event{Kind: "nix", Platform: plat, Total: len(req.Inputs)})
		res, err := pn.Realise(ctx, req.Inputs, storePaths)
		if err != nil {
			return nil, err
		}
		if res.Graph != nil {
			graphs = append(graphs, res.Graph)
		}
	}
	rz.graph = closure.Merge(graphs...)
	return rz, nil
}

// layerPlan is the store-path layers of an image, in order.
type layerPlan struct {
	groups   []layering.Group
	comments []string // each group's comment in the image history
	// closureInfo is a nix-snapshotter image's closure-info path (its
	// store paths are in no group); nil for other images.
	closureInfo *nixcache.ClosureInfo
}

// planLayers is the second stage: the explicit layer groups first, each
// its closure minus earlier groups, then the strategy's groups of the
// rest of the closure under the remaining budget (the customisation
// layer takes one).
func (b *Builder) planLayers(req buildreq.Request, r *resolved, rz *realised) (*layerPlan, error) {
	budget := b.budget(req)
	if len(req.Layers)+1 > budget {
		return nil, fmt.Errorf("builder: %d layer groups and the customisation layer need %d layers, over the budget of %d; raise maxLayers", len(req.Layers), len(req.Layers)+1, budget)
	}
	plan := &layerPlan{}
	assigned := map[string]bool{}
	for i, lg := range req.Layers {
		var roots []string
		for _, n := range lg.Packages {
			op, err := outPath(n, r, rz.outs)
			if err != nil {
				return nil, err
			}
			roots = append(roots, op)
		}
		var paths []string
		for _, cp := range rz.graph.Closure(roots...) {
			if !assigned[cp] {
				assigned[cp] = true
				paths = append(paths, cp)
			}
		}
		name := lg.Name
		if name == "" {
			name = strings.Join(lg.Packages, "+")
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("builder: layer group %d (%s) adds no store path: earlier groups hold its whole closure; drop it or move it before them", i+1, name)
		}
		plan.groups = append(plan.groups, layering.Group{Paths: paths})
		plan.comments = append(plan.comments, fmt.Sprintf("layer group %s: %d store paths", name, len(paths)))
	}
	if req.Format == buildreq.FormatNixSnapshotter {
		// No store path is in a layer: one layer of mount points, named
		// by the closure-info path, follows the customisation layer.
		ci, err := b.snapshotterClosure(req, rz.graph)
		if err != nil {
			return nil, err
		}
		plan.closureInfo = ci
	} else if rest := remainder(rz.graph, assigned); rest != nil {
		left := budget - len(plan.groups) - 1
		if left < 1 {
			return nil, fmt.Errorf("builder: no layer left for the %d store paths outside the layer groups (budget %d); raise maxLayers", len(rest.Paths), budget)
		}
		auto := b.opts.Strategy.Layers(rest, left)
		if len(auto) > left {
			return nil, fmt.Errorf("layering strategy %s made %d layers, over the budget of %d", b.opts.Strategy.Name(), len(auto), left)
		}
		for _, grp := range auto {
			plan.groups = append(plan.groups, grp)
			plan.comments = append(plan.comments, groupComment(grp))
		}
	}
	return plan, nil
}

// packedLayers are the store-path layers of a plan, packed.
type packedLayers struct {
	layers []v1.Layer // one per group of the plan
	mounts v1.Layer   // a nix-snapshotter image's mount points; else nil
}

// packLayers is the third stage: every group of the plan packed (or found
// stored) in parallel, while the Recorder, if any, records the closure.
func (b *Builder) packLayers(ctx context.Context, p Platform, plan *layerPlan, graph *closure.Graph, st *stats) (*packedLayers, error) {
	plat := p.Platform.String()
	b.progress(Event{Kind: "layers", Platform: plat, Total: len(plan.groups) + 1})
	pk := &packedLayers{layers: make([]v1.Layer, len(plan.groups))}
	g, gctx := errgroup.WithContext(ctx)
	for i, grp := range plan.groups {
		g.Go(func() error {
			before := st.packed.Load()
			l, err := b.storePathLayer(gctx, grp, st)
			pk.layers[i] = l
			if err == nil {
				sz, _ := l.Size()
				b.progress(Event{Kind: "layer", Platform: plat, Name: plan.comments[i], Packed: st.packed.Load() > before, Size: sz})
			}
			return err
		})
	}
	if b.opts.Recorder != nil {
		g.Go(func() error { return b.opts.Recorder.Record(gctx, graph) })
	}
	if plan.closureInfo != nil {
		g.Go(func() error {
			var err error
			pk.mounts, err = b.snapshotterLayer(gctx, plan.closureInfo, st)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return pk, nil
}

// customise is the fourth stage: the customisation layer of the merged
// packages, the accounts and files of req and, when req asks for one, a
// Nix database of the closure. It returns the layer and the environment
// the layer's packages declare.
func (b *Builder) customise(ctx context.Context, req buildreq.Request, p Platform, r *resolved, names []string, rz *realised, st *stats) (v1.Layer, []string, error) {
	var merged []string
	for _, n := range names {
		op, err := outPath(n, r, rz.outs)
		if err != nil {
			return nil, nil, err
		}
		merged = append(merged, op)
	}
	closurePaths := rz.graph.Sorted()
	custom := layer.Custom{Packages: merged, Closure: closurePaths, Root: b.opts.StoreRoot, MTime: b.opts.MTime,
		Users: req.Users, Groups: req.Groups}
	if req.NixDB && len(closurePaths) > 0 {
		files, err := b.nixDatabase(ctx, p, closurePaths)
		if err != nil {
			return nil, nil, err
		}
		custom.Files = append(custom.Files, files...)
	}
	custom.Files = append(custom.Files, req.Files...)
	return b.customLayer(ctx, custom, st)
}

// nixDatabase is the files of a Nix database that lists exactly paths.
func (b *Builder) nixDatabase(ctx context.Context, p Platform, paths []string) ([]layer.File, error) {
	pn, _ := b.opts.Nix.(PathNix)
	if pn == nil {
		return nil, errors.New("builder: this Nix driver cannot write a Nix database")
	}
	b.progress(Event{Kind: "database", Platform: p.Platform.String(), Total: len(paths)})
	db, err := pn.Database(ctx, paths, b.opts.MTime)
	if err != nil {
		return nil, err
	}
	return []layer.File{
		{Path: "/nix/var/nix/db/db.sqlite", Mode: 0o644, Content: db.SQLite},
		{Path: "/nix/var/nix/db/schema", Mode: 0o644, Content: db.Schema},
		{Path: "/nix/var/nix/gcroots", Dir: true, Mode: 0o755},
		{Path: "/nix/var/nix/profiles", Dir: true, Mode: 0o755},
	}, nil
}

// imageParts is what assemble puts together.
type imageParts struct {
	layers      []v1.Layer
	comments    []string            // one per layer, for the history
	annotations []map[string]string // one per layer; nil when none has any
	env         []string            // the customisation layer's environment
	version     string              // the single package's version, or ""
}

// stack orders an image's layers: the planned store-path layers, the
// customisation layer, then a nix-snapshotter image's mount points.
func stack(plan *layerPlan, pk *packedLayers, custom v1.Layer) imageParts {
	parts := imageParts{
		layers:   append(append([]v1.Layer(nil), pk.layers...), custom),
		comments: append(append([]string(nil), plan.comments...), "customisation layer"),
	}
	if pk.mounts != nil {
		parts.layers = append(parts.layers, pk.mounts)
		parts.comments = append(parts.comments, "nix-snapshotter mount points of "+plan.closureInfo.Path)
		parts.annotations = make([]map[string]string, len(parts.layers))
		parts.annotations[len(parts.layers)-1] = map[string]string{AnnotationNixClosure: plan.closureInfo.Path}
	}
	return parts
}

// assemble is the last stage: the image's config (req's, after the
// customisation layer's environment), its OCI and Docker manifests over
// the same layers, all stored as blobs.
func (b *Builder) assemble(ctx context.Context, req buildreq.Request, p Platform, parts imageParts) (*built, error) {
	cfg := req.Config
	cfg.Env = mergeEnv(parts.env, req.Config.Env)
	opts := image.Options{
		Platform:         p.Platform,
		Config:           cfg,
		Created:          b.opts.MTime,
		Comments:         parts.comments,
		LayerAnnotations: parts.annotations,
		Annotations: map[string]string{
			"org.opencontainers.image.title": req.Name,
		},
	}
	if parts.version != "" {
		opts.Annotations["org.opencontainers.image.version"] = parts.version
	}
	for k, v := range req.Annotations {
		opts.Annotations[k] = v
	}
	oimg, err := image.New(parts.layers, opts)
	if err != nil {
		return nil, err
	}
	opts.Docker = true
	dimg, err := image.New(parts.layers, opts)
	if err != nil {
		return nil, err
	}
	cfgRaw, err := oimg.RawConfigFile()
	if err != nil {
		return nil, err
	}
	if _, err := b.putBlob(ctx, cfgRaw); err != nil {
		return nil, err
	}
	oref, err := b.putManifest(ctx, oimg)
	if err != nil {
		return nil, err
	}
	dref, err := b.putManifest(ctx, dimg)
	if err != nil {
		return nil, err
	}
	return &built{platform: p.Platform, ociImg: oimg, dockerImg: dimg, oci: oref, docker: dref}, nil
}

// isStorePath tells a store path from an attribute path.
func isStorePath(s string) bool { return strings.HasPrefix(s, "/") }

// outPath is the store path a requested name stands for.
func outPath(name string, r *resolved, outs map[string]string) (string, error) {
	if isStorePath(name) {
		return nix.StorePathOf(name)
	}
	attr := r.byName[name]
	if p, ok := outs[attr]; ok {
		return p, nil
	}
	return "", fmt.Errorf("builder: no out path for %s", name)
}

func groupNames(gs []buildreq.LayerGroup) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.Packages...)
	}
	return out
}

func groupComment(g layering.Group) string {
	if len(g.Paths) == 1 {
		return "store path " + g.Paths[0]
	}
	return fmt.Sprintf("%d store paths", len(g.Paths))
}

// versionOf is the version of the only requested package, if there is one.
func versionOf(pkgs []nix.Package) string {
	if len(pkgs) == 1 {
		return pkgs[0].Version
	}
	return ""
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

// remainder is the graph of the paths not yet assigned to a layer, with
// references inside it; its roots are the paths nothing in it refers to.
// It is nil when every path is assigned.
func remainder(g *closure.Graph, assigned map[string]bool) *closure.Graph {
	if len(assigned) == 0 {
		if len(g.Paths) == 0 {
			return nil
		}
		return g
	}
	var nodes []*closure.Path
	referred := map[string]bool{}
	for _, p := range g.Sorted() {
		if assigned[p] {
			continue
		}
		n := g.Paths[p]
		var refs []string
		for _, r := range n.References {
			if !assigned[r] {
				refs = append(refs, r)
				if r != p {
					referred[r] = true
				}
			}
		}
		nodes = append(nodes, &closure.Path{Path: p, NarSize: n.NarSize, NarHash: n.NarHash, References: refs})
	}
	if len(nodes) == 0 {
		return nil
	}
	var roots []string
	for _, n := range nodes {
		if !referred[n.Path] {
			roots = append(roots, n.Path)
		}
	}
	rg, err := closure.New(nodes, roots)
	if err != nil {
		// Cannot happen: references were filtered to the node set.
		panic(err)
	}
	return rg
}

// mergeEnv is base (PATH first) with extra appended; an extra entry for a
// variable of base replaces it in place.
func mergeEnv(base, extra []string) []string {
	out := append([]string(nil), base...)
	idx := map[string]int{}
	for i, e := range out {
		k, _, _ := strings.Cut(e, "=")
		idx[k] = i
	}
	for _, e := range extra {
		k, _, _ := strings.Cut(e, "=")
		if i, ok := idx[k]; ok {
			out[i] = e
			continue
		}
		idx[k] = len(out)
		out = append(out, e)
	}
	return out
}
