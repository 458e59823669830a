package builder

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"strata/internal/closure"
	"strata/internal/image"
	"strata/internal/layer"
	"strata/internal/layering"
	"strata/internal/nix"
	"strata/internal/nixcache"
	"strata/internal/spec"
)

// Request is everything an image can be built from: the general form
// behind both an on-demand name (spec.Spec) and a build description.
type Request struct {
	// Name names the image in logs and is its default
	// org.opencontainers.image.title annotation; default "image".
	Name string `json:"name"`
	// Ref selects the package-set revision (a tag, git ref or commit);
	// default "" (the source's default, as "latest").
	Ref string `json:"ref,omitempty"`
	// Shell prepends the package set's shell packages (the `shell`
	// meta-package) to Packages; default false.
	Shell bool `json:"shell,omitempty"`
	// Packages are the image's packages: attribute paths of the package set
	// ("hello", "python3Packages.numpy") or store paths ("/nix/store/...",
	// a path inside one counts as its store path). Their closures are in
	// the image and their top-level directories are merged into / by the
	// customisation layer, in this order. Default none.
	Packages []string `json:"packages,omitempty"`
	// Layers are explicit layer groups, the image's first layers, in
	// order: each is one layer holding the closure of its packages minus
	// the paths of earlier groups. Their packages are in the image but are
	// merged into / only when Packages lists them too. The rest of the
	// closure is grouped by the strategy under the remaining budget.
	// Default none.
	Layers []LayerGroup `json:"layers,omitempty"`
	// Include are packages or store paths (as Packages) whose closures are
	// in the image without being merged into /; default none.
	Include []string `json:"include,omitempty"`
	// Inputs are store paths to realise before Packages and Layers name
	// store paths: .drv files (built with nix-store --realise) and sources
	// that must already be valid; default none. A Nix description's
	// evaluation fills them.
	Inputs []string `json:"inputs,omitempty"`
	// Config is the runtime configuration. Its Env entries come after the
	// customisation layer's (PATH, SSL_CERT_FILE); an entry for a variable
	// the layer sets replaces it in place. Default empty.
	Config image.Config `json:"config"`
	// Users, Groups and Files go into the customisation layer (see
	// layer.Custom); root and nobody are always there. Default none.
	Users  []layer.User  `json:"users,omitempty"`
	Groups []layer.Group `json:"groups,omitempty"`
	Files  []layer.File  `json:"files,omitempty"`
	// NixDB puts an initialised Nix database that lists exactly the
	// image's closure at /nix/var/nix/db; default false.
	NixDB bool `json:"nixDB,omitempty"`
	// Platforms are "os/arch[/variant]" names of configured platforms;
	// default every configured platform. One platform gives an image
	// manifest, several an index.
	Platforms []string `json:"platforms,omitempty"`
	// Annotations go on every manifest and on the index, over the
	// defaults (title, version of a single package, revision on the
	// index); default none.
	Annotations map[string]string `json:"annotations,omitempty"`
	// MaxLayers is the layer budget, explicit groups and the customisation
	// layer included; default Options.MaxLayers.
	MaxLayers int `json:"maxLayers,omitempty"`
	// Format is the image's shape: "" (layers of store paths) or
	// FormatNixSnapshotter (see snapshotter.go); default "".
	Format string `json:"format,omitempty"`
}

// LayerGroup is one explicit layer.
type LayerGroup struct {
	// Name describes the layer in the image history; default the packages
	// joined by "+".
	Name string `json:"name,omitempty"`
	// Packages are attribute paths or store paths, as Request.Packages;
	// at least one.
	Packages []string `json:"packages"`
}

// PathNix is what the builder needs from the Nix driver for requests that
// name store paths or ask for a Nix database; *nix.Driver implements it.
type PathNix interface {
	Realise(ctx context.Context, inputs, paths []string) (*nix.Result, error)
	Database(ctx context.Context, paths []string, mtime time.Time) (*nix.NixDB, error)
}

// Event is a progress event of a build.
type Event struct {
	// Kind is "resolve", "nix", "layers" (Total is the number of layers),
	// "layer" (one layer is ready; Packed tells whether it was packed now,
	// Size is its compressed size), "database" or "done".
	Kind     string
	Platform string
	Name     string
	Total    int
	Packed   bool
	Size     int64
}

func (b *Builder) progress(e Event) {
	if b.opts.Progress != nil {
		b.opts.Progress(e)
	}
}

// specRequest maps an on-demand name onto a Request.
func (b *Builder) specRequest(s spec.Spec) Request {
	req := Request{Name: s.Name(), Ref: s.Ref, Shell: s.Shell, Packages: s.Packages}
	if s.NixSnapshotter {
		req.Format = FormatNixSnapshotter
	}
	if s.Platform != "" {
		req.Platforms = []string{s.Platform}
	}
	if s.Buildpacks {
		req.Users = []layer.User{{Name: "cnb", UID: 1000, GID: 1000, Home: "/home/cnb", Shell: "/bin/sh"}}
		req.Groups = []layer.Group{{Name: "cnb", GID: 1000}}
		req.Files = []layer.File{{Path: "/home/cnb", Dir: true, Mode: 0o755, UID: 1000, GID: 1000}}
		req.Config.User = "1000:1000"
		req.Config.Labels = map[string]string{"io.buildpacks.stack.id": "strata." + strings.ReplaceAll(s.Ref, "/", "-")}
	}
	return req
}

// BuildRequest returns the image for req, building it if it is not
// stored yet; concurrent calls for the same request run one build.
func (b *Builder) BuildRequest(ctx context.Context, req Request) (Result, error) {
	if req.Name == "" {
		req.Name = "image"
	}
	if _, err := b.requestTargets(req); err != nil {
		return Result{}, err
	}
	key, rev, err := b.requestKey(ctx, req)
	if err != nil {
		return Result{}, err
	}
	return b.run(ctx, key, rev, req)
}

// requestKey is the cache key of a request: everything that changes the
// result.
func (b *Builder) requestKey(ctx context.Context, req Request) (key, rev string, err error) {
	rev, err = b.opts.Nix.Revision(ctx, req.Ref)
	if err != nil {
		return "", "", err
	}
	ts, err := b.requestTargets(req)
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
		Req         Request
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

func (b *Builder) budget(req Request) int {
	if req.MaxLayers > 0 {
		return req.MaxLayers
	}
	return b.opts.MaxLayers
}

// requestTargets are the platforms req is built for.
func (b *Builder) requestTargets(req Request) ([]Platform, error) {
	if len(req.Platforms) == 0 {
		return b.opts.Platforms, nil
	}
	var out []Platform
	seen := map[string]bool{}
	for _, name := range req.Platforms {
		p, ok := b.platform(name)
		if !ok {
			pp, err := image.ParsePlatform(name)
			if err == nil {
				if pp.Architecture == "arm64" && pp.Variant == "" {
					pp.Variant = "v8"
				}
				p, ok = b.platform(pp.String())
			}
			if !ok {
				return nil, b.notConfigured(name)
			}
		}
		if !seen[p.Platform.String()] {
			seen[p.Platform.String()] = true
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return platformLess(out[i].Platform, out[j].Platform) })
	return out, nil
}

// isStorePath tells a store path from an attribute path.
func isStorePath(s string) bool { return strings.HasPrefix(s, "/") }

// resolved maps each requested package name to its canonical attribute.
type resolved struct {
	attrs  []string               // unique canonical attributes to build
	byName map[string]string      // requested name → attribute
	meta   map[string]nix.Package // attribute → its metadata, for the SBOM
}

func (b *Builder) resolve(ctx context.Context, req Request, t Platform) (*resolved, []string, error) {
	names := append([]string(nil), req.Packages...)
	if req.Shell {
		sh, err := b.opts.Nix.ShellPackages(ctx, req.Ref)
		if err != nil {
			return nil, nil, err
		}
		names = append(sh, names...)
	}
	pkgNames := unique(names)
	all := append([]string(nil), pkgNames...)
	all = append(all, groupNames(req.Layers)...)
	all = append(all, req.Include...)
	all = unique(all)
	var attrNames []string
	for _, n := range all {
		if !isStorePath(n) {
			attrNames = append(attrNames, n)
		}
	}
	r := &resolved{byName: map[string]string{}, meta: map[string]nix.Package{}}
	if len(attrNames) == 0 {
		return r, pkgNames, nil
	}
	b.progress(Event{Kind: "resolve", Total: len(attrNames)})
	pkgs, err := b.opts.Nix.Resolve(ctx, req.Ref, t.Target, attrNames)
	if err != nil {
		return nil, nil, err
	}
	for i, p := range pkgs {
		r.attrs = append(r.attrs, p.Attr)
		r.meta[p.Attr] = p
		if len(pkgs) == len(attrNames) {
			r.byName[attrNames[i]] = p.Attr
		}
	}
	if len(pkgs) != len(attrNames) {
		// Several names resolved to one attribute: match them up.
		for _, n := range attrNames {
			for _, p := range pkgs {
				if p.Attr == n || strings.EqualFold(p.Attr, n) {
					r.byName[n] = p.Attr
					break
				}
			}
			if r.byName[n] == "" {
				return nil, nil, fmt.Errorf("builder: cannot tell which attribute %q resolved to; name each package once, by its exact attribute", n)
			}
		}
	}
	r.attrs = unique(r.attrs)
	return r, pkgNames, nil
}

func (b *Builder) build(ctx context.Context, req Request, rev string) (Result, error) {
	targets, err := b.requestTargets(req)
	if err != nil {
		return Result{}, err
	}
	res, names, err := b.resolve(ctx, req, targets[0])
	if err != nil {
		return Result{}, err
	}
	st := &stats{}
	// One image per platform, in a slice indexed by platform so that the
	// index order never depends on timing.
	imgs := make([]*built, len(targets))
	g, gctx := errgroup.WithContext(ctx)
	for i, t := range targets {
		g.Go(func() error {
			im, err := b.buildPlatform(gctx, req, t, res, names, st)
			if err != nil {
				return &PlatformError{Platform: t.Platform.String(), Err: err}
			}
			imgs[i] = im
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Result{}, err
	}
	packed := int(st.packed.Load())
	if len(imgs) == 1 {
		return Result{Name: req.Name, OCI: imgs[0].oci, Docker: imgs[0].docker, LayersPacked: packed}, nil
	}
	ann := map[string]string{
		"org.opencontainers.image.title":    req.Name,
		"org.opencontainers.image.revision": rev,
	}
	for k, v := range req.Annotations {
		ann[k] = v
	}
	var oe, de []image.Entry
	for _, im := range imgs {
		oe = append(oe, image.Entry{Image: im.ociImg, Platform: im.platform})
		de = append(de, image.Entry{Image: im.dockerImg, Platform: im.platform})
	}
	oci, err := b.putManifest(ctx, image.Index(oe, ann, false))
	if err != nil {
		return Result{}, err
	}
	docker, err := b.putManifest(ctx, image.Index(de, nil, true))
	if err != nil {
		return Result{}, err
	}
	return Result{Name: req.Name, OCI: oci, Docker: docker, LayersPacked: packed}, nil
}

type built struct {
	platform          v1.Platform
	ociImg, dockerImg v1.Image
	oci, docker       Ref
}

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

func (b *Builder) buildPlatform(ctx context.Context, req Request, p Platform, r *resolved, names []string, st *stats) (*built, error) {
	plat := p.Platform.String()
	var graphs []*closure.Graph
	outs := map[string]string{}
	var builtPkgs []nix.Package
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
			outs[pk.Attr] = pk.OutPath
		}
		builtPkgs = res.Packages
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
	pn, _ := b.opts.Nix.(PathNix)
	if len(storePaths) > 0 || len(req.Inputs) > 0 {
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
	graph := closure.Merge(graphs...)

	// Explicit groups first, each its closure minus earlier groups.
	budget := b.budget(req)
	if len(req.Layers)+1 > budget {
		return nil, fmt.Errorf("builder: %d layer groups and the customisation layer need %d layers, over the budget of %d; raise maxLayers", len(req.Layers), len(req.Layers)+1, budget)
	}
	var groups []layering.Group
	var comments []string
	assigned := map[string]bool{}
	for i, lg := range req.Layers {
		var roots []string
		for _, n := range lg.Packages {
			op, err := outPath(n, r, outs)
			if err != nil {
				return nil, err
			}
			roots = append(roots, op)
		}
		var paths []string
		for _, cp := range graph.Closure(roots...) {
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
		groups = append(groups, layering.Group{Paths: paths})
		comments = append(comments, fmt.Sprintf("layer group %s: %d store paths", name, len(paths)))
	}
	var closureInfo *nixcache.ClosureInfo
	if req.Format == FormatNixSnapshotter {
		// No store path is in a layer: one layer of mount points, named
		// by the closure-info path, follows the customisation layer.
		ci, err := b.snapshotterClosure(req, graph)
		if err != nil {
			return nil, err
		}
		closureInfo = ci
	} else if rest := remainder(graph, assigned); rest != nil {
		left := budget - len(groups) - 1
		if left < 1 {
			return nil, fmt.Errorf("builder: no layer left for the %d store paths outside the layer groups (budget %d); raise maxLayers", len(rest.Paths), budget)
		}
		auto := b.opts.Strategy.Layers(rest, left)
		if len(auto) > left {
			return nil, fmt.Errorf("layering strategy %s made %d layers, over the budget of %d", b.opts.Strategy.Name(), len(auto), left)
		}
		for _, grp := range auto {
			groups = append(groups, grp)
			comments = append(comments, groupComment(grp))
		}
	}
	b.progress(Event{Kind: "layers", Platform: plat, Total: len(groups) + 1})

	layers := make([]v1.Layer, len(groups)+1)
	g, gctx := errgroup.WithContext(ctx)
	for i, grp := range groups {
		g.Go(func() error {
			before := st.packed.Load()
			l, err := b.storePathLayer(gctx, grp, st)
			layers[i] = l
			if err == nil {
				sz, _ := l.Size()
				b.progress(Event{Kind: "layer", Platform: plat, Name: comments[i], Packed: st.packed.Load() > before, Size: sz})
			}
			return err
		})
	}
	if b.opts.Recorder != nil {
		g.Go(func() error { return b.opts.Recorder.Record(gctx, graph) })
	}
	var nixLayer v1.Layer
	if closureInfo != nil {
		g.Go(func() error {
			var err error
			nixLayer, err = b.snapshotterLayer(gctx, closureInfo, st)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	var merged []string
	for _, n := range names {
		op, err := outPath(n, r, outs)
		if err != nil {
			return nil, err
		}
		merged = append(merged, op)
	}
	closurePaths := graph.Sorted()
	custom := layer.Custom{Packages: merged, Closure: closurePaths, Root: b.opts.StoreRoot, MTime: b.opts.MTime,
		Users: req.Users, Groups: req.Groups}
	if req.NixDB && len(closurePaths) > 0 {
		if pn == nil {
			return nil, errors.New("builder: this Nix driver cannot write a Nix database")
		}
		b.progress(Event{Kind: "database", Platform: plat, Total: len(closurePaths)})
		db, err := pn.Database(ctx, closurePaths, b.opts.MTime)
		if err != nil {
			return nil, err
		}
		custom.Files = append(custom.Files,
			layer.File{Path: "/nix/var/nix/db/db.sqlite", Mode: 0o644, Content: db.SQLite},
			layer.File{Path: "/nix/var/nix/db/schema", Mode: 0o644, Content: db.Schema},
			layer.File{Path: "/nix/var/nix/gcroots", Dir: true, Mode: 0o755},
			layer.File{Path: "/nix/var/nix/profiles", Dir: true, Mode: 0o755},
		)
	}
	custom.Files = append(custom.Files, req.Files...)
	cl, env, err := b.customLayer(ctx, custom, st)
	if err != nil {
		return nil, err
	}
	layers[len(groups)] = cl
	comments = append(comments, "customisation layer")
	var layerAnn []map[string]string
	if nixLayer != nil {
		layers = append(layers, nixLayer)
		comments = append(comments, "nix-snapshotter mount points of "+closureInfo.Path)
		layerAnn = make([]map[string]string, len(layers))
		layerAnn[len(layers)-1] = map[string]string{AnnotationNixClosure: closureInfo.Path}
	}
	cfg := req.Config
	cfg.Env = mergeEnv(env, req.Config.Env)

	opts := image.Options{
		Platform:         p.Platform,
		Config:           cfg,
		Created:          b.opts.MTime,
		Comments:         comments,
		LayerAnnotations: layerAnn,
		Annotations: map[string]string{
			"org.opencontainers.image.title": req.Name,
		},
	}
	if v := versionOf(builtPkgs); v != "" && len(names) == 1 && len(req.Layers) == 0 {
		opts.Annotations["org.opencontainers.image.version"] = v
	}
	for k, v := range req.Annotations {
		opts.Annotations[k] = v
	}
	oimg, err := image.New(layers, opts)
	if err != nil {
		return nil, err
	}
	opts.Docker = true
	dimg, err := image.New(layers, opts)
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
	if err := b.attachSBOM(ctx, req.Name, oimg, graph, sbomPackages(r, builtPkgs), oref, dref); err != nil {
		return nil, err
	}
	return &built{platform: p.Platform, ociImg: oimg, dockerImg: dimg, oci: oref, docker: dref}, nil
}

func groupNames(gs []LayerGroup) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.Packages...)
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
