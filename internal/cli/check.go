package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"strata/internal/builder"
	"strata/internal/buildspec"
	"strata/internal/nix"
	"strata/internal/spec"
	"strata/internal/storage"
)

// checkOptions are the flags of strata check.
type checkOptions struct {
	from, to    string        // package sources; from defaults to NIXERY_PKGS_PATH/_REPO/CHANNEL
	files       []string      // build descriptions (YAML/JSON); default none
	publishCfgs []string      // publish configs; default none
	platform    string        // default the build machine's
	build       bool          // also build what changed; default false
	jsonOut     bool          // default false
	nixTimeout  time.Duration // each build with --build; default none
	verbose     bool          // --log-level given: show Nix's logs
}

func init() { register(newCheckCmd) }

func newCheckCmd(env *Env) *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check [IMAGE...] --from SOURCE --to SOURCE",
		Short: "Say what a package-set bump breaks for a set of images: renamed, removed and newly failing packages, version changes",
		Long: `check evaluates every package of every image in two package sources, the
current one (--from) and the one to bump to (--to), and prints what the bump
changes: packages renamed (with the new name), removed, newly failing to
evaluate, newly failing to build (with --build) and version changes. It exits
1 when something would break, 2 when it cannot tell (a source that does not
evaluate), 0 otherwise.

Images are on-demand names (shell/git/htop), build descriptions (-f) and
publish configs (--publish-config). A SOURCE is a package-set directory
(DIR), a git repository at a ref (git:URL#REF, or DIR#REF), a nixpkgs
channel, commit or tarball URL (channel:NAME) or a flake reference
(flake:REF, or github:..., git+https://...). --from defaults to the
serve configuration in NIXERY_PKGS_PATH, NIXERY_PKGS_REPO or NIXERY_CHANNEL.
The JSON output (--json) is described in docs/check.md.`,
		Example: `  strata check --from testdata/pkgs --to testdata/pkgs-next shell/exa/htop/jq/curl/telnet hello
  strata check --from git:/srv/pkgs#v1 --to git:/srv/pkgs#v2 -f image.yaml --build --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.verbose = logLevelGiven(cmd)
			return runCheckCmd(cmd.Context(), env, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.from, "from", "", "the current package source (default NIXERY_PKGS_PATH, NIXERY_PKGS_REPO or NIXERY_CHANNEL)")
	f.StringVar(&o.to, "to", "", "the package source to bump to (required)")
	f.StringArrayVarP(&o.files, "file", "f", nil, "build description (YAML/JSON) whose packages to check, repeatable (default none)")
	f.StringArrayVar(&o.publishCfgs, "publish-config", nil, "publish config whose build description to check, repeatable (default none)")
	f.StringVar(&o.platform, "platform", hostPlatform(), "platform to evaluate for, unless an image names its own (amd64/arm64 components, a description's platforms)")
	f.BoolVar(&o.build, "build", false, "also build, in --to, every package whose output changed, to find packages newly failing to build (default false)")
	f.BoolVar(&o.jsonOut, "json", false, "print the report as JSON (docs/check.schema.json) on stdout (default false)")
	f.DurationVar(&o.nixTimeout, "nix-timeout", 0, "time limit of each build with --build (default none)")
	return cmd
}

// checkSource is a package source of strata check.
type checkSource struct {
	label string // for people, without credentials
	cfg   nix.Config
	ref   string
}

// flakeSchemes are flake reference types taken as flakes without flake:.
var flakeSchemes = []string{"github:", "gitlab:", "sourcehut:", "git+", "path:", "tarball+", "file+", "hg+"}

// parseCheckSource reads DIR, DIR#REF, git:URL[#REF], channel:NAME,
// flake:REF or a flake reference.
func parseCheckSource(flag, s string) (checkSource, error) {
	usage := fmt.Errorf("%s %q: use a package-set directory, DIR#REF or git:URL#REF (a git repository at a ref), channel:NAME (a nixpkgs channel, commit or tarball URL) or flake:REF", flag, s)
	if s == "" {
		return checkSource{}, fmt.Errorf("%s: no package source given; use a package-set directory, git:URL#REF, channel:NAME or flake:REF", flag)
	}
	if rest, ok := strings.CutPrefix(s, "channel:"); ok && rest != "" {
		return checkSource{label: redactURL(s), cfg: nix.Config{Channel: rest}}, nil
	}
	if rest, ok := strings.CutPrefix(s, "flake:"); ok && rest != "" {
		return checkSource{label: redactURL(rest), cfg: nix.Config{Flake: rest}}, nil
	}
	if rest, ok := strings.CutPrefix(s, "git:"); ok && rest != "" {
		repo, ref, _ := strings.Cut(rest, "#")
		if repo == "" {
			return checkSource{}, usage
		}
		return checkSource{label: redactURL(s), cfg: nix.Config{PkgsRepo: repo}, ref: ref}, nil
	}
	for _, p := range flakeSchemes {
		if strings.HasPrefix(s, p) {
			return checkSource{label: redactURL(s), cfg: nix.Config{Flake: s}}, nil
		}
	}
	if dir, ref, ok := strings.Cut(s, "#"); ok {
		if fi, err := os.Stat(filepath.Join(dir, ".git")); err == nil && fi.IsDir() && ref != "" {
			return checkSource{label: s, cfg: nix.Config{PkgsRepo: dir}, ref: ref}, nil
		}
		return checkSource{}, usage
	}
	if fi, err := os.Stat(s); err == nil && fi.IsDir() {
		return checkSource{label: s, cfg: nix.Config{PkgsPath: s}}, nil
	}
	return checkSource{}, usage
}

// redactURL hides the user information of a URL in s.
func redactURL(s string) string {
	prefix, rest := "", s
	for _, p := range []string{"git:", "channel:", "flake:"} {
		if r, ok := strings.CutPrefix(s, p); ok {
			prefix, rest = p, r
		}
	}
	if u, err := url.Parse(strings.TrimPrefix(rest, "git+")); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		if strings.HasPrefix(rest, "git+") {
			return prefix + "git+" + u.String()
		}
		return prefix + u.String()
	}
	return s
}

// defaultFrom is the serve configuration's source, from Nixery's
// variables.
func defaultFrom(get func(string) string) string {
	switch {
	case get("NIXERY_PKGS_PATH") != "":
		return get("NIXERY_PKGS_PATH")
	case get("NIXERY_PKGS_REPO") != "":
		return "git:" + get("NIXERY_PKGS_REPO")
	case get("NIXERY_CHANNEL") != "":
		return "channel:" + get("NIXERY_CHANNEL")
	}
	return ""
}

// checkImage is one image to check: its packages and the platform they
// are evaluated for.
type checkImage struct {
	image    string // a name, a description file or a publish config
	kind     string // name, description, publish
	platform string
	target   nix.Target
	packages []string
	shell    bool
	// comps are a name's path components (to suggest the renamed name).
	comps []string
}

// Changes a bump makes to one package of an image.
const (
	changeUnchanged    = "unchanged"
	changeVersion      = "version"
	changeDeprecated   = "deprecated" // still evaluates, warns that it was renamed
	changeRenamed      = "renamed"
	changeRemoved      = "removed"
	changeEvalFailed   = "eval_failed"
	changeBuildFailed  = "build_failed"
	changeFixed        = "fixed"
	changeStillFailing = "still_failing"
)

// breaking are the changes that break an image that worked.
var breaking = map[string]bool{changeRenamed: true, changeRemoved: true, changeEvalFailed: true, changeBuildFailed: true}

// CheckReport is the --json output of strata check (docs/check.schema.json).
type CheckReport struct {
	From    *CheckSourceInfo `json:"from,omitempty"`
	To      CheckSourceInfo  `json:"to"`
	Images  []CheckedImage   `json:"images"`
	Summary CheckSummary     `json:"summary"`
	// Breaks is true when at least one image would break.
	Breaks bool `json:"breaks"`
}

// CheckSourceInfo names a package source and its revision.
type CheckSourceInfo struct {
	Source   string `json:"source"`
	Revision string `json:"revision"`
}

// CheckedImage is one image's packages and what the bump does to them.
type CheckedImage struct {
	Image    string `json:"image"`
	Kind     string `json:"kind"`
	Platform string `json:"platform"`
	Breaks   bool   `json:"breaks"`
	// Suggestion is the image name with renamed packages replaced.
	Suggestion string           `json:"suggestion,omitempty"`
	Packages   []CheckedPackage `json:"packages"`
}

// CheckedPackage is one package of an image in both sources.
type CheckedPackage struct {
	Name        string            `json:"name"`
	Change      string            `json:"change"`
	Breaks      bool              `json:"breaks"`
	Replacement string            `json:"replacement,omitempty"`
	Message     string            `json:"message,omitempty"`
	From        *nix.PackageState `json:"from,omitempty"`
	To          nix.PackageState  `json:"to"`
	// ReplacementState is the replacement's state in the new source.
	ReplacementState *nix.PackageState `json:"replacementState,omitempty"`
}

// CheckSummary counts distinct packages (per platform) by change, and
// the images that would break.
type CheckSummary struct {
	Images        int `json:"images"`
	BrokenImages  int `json:"brokenImages"`
	Packages      int `json:"packages"`
	Unchanged     int `json:"unchanged"`
	Version       int `json:"version"`
	Deprecated    int `json:"deprecated"`
	Renamed       int `json:"renamed"`
	Removed       int `json:"removed"`
	EvalFailed    int `json:"evalFailed"`
	BuildFailed   int `json:"buildFailed"`
	Fixed         int `json:"fixed"`
	StillFailing  int `json:"stillFailing"`
	BuildsChecked int `json:"buildsChecked"`
}

func runCheckCmd(ctx context.Context, env *Env, o *checkOptions, args []string) error {
	fail := func(err error) error { return &ExitError{Code: 2, Err: err} }
	if o.from == "" {
		o.from = defaultFrom(env.Getenv)
	}
	from, err := parseCheckSource("--from", o.from)
	if err != nil {
		return fail(err)
	}
	to, err := parseCheckSource("--to", o.to)
	if err != nil {
		return fail(err)
	}
	images, err := checkImages(args, o.files, o.publishCfgs, o.platform)
	if err != nil {
		return fail(err)
	}
	log := quietLog(env, o.verbose)
	mk := func(s checkSource) (*nix.Driver, error) {
		cfg := s.cfg
		cfg.Log = log
		cfg.Timeout = o.nixTimeout
		return nix.New(cfg)
	}
	fd, err := mk(from)
	if err != nil {
		return fail(fmt.Errorf("--from: %w", err))
	}
	td, err := mk(to)
	if err != nil {
		return fail(fmt.Errorf("--to: %w", err))
	}
	rep, err := runCheck(ctx, &checkSide{drv: fd, src: from}, checkSide{drv: td, src: to}, images, o.build, nil)
	if err != nil {
		return fail(err)
	}
	if o.jsonOut {
		if err := printJSON(env.Stdout, rep); err != nil {
			return err
		}
	} else {
		printCheck(env.Stdout, rep)
	}
	if rep.Breaks {
		return &ExitError{Code: 1, Err: fmt.Errorf("the bump would break %d of %d image(s)", rep.Summary.BrokenImages, rep.Summary.Images)}
	}
	return nil
}

// checkImages collects the images of names, description files and
// publish configs.
func checkImages(names, files, publishCfgs []string, platform string) ([]checkImage, error) {
	def, err := parsePlatforms(platform)
	if err != nil {
		return nil, fmt.Errorf("--platform: %w", err)
	}
	if len(def) != 1 {
		return nil, errors.New("--platform: give one platform")
	}
	plat := checkPlatform{def[0]}
	var out []checkImage
	for _, n := range names {
		s, err := spec.Parse(n, "")
		if err != nil {
			return nil, err
		}
		p, t, err := plat.pick(s.Platform)
		if err != nil {
			return nil, err
		}
		out = append(out, checkImage{image: n, kind: "name", platform: p, target: t, packages: s.Packages, shell: s.Shell, comps: strings.Split(n, "/")})
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".nix") {
			return nil, fmt.Errorf("%s: check reads YAML or JSON descriptions; a Nix description brings its own packages (list them as image names instead)", f)
		}
		d, err := readDescriptionFile(f)
		if err != nil {
			return nil, err
		}
		im, err := plat.descImage(f, "description", d)
		if err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	for _, f := range publishCfgs {
		cfg, d, err := readPublishConfig(f)
		if err != nil {
			return nil, err
		}
		if len(cfg.Platforms) > 0 && len(d.Platforms) == 0 {
			d.Platforms = cfg.Platforms
		}
		im, err := plat.descImage(f, "publish", d)
		if err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	if len(out) == 0 {
		return nil, errors.New("no images to check: name images (shell/git/htop), descriptions (-f image.yaml) or publish configs (--publish-config)")
	}
	return out, nil
}

// checkPlatform picks the platform of a checked image: its own, else the
// default (--platform).
type checkPlatform struct{ def builder.Platform }

func (c checkPlatform) pick(p string) (string, nix.Target, error) {
	if p == "" {
		return c.def.Platform.String(), c.def.Target, nil
	}
	ps, err := parsePlatforms(p)
	if err != nil {
		return "", nix.Target{}, err
	}
	return ps[0].Platform.String(), ps[0].Target, nil
}

// descImage is the checked image of a description: its packages, layer
// groups' included, by attribute name (store paths are not evaluated),
// for its first platform.
func (c checkPlatform) descImage(image, kind string, d *buildspec.Description) (checkImage, error) {
	var pkgs []string
	add := func(list []string) {
		for _, p := range list {
			if !strings.HasPrefix(p, "/") {
				pkgs = append(pkgs, p)
			}
		}
	}
	add(d.Packages)
	add(d.Include)
	for _, l := range d.Layers {
		add(l.Packages)
	}
	first := ""
	if len(d.Platforms) > 0 {
		first = d.Platforms[0]
	}
	p, t, err := c.pick(first)
	if err != nil {
		return checkImage{}, fmt.Errorf("%s: %w", image, err)
	}
	return checkImage{image: image, kind: kind, platform: p, target: t, packages: uniqueSorted(pkgs)}, nil
}

func uniqueSorted(s []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(s)))
}

func unique(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// checkSide is one package source of a check: its driver and what it is.
type checkSide struct {
	drv *nix.Driver
	src checkSource
}

// runCheck evaluates every package of every image in from (nil: compare
// with nothing, as serve --check-on-start does) and to, builds what changed
// when build is set, and classifies each package. progress, when not nil,
// is told each step.
func runCheck(ctx context.Context, from *checkSide, to checkSide, images []checkImage, build bool, progress func(string)) (*CheckReport, error) {
	c := &checker{from: from, to: to, build: build, rep: &CheckReport{Images: []CheckedImage{}}, say: func(s string) {
		if progress != nil {
			progress(s)
		}
	}}
	shellFrom, shellTo, err := c.sources(ctx, images)
	if err != nil {
		return nil, err
	}
	pkgsOf, byPlat, targets := packagesByPlatform(images, shellFrom, shellTo)
	results := map[platformPackage]CheckedPackage{}
	for _, plat := range slices.Sorted(maps.Keys(byPlat)) {
		if err := c.checkPlatform(ctx, plat, targets[plat], uniqueSorted(byPlat[plat]), results); err != nil {
			return nil, err
		}
	}
	for _, cp := range results {
		c.rep.Summary.count(cp.Change)
	}
	for i, im := range images {
		ci := checkedImage(im, pkgsOf[i], results)
		c.rep.Summary.Images++
		if ci.Breaks {
			c.rep.Summary.BrokenImages++
			c.rep.Breaks = true
		}
		c.rep.Images = append(c.rep.Images, ci)
	}
	return c.rep, nil
}

// checker holds what one check compares and where its report goes.
type checker struct {
	from  *checkSide // nil: compare with nothing
	to    checkSide
	build bool         // build what changed
	say   func(string) // progress
	rep   *CheckReport
}

// platformPackage is a package evaluated for a platform.
type platformPackage struct{ platform, name string }

// sources fills in each source's revision and returns the shell
// meta-package's packages in each (when an image uses it), both sources at
// once.
func (c *checker) sources(ctx context.Context, images []checkImage) (shellFrom, shellTo []string, err error) {
	shell := false
	for _, im := range images {
		shell = shell || im.shell
	}
	side := func(g *errgroup.Group, s checkSide, flag string, info *CheckSourceInfo, shellPkgs *[]string) {
		g.Go(func() error {
			var err error
			if *info, err = sourceInfo(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", flag, err)
			}
			if shell {
				if *shellPkgs, err = s.drv.ShellPackages(ctx, s.src.ref); err != nil {
					return fmt.Errorf("%s: %w", flag, err)
				}
			}
			return nil
		})
	}
	var g errgroup.Group
	side(&g, c.to, "--to", &c.rep.To, &shellTo)
	if c.from != nil {
		c.rep.From = &CheckSourceInfo{}
		side(&g, *c.from, "--from", c.rep.From, &shellFrom)
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return shellFrom, shellTo, nil
}

// packagesByPlatform returns each image's packages (the shell's of both
// sources added for shell images) and every platform's packages and target.
func packagesByPlatform(images []checkImage, shellFrom, shellTo []string) (pkgsOf [][]string, byPlat map[string][]string, targets map[string]nix.Target) {
	byPlat = map[string][]string{}
	targets = map[string]nix.Target{}
	pkgsOf = make([][]string, len(images))
	for i, im := range images {
		p := append([]string(nil), im.packages...)
		if im.shell {
			p = append(append(p, shellFrom...), shellTo...)
		}
		pkgsOf[i] = unique(p)
		targets[im.platform] = im.target
		byPlat[im.platform] = append(byPlat[im.platform], pkgsOf[i]...)
	}
	return pkgsOf, byPlat, targets
}

// checkPlatform evaluates names for plat in both sources, builds what
// changed when asked to, and puts each package's result in results.
func (c *checker) checkPlatform(ctx context.Context, plat string, t nix.Target, names []string, results map[platformPackage]CheckedPackage) error {
	tos, froms, err := c.inspect(ctx, plat, t, names)
	if err != nil {
		return err
	}
	replStates, err := c.replacements(ctx, t, tos)
	if err != nil {
		return err
	}
	for i, n := range names {
		cp := CheckedPackage{Name: n, To: tos[i]}
		if c.from != nil {
			f := froms[i]
			cp.From = &f
		}
		cp.Change = classify(cp.From, cp.To)
		if err := c.buildChanged(ctx, t, &cp); err != nil {
			return err
		}
		cp.Breaks = breaking[cp.Change]
		cp.Replacement = cp.To.Replacement
		if cp.Message == "" && cp.Change != changeUnchanged && cp.Change != changeVersion {
			cp.Message = cp.To.Message
			if cp.Message == "" && len(cp.To.Warnings) > 0 {
				cp.Message = cp.To.Warnings[0]
			}
		}
		if rs, ok := replStates[cp.Replacement]; ok {
			cp.ReplacementState = &rs
		}
		results[platformPackage{plat, n}] = cp
	}
	return nil
}

// inspect evaluates names in both sources at once: they are independent
// Nix processes.
func (c *checker) inspect(ctx context.Context, plat string, t nix.Target, names []string) (tos, froms []nix.PackageState, err error) {
	g, gctx := errgroup.WithContext(ctx)
	in := func(s checkSide, flag string, states *[]nix.PackageState) func() error {
		return func() error {
			c.say(fmt.Sprintf("evaluating %d packages for %s in %s", len(names), plat, s.src.label))
			var err error
			if *states, _, err = s.drv.Inspect(gctx, s.src.ref, t, names); err != nil {
				return fmt.Errorf("%s %s: %w", flag, s.src.label, err)
			}
			return nil
		}
	}
	g.Go(in(c.to, "--to", &tos))
	if c.from != nil {
		g.Go(in(*c.from, "--from", &froms))
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return tos, froms, nil
}

// replacements evaluates the replacements of renamed packages in the new
// source.
func (c *checker) replacements(ctx context.Context, t nix.Target, tos []nix.PackageState) (map[string]nix.PackageState, error) {
	var repl []string
	for _, s := range tos {
		if s.Replacement != "" {
			repl = append(repl, s.Replacement)
		}
	}
	replStates := map[string]nix.PackageState{}
	if len(repl) > 0 {
		rs, _, err := c.to.drv.Inspect(ctx, c.to.src.ref, t, uniqueSorted(repl))
		if err != nil {
			return nil, fmt.Errorf("--to %s: %w", c.to.src.label, err)
		}
		for _, s := range rs {
			replStates[s.Name] = s
		}
	}
	return replStates, nil
}

// buildChanged builds, with --build, a package that evaluates and whose out
// path changed, in the new source; one that fails there is built in the old
// one too, to tell a new failure from an old one.
func (c *checker) buildChanged(ctx context.Context, t nix.Target, cp *CheckedPackage) error {
	if !c.build || cp.Change == changeRenamed || cp.Change == changeRemoved || cp.Change == changeEvalFailed ||
		cp.Change == changeStillFailing || (cp.From != nil && cp.From.OutPath == cp.To.OutPath) {
		return nil
	}
	c.say("building " + cp.Name + " in " + c.to.src.label)
	c.rep.Summary.BuildsChecked++
	if _, err := c.to.drv.Build(ctx, c.to.src.ref, t, []string{cp.To.Attr}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		cp.Message = err.Error()
		cp.Change = changeBuildFailed
		if cp.From != nil && cp.From.State == nix.StateOK {
			c.say("building " + cp.Name + " in " + c.from.src.label)
			if _, ferr := c.from.drv.Build(ctx, c.from.src.ref, t, []string{cp.From.Attr}); ferr != nil {
				cp.Change = changeStillFailing
			}
		}
	}
	return nil
}

// count counts a package with change in the summary.
func (s *CheckSummary) count(change string) {
	s.Packages++
	switch change {
	case changeUnchanged:
		s.Unchanged++
	case changeVersion:
		s.Version++
	case changeDeprecated:
		s.Deprecated++
	case changeRenamed:
		s.Renamed++
	case changeRemoved:
		s.Removed++
	case changeEvalFailed:
		s.EvalFailed++
	case changeBuildFailed:
		s.BuildFailed++
	case changeFixed:
		s.Fixed++
	case changeStillFailing:
		s.StillFailing++
	}
}

// checkedImage is the report of image im, whose packages are pkgs: each
// package's result, whether it breaks, and the image name to use instead
// when packages were renamed.
func checkedImage(im checkImage, pkgs []string, results map[platformPackage]CheckedPackage) CheckedImage {
	ci := CheckedImage{Image: im.image, Kind: im.kind, Platform: im.platform, Packages: []CheckedPackage{}}
	renamed := map[string]string{}
	for _, n := range pkgs {
		cp := results[platformPackage{im.platform, n}]
		ci.Packages = append(ci.Packages, cp)
		ci.Breaks = ci.Breaks || cp.Breaks
		if cp.To.State == nix.StateRenamed && cp.Replacement != "" {
			renamed[n] = cp.Replacement
		}
	}
	sort.Slice(ci.Packages, func(a, b int) bool { return ci.Packages[a].Name < ci.Packages[b].Name })
	if len(renamed) > 0 && im.comps != nil {
		comps := append([]string(nil), im.comps...)
		for j, c := range comps {
			for old, nw := range renamed {
				if strings.EqualFold(c, old) {
					comps[j] = strings.ToLower(nw)
				}
			}
		}
		ci.Suggestion = strings.Join(unique(comps), "/")
	}
	return ci
}

func sourceInfo(ctx context.Context, s checkSide) (CheckSourceInfo, error) {
	rev, err := s.drv.Revision(ctx, s.src.ref)
	if err != nil {
		return CheckSourceInfo{}, err
	}
	return CheckSourceInfo{Source: s.src.label, Revision: rev}, nil
}

// classify is the change from f (nil: unknown, as with one source) to t.
func classify(f *nix.PackageState, t nix.PackageState) string {
	wasOK := f == nil || f.State == nix.StateOK
	if !wasOK {
		if t.State == nix.StateOK {
			return changeFixed
		}
		return changeStillFailing
	}
	switch t.State {
	case nix.StateOK:
		switch {
		case f != nil && (f.Version != t.Version || f.DrvName != t.DrvName):
			return changeVersion
		case t.Replacement != "":
			return changeDeprecated
		}
		return changeUnchanged
	case nix.StateRenamed:
		return changeRenamed
	case nix.StateRemoved:
		return changeRemoved
	}
	return changeEvalFailed
}

// changeLabels are the text output's words for the changes.
var changeLabels = map[string]string{
	changeVersion:      "version",
	changeDeprecated:   "deprecated",
	changeRenamed:      "renamed",
	changeRemoved:      "removed",
	changeEvalFailed:   "fails to evaluate",
	changeBuildFailed:  "fails to build",
	changeFixed:        "fixed",
	changeStillFailing: "still failing",
}

// printCheck writes the report for people.
func printCheck(w io.Writer, r *CheckReport) {
	if r.From != nil {
		fmt.Fprintf(w, "from %s (%s)\n", r.From.Source, shortRev(r.From.Revision))
	}
	fmt.Fprintf(w, "to   %s (%s)\n\n", r.To.Source, shortRev(r.To.Revision))
	for _, im := range r.Images {
		state := "unchanged"
		switch {
		case im.Breaks:
			state = "BREAKS"
		case changed(im):
			state = "changes, nothing breaks"
		}
		fmt.Fprintf(w, "%s (%s, %s): %s\n", im.Image, im.Kind, im.Platform, state)
		for _, p := range im.Packages {
			label, ok := changeLabels[p.Change]
			if !ok {
				continue
			}
			var detail string
			switch p.Change {
			case changeVersion:
				detail = fmt.Sprintf("%s %s → %s", p.Name, versionOf(p.From), versionOf(&p.To))
			case changeRenamed, changeDeprecated:
				detail = p.Name + " → " + p.Replacement
				if rs := p.ReplacementState; rs != nil {
					if rs.State == nix.StateOK {
						detail += " " + rs.Version
					} else {
						detail += " (which " + rs.State + ": " + rs.Message + ")"
					}
				}
			default:
				detail = p.Name
				if p.Message != "" {
					detail += ": " + firstLine(p.Message)
				}
			}
			fmt.Fprintf(w, "  %-17s %s\n", label, detail)
		}
		if im.Suggestion != "" {
			fmt.Fprintf(w, "  use %s\n", im.Suggestion)
		}
	}
	s := r.Summary
	fmt.Fprintf(w, "\n%d image(s), %d package(s): %d renamed, %d removed, %d newly failing to evaluate, %d newly failing to build, %d version change(s), %d deprecated, %d fixed, %d still failing",
		s.Images, s.Packages, s.Renamed, s.Removed, s.EvalFailed, s.BuildFailed, s.Version, s.Deprecated, s.Fixed, s.StillFailing)
	if s.BuildsChecked > 0 {
		fmt.Fprintf(w, " (%d built)", s.BuildsChecked)
	}
	fmt.Fprintln(w)
	if r.Breaks {
		fmt.Fprintf(w, "the bump would break %d image(s)\n", s.BrokenImages)
	} else {
		fmt.Fprintln(w, "nothing would break")
	}
}

func changed(im CheckedImage) bool {
	for _, p := range im.Packages {
		if p.Change != changeUnchanged {
			return true
		}
	}
	return false
}

func versionOf(s *nix.PackageState) string {
	if s == nil {
		return "?"
	}
	if s.Version != "" {
		return s.Version
	}
	return s.DrvName
}

func shortRev(r string) string {
	if alg, hex, ok := strings.Cut(r, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	if len(r) == 40 {
		return r[:12]
	}
	return r
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// maxStartupChecks bounds the images serve --check-on-start looks at.
const maxStartupChecks = 200

// checkOnStart evaluates the packages of the images serve built before
// (its recent builds and the image records in storage) in the configured
// package source, and logs every package that would no longer build:
// renamed (with the replacement), removed or failing to evaluate.
func checkOnStart(ctx context.Context, log *slog.Logger, drv *nix.Driver, store storage.Store, recent []string, platform string) {
	names := append([]string(nil), recent...)
	keys, err := store.List(ctx, storage.ImagesPrefix)
	if err != nil {
		log.Warn("check on start: listing the built images failed", "error", err.Error())
	}
	for _, k := range keys {
		if len(names) >= maxStartupChecks {
			break
		}
		rc, err := store.Open(ctx, k)
		if err != nil {
			continue
		}
		var rec struct {
			Name string `json:"name"`
		}
		err = json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&rec)
		rc.Close()
		if err == nil && rec.Name != "" {
			names = append(names, rec.Name)
		}
	}
	var images []checkImage
	for _, n := range unique(names) {
		ims, err := checkImages([]string{n}, nil, nil, platform)
		if err != nil {
			continue // not an on-demand name
		}
		images = append(images, ims...)
	}
	if len(images) == 0 {
		log.Info("check on start: no built images to check")
		return
	}
	rep, err := runCheck(ctx, nil, checkSide{drv: drv, src: checkSource{label: "the package source"}}, images, false, nil)
	if err != nil {
		log.Error("check on start failed", "error", err.Error())
		return
	}
	for _, im := range rep.Images {
		for _, p := range im.Packages {
			if !p.Breaks && p.Change != changeDeprecated && p.Change != changeStillFailing {
				continue
			}
			attrs := []any{"image", im.Image, "package", p.Name, "change", p.Change}
			if p.Replacement != "" {
				attrs = append(attrs, "replacement", p.Replacement)
			}
			if im.Suggestion != "" {
				attrs = append(attrs, "suggestion", im.Suggestion)
			}
			if p.Message != "" {
				attrs = append(attrs, "message", p.Message)
			}
			log.Warn("check on start: a built image's package no longer builds", attrs...)
		}
	}
	s := rep.Summary
	log.Info("check on start", "images", s.Images, "brokenImages", s.BrokenImages, "packages", s.Packages,
		"renamed", s.Renamed, "removed", s.Removed, "evalFailed", s.EvalFailed, "deprecated", s.Deprecated, "stillFailing", s.StillFailing)
}
