package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"strata/internal/builder"
	"strata/internal/buildreq"
	"strata/internal/buildspec"
	"strata/internal/layering"
	"strata/internal/nix"
	"strata/internal/nixcache"
	"strata/internal/publish"
)

type buildOptions struct {
	file        string   // -f: YAML/JSON description or .nix file; default none
	nixAttr     string   // attribute of the .nix file or of the flake; default none
	name        string   // image name; default the description's, else "image"
	platforms   []string // default the description's, else the build machine's
	cmd         string   // default none
	entrypoint  string   // default none
	env         []string // K=V; default none
	workdir     string   // default none
	ports       []string // default none
	user        string   // default none
	labels      []string // k=v; default none
	annotations []string // k=v; default none
	maxLayers   int      // default the description's, else 100
	compression string   // default the description's, else gzip
	outputs     []string // default none (build into the cache only)
	jsonOut     bool     // default false
	strategy    string
	packageSet  string // --package-set: a corpus file whose statistics configure the strategy; default none
	nixDB       bool
	verbose     bool   // --log-level given: show the builder's logs
	sbom        bool   // attach the SBOM to oci: and registry outputs; default true
	format      string // "layers" or "nix-snapshotter"; default layers
	cacheKey    string // --cache-key-file: record the closure for the Nix binary cache; default none
	remote      remoteFlags
	localBuild
}

func init() { register(newBuildCmd) }

func newBuildCmd(env *Env) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [PACKAGE...]",
		Short: "Build an image from packages or a description, into an OCI layout, a docker-archive or a registry",
		Long: `build builds an image from Nix packages, the same way serve does, and writes it
to each --output:

  oci:DIR[:TAG]              an OCI image layout (an index for several platforms)
  docker-archive:FILE[:REF]  a docker-archive tarball (podman load, docker load)
  REGISTRY/REPO:TAG          pushed to a registry, through the same writer,
                             transport and credentials as strata push

The image is the PACKAGE arguments plus the flags, or a description file
(-f image.yaml; the format is in docs/build.md), or a Nix expression that
evaluates to one (-f image.nix, optionally --nix-attr ATTR; or --flake REF
--nix-attr ATTR). Flags add to the description. Layers are cached in
--cache-dir: a rebuild packs only the layers whose store paths changed.`,
		Example: `  strata build --pkgs-path testdata/pkgs hello --cmd hello --output oci:out
  strata build --pkgs-path testdata/pkgs -f examples/lix/image.nix --output docker-archive:lix.tar --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.verbose = logLevelGiven(cmd)
			return runBuild(cmd.Context(), cmd, env, o, args)
		},
	}
	f := cmd.Flags()
	o.localBuild.addFlags(f, env.Getenv)
	f.StringVarP(&o.file, "file", "f", "", "image description: a YAML/JSON file, or a .nix file that evaluates to one (default none)")
	f.StringVar(&o.nixAttr, "nix-attr", "", "attribute of the .nix file (or of --flake) holding the description (default the whole value)")
	f.StringVar(&o.name, "name", "", "image name, its title annotation (default the description's name, else \"image\")")
	f.StringSliceVar(&o.platforms, "platform", nil, "platforms, repeatable or comma-separated, e.g. linux/amd64,linux/arm64 (default the description's, else the build machine's)")
	f.StringVar(&o.cmd, "cmd", "", "image Cmd: words split on spaces, or a JSON array (default none)")
	f.StringVar(&o.entrypoint, "entrypoint", "", "image Entrypoint: words split on spaces, or a JSON array (default none)")
	f.StringArrayVar(&o.env, "env", nil, "environment variable KEY=VALUE, repeatable (default none)")
	f.StringVar(&o.workdir, "workdir", "", "working directory (default the runtime's /)")
	f.StringArrayVar(&o.ports, "port", nil, "exposed port, e.g. 8080 or 53/udp, repeatable (default none)")
	f.StringVar(&o.user, "user", "", "user to run as, e.g. 1000:1000 (default root)")
	f.StringArrayVar(&o.labels, "label", nil, "config label KEY=VALUE, repeatable (default none)")
	f.StringArrayVar(&o.annotations, "annotation", nil, "manifest and index annotation KEY=VALUE, repeatable (default none)")
	f.IntVar(&o.maxLayers, "max-layers", 0, "layer budget, the customisation layer included (default the description's, else 100)")
	f.StringVar(&o.compression, "compression", "", "layer compression: gzip or zstd (default the description's, else gzip)")
	f.BoolVar(&o.nixDB, "nix-db", false, "put an initialised Nix database of the image's closure in the image (default the description's, else false)")
	f.StringArrayVarP(&o.outputs, "output", "o", nil, "where to write the image, repeatable: oci:DIR[:TAG], docker-archive:FILE[:REF] or REGISTRY/REPO:TAG (default none: build into the cache only)")
	f.BoolVar(&o.jsonOut, "json", false, "print a machine-readable result on stdout (default false)")
	f.StringVar(&o.strategy, "strategy", "", "layering strategy: "+strings.Join(layering.Names(), ", ")+" (default strata)")
	f.StringVar(&o.packageSet, "package-set", "", "a corpus file (the package set's paths and images, as strata layers reads) whose popularity and image sizes configure the layering strategy, as the layering benchmark measures it (default none: the strategy uses the image's closure alone)")
	f.StringVar(&o.format, "format", "layers", "image format: layers (store paths packed into layers) or nix-snapshotter (store paths mounted by nix-snapshotter from the node's Nix store; needs --cache-key-file)")
	f.StringVar(&o.cacheKey, "cache-key-file", "", "record the image's store paths in --cache-dir as a Nix binary cache, signed with this secret key (Nix's NAME:BASE64), for strata serve --storage-path CACHE-DIR --cache-key-file to serve (default none)")
	f.BoolVar(&o.sbom, "sbom", true, "attach each image's SPDX SBOM as a referrer (subject = the image) to oci: and registry outputs")
	o.remote.addCreds(cmd, true)
	return cmd
}

// BuildResult is the --json output of strata build.
type BuildResult struct {
	Name         string           `json:"name"`
	Digest       string           `json:"digest"`
	MediaType    string           `json:"mediaType"`
	Size         int64            `json:"size"`
	DockerDigest string           `json:"dockerDigest"`
	Manifests    []ManifestResult `json:"manifests"`
	LayersPacked int              `json:"layersPacked"`
	Cached       bool             `json:"cached"`
	Outputs      []OutputResult   `json:"outputs"`
	Seconds      float64          `json:"seconds"`
}

// ManifestResult is one platform's image.
type ManifestResult struct {
	Platform string        `json:"platform"`
	Digest   string        `json:"digest"`
	Size     int64         `json:"size"`
	Layers   []LayerResult `json:"layers"`
}

// LayerResult is one layer of an image.
type LayerResult struct {
	Digest  string `json:"digest"`
	DiffID  string `json:"diffID"`
	Size    int64  `json:"size"`
	Comment string `json:"comment,omitempty"`
}

// OutputResult is one written output.
type OutputResult struct {
	Output string `json:"output"`
	Digest string `json:"digest"`
	// SBOMs are the digests of the SBOM artifact manifests written with
	// the image (none with --sbom=false or for a docker-archive).
	SBOMs []string `json:"sboms,omitempty"`
}

func runBuild(ctx context.Context, cmd *cobra.Command, env *Env, o *buildOptions, args []string) error {
	start := time.Now()
	if err := o.checkFlags(); err != nil {
		return err
	}
	// A YAML description is checked before anything else runs.
	desc, err := o.readDescription()
	if err != nil {
		return err
	}
	drv, withPkgs, err := o.nixDriver(env)
	if err != nil {
		return err
	}
	var descPlatforms []string
	if desc != nil {
		descPlatforms = desc.Platforms
	}
	platforms, err := parsePlatforms(strings.Join(choosePlatforms(o.platforms, descPlatforms), ","))
	if err != nil {
		return fmt.Errorf("--platform: %w", err)
	}
	prog := newProgress(env.Stderr, o.jsonOut)
	if o.nixFile() || o.flakeAttr() {
		if desc, platforms, err = o.evalDescription(ctx, drv, platforms, withPkgs, prog); err != nil {
			return err
		}
	}
	desc, req, err := o.request(desc, args)
	if err != nil {
		return err
	}
	b, err := o.newBuilder(ctx, env, drv, desc, req, platforms, prog)
	if err != nil {
		return err
	}
	res, err := b.Build(ctx, req)
	if err != nil {
		return explainBuildError(desc, err)
	}
	prog.done()
	out, err := o.writeOutputs(ctx, cmd, env, b, req, res, prog)
	if err != nil {
		return err
	}
	out.Seconds = time.Since(start).Seconds()
	if o.jsonOut {
		return printJSON(env.Stdout, out)
	}
	fmt.Fprintf(env.Stderr, "built %s %s (%d layers packed, %.1fs)\n", req.Name, res.OCI.Digest, res.LayersPacked, out.Seconds)
	return nil
}

// nixFile reports whether the description is a Nix file (-f image.nix).
func (o *buildOptions) nixFile() bool { return o.file != "" && strings.HasSuffix(o.file, ".nix") }

// flakeAttr reports whether the description is an attribute of --flake.
func (o *buildOptions) flakeAttr() bool { return o.file == "" && o.flake != "" && o.nixAttr != "" }

// checkFlags checks the flags that need no file read: the outputs and
// --nix-attr.
func (o *buildOptions) checkFlags() error {
	for _, out := range o.outputs {
		if _, err := publish.ParseLocation(out, o.remote.insecure); err != nil {
			return fmt.Errorf("--output %w", err)
		}
	}
	if o.nixAttr != "" && !o.nixFile() && !o.flakeAttr() {
		return errors.New("--nix-attr selects an attribute of a .nix description (-f image.nix) or of --flake; give one of them")
	}
	return nil
}

// readDescription reads and checks a YAML or JSON description (-f); nil
// without one, or with a Nix description, which is evaluated later.
func (o *buildOptions) readDescription() (*buildspec.Description, error) {
	if o.file == "" || o.nixFile() {
		return nil, nil
	}
	return readDescriptionFile(o.file)
}

// readDescriptionFile reads and checks the YAML or JSON description file.
func readDescriptionFile(file string) (*buildspec.Description, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read the description: %w", err)
	}
	return buildspec.Parse(file, raw)
}

// nixDriver is the Nix driver of the package set; without one, a Nix
// description brings its own packages (withPkgs false).
func (o *buildOptions) nixDriver(env *Env) (drv *nix.Driver, withPkgs bool, err error) {
	cfg := o.nixConfig(quietLog(env, o.verbose))
	withPkgs = true
	if !o.hasSource() {
		if !o.nixFile() {
			return nil, false, errNoSource
		}
		cfg.PkgsPath = o.file
		withPkgs = false
	}
	drv, err = nix.New(cfg)
	return drv, withPkgs, err
}

// evalDescription evaluates a Nix description (-f image.nix, or --flake
// with --nix-attr) for the first platform; its platforms are built unless
// --platform is given.
func (o *buildOptions) evalDescription(ctx context.Context, drv *nix.Driver, platforms []builder.Platform, withPkgs bool, prog *progress) (*buildspec.Description, []builder.Platform, error) {
	prog.say("evaluating the image description")
	var ev *nix.Evaluated
	var err error
	if o.nixFile() {
		ev, err = drv.EvalFile(ctx, o.ref, platforms[0].Target, o.file, o.nixAttr, withPkgs)
	} else {
		ev, err = drv.EvalFlakeAttr(ctx, o.nixAttr)
	}
	if err != nil {
		return nil, nil, err
	}
	label := o.file
	if o.flakeAttr() {
		label = o.flake + "#" + o.nixAttr
	}
	desc, err := buildspec.ParseNix(label, ev.Value, ev.Inputs)
	if err != nil {
		return nil, nil, err
	}
	if len(o.platforms) == 0 && len(desc.Platforms) > 0 {
		if platforms, err = parsePlatforms(strings.Join(desc.Platforms, ",")); err != nil {
			return nil, nil, fmt.Errorf("%s: platforms: %w", label, err)
		}
	}
	if len(platforms) > 1 && len(ev.Inputs) > 0 {
		return nil, nil, fmt.Errorf("%s: a Nix description is evaluated for one platform; build each platform separately (--platform) and join them with strata index", label)
	}
	return desc, platforms, nil
}

// request adds the flags and arguments to desc (nil: an empty one), checks
// it and returns it with the builder's request.
func (o *buildOptions) request(desc *buildspec.Description, args []string) (*buildspec.Description, buildreq.Request, error) {
	if desc == nil {
		desc = &buildspec.Description{}
	}
	if err := applyFlags(desc, o, args); err != nil {
		return nil, buildreq.Request{}, err
	}
	if err := desc.Check(); err != nil {
		return nil, buildreq.Request{}, err
	}
	if len(desc.Packages) == 0 && len(desc.Layers) == 0 {
		return nil, buildreq.Request{}, errors.New("nothing to build: name packages (strata build hello) or a description (-f image.yaml)")
	}
	req := desc.Request()
	req.Ref = o.ref
	req.Platforms = nil // the builder is configured with exactly these
	switch o.format {
	case "layers", "":
	case buildreq.FormatNixSnapshotter:
		req.Format = buildreq.FormatNixSnapshotter
	default:
		return nil, buildreq.Request{}, fmt.Errorf("--format %q: use layers or %s", o.format, buildreq.FormatNixSnapshotter)
	}
	return desc, req, nil
}

// newBuilder is the builder of the cache directory, with --strategy and,
// with --cache-key-file, the Nix binary cache's recorder.
func (o *buildOptions) newBuilder(ctx context.Context, env *Env, drv *nix.Driver, desc *buildspec.Description, req buildreq.Request, platforms []builder.Platform, prog *progress) (*builder.Builder, error) {
	store, err := o.openCache()
	if err != nil {
		return nil, err
	}
	strat, err := loadStrategy(ctx, o.strategy, "", o.packageSet)
	if err != nil {
		return nil, err
	}
	var recorder builder.Recorder
	if o.cacheKey != "" {
		key, err := nixcache.LoadKey(o.cacheKey)
		if err != nil {
			return nil, fmt.Errorf("--cache-key-file: %w", err)
		}
		recorder = &nixcache.Recorder{Store: store, Key: key}
	} else if req.Format == buildreq.FormatNixSnapshotter {
		return nil, errors.New("--format nix-snapshotter: its nodes substitute the store paths from a Nix binary cache; give --cache-key-file, then serve --cache-dir with strata serve --storage-path DIR --cache-key-file FILE")
	}
	bo := o.builderOptions(desc, platforms, quietLog(env, o.verbose), prog)
	bo.Nix, bo.Store, bo.Strategy, bo.Version, bo.Recorder = drv, store, strat, Version, recorder
	return builder.New(bo)
}

// writeOutputs describes the built image and writes it to each --output.
func (o *buildOptions) writeOutputs(ctx context.Context, cmd *cobra.Command, env *Env, b *builder.Builder, req buildreq.Request, res builder.Result, prog *progress) (BuildResult, error) {
	out := BuildResult{Name: req.Name, Digest: res.OCI.Digest, MediaType: string(res.OCI.MediaType), Size: res.OCI.Size,
		DockerDigest: res.Docker.Digest, LayersPacked: res.LayersPacked, Cached: res.Cached, Outputs: []OutputResult{}}
	art, err := b.Load(ctx, res.OCI)
	if err != nil {
		return out, err
	}
	if out.Manifests, err = describeArtifact(art); err != nil {
		return out, err
	}
	if len(o.outputs) == 0 {
		return out, nil
	}
	log := o.remote.logger(cmd, env)
	kc, err := o.remote.keychain(cmd, env, log, o.outputs...)
	if err != nil {
		return out, err
	}
	wopts := publish.CopyOptions{Jobs: o.remote.jobs, Insecure: o.remote.insecure, Keychain: kc, Log: log,
		ArchiveName: repoName(req.Name)}
	for _, o2 := range o.outputs {
		prog.say("writing " + o2)
		pa, err := publishArtifact(ctx, b, res, art, o2, o.sbom, o.remote.insecure)
		if err != nil {
			return out, err
		}
		r, err := publish.Write(ctx, o2, pa, wopts)
		if err != nil {
			return out, fmt.Errorf("--output %s: %w", o2, err)
		}
		out.Outputs = append(out.Outputs, OutputResult{Output: o2, Digest: r.Digest, SBOMs: r.Referrers})
	}
	return out, nil
}

// printJSON prints v as indented JSON, the --json output of a command.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// logLevelGiven reports whether --log-level was given: then the builder's
// and Nix's logs are shown (quietLog).
func logLevelGiven(cmd *cobra.Command) bool {
	f := cmd.Flag("log-level")
	return f != nil && f.Changed
}

// quietLog is the logger of the builder and the Nix driver: silent unless
// --log-level was given (errors are returned and printed anyway).
func quietLog(env *Env, verbose bool) *slog.Logger {
	if verbose {
		return env.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// explainBuildError adds the description's line to an unknown package.
func explainBuildError(d *buildspec.Description, err error) error {
	var u *nix.UnknownPackagesError
	if errors.As(err, &u) {
		var parts []string
		for _, p := range u.Packages {
			s := fmt.Sprintf("unknown package %q", p.Name)
			switch p.Cause() {
			case nix.CauseRenamed:
				s = fmt.Sprintf("%s: use %q instead", p.Describe(), p.Replacement)
			case nix.CauseRemoved, nix.CauseEvalFailed:
				s = p.Describe()
			}
			if l := d.LineOfPackage(p.Name); l > 0 {
				s = fmt.Sprintf("%s: line %d: %s", d.File(), l, s)
			}
			if p.Reason != "" {
				s += " (" + p.Reason + ")"
			}
			if p.Suggestion != "" {
				s += fmt.Sprintf("; did you mean %q?", p.Suggestion)
			}
			parts = append(parts, s)
		}
		return fmt.Errorf("%s; check the package names against the package set", strings.Join(parts, "\n"))
	}
	return err
}

// keyValues adds each KEY=VALUE of kvs to *m, made when needed; bad is
// the error of an entry without "=" or, unless emptyKey, with an empty KEY.
func keyValues(m *map[string]string, kvs []string, emptyKey bool, bad func(kv string) error) error {
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" && !emptyKey {
			return bad(kv)
		}
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[k] = v
	}
	return nil
}

func applyFlags(d *buildspec.Description, o *buildOptions, args []string) error {
	d.Packages = append(d.Packages, args...)
	if o.name != "" {
		d.Name = o.name
	}
	if len(o.platforms) > 0 {
		d.Platforms = o.platforms
	}
	var err error
	if o.cmd != "" {
		if d.Config.Cmd, err = words("--cmd", o.cmd); err != nil {
			return err
		}
	}
	if o.entrypoint != "" {
		if d.Config.Entrypoint, err = words("--entrypoint", o.entrypoint); err != nil {
			return err
		}
	}
	if err := keyValues(&d.Config.Env, o.env, true, func(e string) error { return fmt.Errorf("--env %q: use KEY=VALUE", e) }); err != nil {
		return err
	}
	if o.workdir != "" {
		d.Config.WorkingDir = o.workdir
	}
	d.Config.ExposedPorts = append(d.Config.ExposedPorts, o.ports...)
	if o.user != "" {
		d.Config.User = o.user
	}
	if err := keyValues(&d.Config.Labels, o.labels, false, func(l string) error { return fmt.Errorf("--label %q: use KEY=VALUE", l) }); err != nil {
		return err
	}
	if err := keyValues(&d.Annotations, o.annotations, false, func(a string) error { return fmt.Errorf("--annotation %q: use KEY=VALUE", a) }); err != nil {
		return err
	}
	if o.maxLayers != 0 {
		d.MaxLayers = o.maxLayers
	}
	if o.compression != "" {
		d.Compression = o.compression
	}
	if o.nixDB {
		d.NixDatabase = true
	}
	if d.Name == "" {
		var ns []string
		for _, p := range d.Packages {
			if !strings.HasPrefix(p, "/") {
				ns = append(ns, p)
			}
		}
		d.Name = "image"
		if len(ns) > 0 && len(ns) <= 4 {
			d.Name = strings.Join(ns, "-")
		}
	}
	return nil
}

// words splits a command: a JSON array, or words separated by spaces.
func words(flag, s string) ([]string, error) {
	if strings.HasPrefix(strings.TrimSpace(s), "[") {
		var w []string
		if err := json.Unmarshal([]byte(s), &w); err != nil {
			return nil, fmt.Errorf("%s: not a JSON array of strings: %w", flag, err)
		}
		return w, nil
	}
	return strings.Fields(s), nil
}

// repoName makes a valid repository name of an image name.
func repoName(n string) string {
	n = strings.ToLower(n)
	n = regexp.MustCompile(`[^a-z0-9._/-]+`).ReplaceAllString(n, "-")
	n = strings.Trim(n, "-./_")
	if n == "" {
		n = "image"
	}
	return n
}

// hostOf is the registry host of a reference.
func hostOf(ref string) string {
	h, _, _ := strings.Cut(ref, "/")
	return h
}

// describeArtifact lists each platform's manifest and layers.
func describeArtifact(a builder.Artifact) ([]ManifestResult, error) {
	type entry struct {
		plat string
		img  v1.Image
	}
	var es []entry
	if a.Index != nil {
		im, err := a.Index.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, d := range im.Manifests {
			img, err := a.Index.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			p := ""
			if d.Platform != nil {
				p = d.Platform.String()
			}
			es = append(es, entry{p, img})
		}
	} else {
		cf, err := a.Image.ConfigFile()
		if err != nil {
			return nil, err
		}
		es = append(es, entry{cf.Platform().String(), a.Image})
	}
	var out []ManifestResult
	for _, e := range es {
		m, err := e.img.Manifest()
		if err != nil {
			return nil, err
		}
		cf, err := e.img.ConfigFile()
		if err != nil {
			return nil, err
		}
		dg, _ := e.img.Digest()
		sz, _ := e.img.Size()
		mr := ManifestResult{Platform: e.plat, Digest: dg.String(), Size: sz}
		var comments []string
		for _, h := range cf.History {
			comments = append(comments, h.Comment)
		}
		for i, l := range m.Layers {
			lr := LayerResult{Digest: l.Digest.String(), Size: l.Size}
			if i < len(cf.RootFS.DiffIDs) {
				lr.DiffID = cf.RootFS.DiffIDs[i].String()
			}
			if i < len(comments) {
				lr.Comment = comments[i]
			}
			mr.Layers = append(mr.Layers, lr)
		}
		out = append(out, mr)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Platform < out[j].Platform })
	return out, nil
}

// progress prints build progress on a terminal and nothing otherwise.
type progress struct {
	w       io.Writer
	on      bool
	mu      sync.Mutex
	total   map[string]int
	n       map[string]*atomic.Int64
	packed  atomic.Int64
	started time.Time
}

func newProgress(w io.Writer, jsonOut bool) *progress {
	on := false
	if f, ok := w.(*os.File); ok && !jsonOut {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progress{w: w, on: on, total: map[string]int{}, n: map[string]*atomic.Int64{}, started: time.Now()}
}

func (p *progress) say(s string) {
	if p.on {
		p.mu.Lock()
		fmt.Fprintf(p.w, "\r\033[K%5.1fs %s\n", time.Since(p.started).Seconds(), s)
		p.mu.Unlock()
	}
}

func (p *progress) event(e builder.Event) {
	if !p.on {
		return
	}
	switch e.Kind {
	case "resolve":
		p.say(fmt.Sprintf("resolving %d packages", e.Total))
	case "nix":
		p.say(fmt.Sprintf("[%s] building with Nix", e.Platform))
	case "database":
		p.say(fmt.Sprintf("[%s] writing the Nix database of %d store paths", e.Platform, e.Total))
	case "layers":
		p.mu.Lock()
		p.total[e.Platform] = e.Total
		p.n[e.Platform] = &atomic.Int64{}
		p.mu.Unlock()
		p.say(fmt.Sprintf("[%s] %d layers", e.Platform, e.Total))
	case "layer":
		p.mu.Lock()
		c := p.n[e.Platform]
		total := p.total[e.Platform]
		p.mu.Unlock()
		i := int64(0)
		if c != nil {
			i = c.Add(1)
		}
		verb := "cached"
		if e.Packed {
			verb = "packed"
			p.packed.Add(1)
		}
		p.mu.Lock()
		fmt.Fprintf(p.w, "\r\033[K%5.1fs [%s] layer %d/%d %s %s (%s)", time.Since(p.started).Seconds(), e.Platform, i, total, verb, e.Name, humanSize(e.Size))
		p.mu.Unlock()
	}
}

func (p *progress) done() {
	if p.on {
		p.mu.Lock()
		fmt.Fprint(p.w, "\r\033[K")
		p.mu.Unlock()
	}
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// publishArtifact is what an output gets: the OCI image or index with
// each platform image's SBOM as its referrer (with sbom, for oci: and
// registry outputs), or the Docker image for a docker-archive, which has
// no place for referrers.
func publishArtifact(ctx context.Context, b *builder.Builder, res builder.Result, art builder.Artifact, spec string, sbom, insecure bool) (publish.Artifact, error) {
	loc, err := publish.ParseLocation(spec, insecure)
	if err != nil {
		return publish.Artifact{}, fmt.Errorf("--output %w", err)
	}
	if loc.Kind == publish.KindArchive {
		if art.Index != nil {
			return publish.Artifact{}, fmt.Errorf("--output %s: a docker-archive holds one image and this build has several platforms; pick one with --platform", spec)
		}
		dart, err := b.Load(ctx, res.Docker)
		if err != nil {
			return publish.Artifact{}, err
		}
		return publish.Artifact{Image: dart.Image}, nil
	}
	pa := publish.Artifact{Image: art.Image, Index: art.Index}
	if !sbom {
		return pa, nil
	}
	subjects := []string{res.OCI.Digest}
	if art.Index != nil {
		im, err := art.Index.IndexManifest()
		if err != nil {
			return publish.Artifact{}, err
		}
		subjects = subjects[:0]
		for _, d := range im.Manifests {
			subjects = append(subjects, d.Digest.String())
		}
	}
	for _, s := range subjects {
		refs, err := b.Referrers(ctx, "", s)
		if err != nil {
			return publish.Artifact{}, err
		}
		for _, d := range refs {
			img, err := b.LoadReferrer(ctx, d)
			if err != nil {
				return publish.Artifact{}, err
			}
			pa.Referrers = append(pa.Referrers, publish.Artifact{Image: img})
		}
	}
	return pa, nil
}
