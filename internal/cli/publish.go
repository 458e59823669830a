package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"strata/internal/builder"
	"strata/internal/buildspec"
	"strata/internal/layering"
	"strata/internal/nix"
	"strata/internal/publish"
)

// blockerExitCode is the exit code of a release stopped by a preflight
// blocker (other failures exit 1).
const blockerExitCode = 2

type publishOptions struct {
	remote    remoteFlags
	file      string   // -f: the publish config; required
	publish   bool     // --publish (or PUBLISH=1): mutate; default dry run
	platforms []string // default the config's, the description's, the host's
	verbose   bool     // --log-level given: show the builder's logs
	localBuild
}

func init() {
	register(newPublishCmd)
	register(newPreflightCmd)
}

// newPreflightCmd is strata preflight: publish's registry check on its own,
// for release steps run as separate commands.
func newPreflightCmd(env *Env) *cobra.Command {
	var f remoteFlags
	cmd := &cobra.Command{
		Use:   "preflight REGISTRY/REPOSITORY",
		Short: "Check a registry is up and takes the credentials found, before a release step mutates it",
		Long: `preflight makes the check strata publish makes before any mutation, with GET
requests only: GET /v2/, then, when the registry asks for credentials, the
credential found tried for push access to the repository. It stops with
BLOCKER(registry-down) (unreachable, or 5xx), BLOCKER(empty-token) (the
registry asks for credentials and none is found) or BLOCKER(auth-refused),
exit code 2; otherwise it prints one line and exits 0.

` + credentialsHelp,
		Example: `  REGISTRY_TOKEN=... strata preflight --username ci registry.example/app`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log := f.logger(cmd, env)
			kc, err := f.keychain(cmd, env, log, args[0])
			if err != nil {
				return err
			}
			pf, err := publish.Preflight(cmd.Context(), args[0], publish.PreflightOptions{Keychain: kc, Insecure: f.insecure, Log: log})
			var be *publish.BlockerError
			if errors.As(err, &be) {
				return &ExitError{Code: blockerExitCode, Err: err}
			}
			if err != nil {
				return err
			}
			switch {
			case pf.HasCredential:
				_, err = fmt.Fprintf(env.Stdout, "registry %s: up, credentials accepted\n", hostOf(args[0]))
			default:
				_, err = fmt.Fprintf(env.Stdout, "registry %s: up, answers anonymously (no credential found)\n", hostOf(args[0]))
			}
			return err
		},
	}
	f.addCreds(cmd, false)
	return cmd
}

func newPublishCmd(env *Env) *cobra.Command {
	o := &publishOptions{}
	cmd := &cobra.Command{
		Use:   "publish -f FILE",
		Short: "Build every platform, push each by digest, assemble the index and move the release tags",
		Long: `publish releases an image as its config file says (docs/publish.md): it builds
every platform, pushes each image by digest, pushes the index of them (with the
config's annotations), tags it with the version, and moves latest for a release
version, as the very last mutation.

It is a dry run unless --publish is given or PUBLISH=1 is set: the images are
built (so digests are known) and every registry mutation is printed, in order,
without making it. Either way a preflight GET /v2/ comes first and stops with
BLOCKER(registry-down) (unreachable, or 5xx), BLOCKER(empty-token) (the
registry asks for credentials and none is found) or BLOCKER(auth-refused)
(the credentials are refused), exit code 2, before any mutation.

The version is $VERSION, else the CI tag without its leading v
($CI_COMMIT_TAG, or $GITHUB_REF_NAME when $GITHUB_REF_TYPE=tag), else the
config's version. latest moves only for MAJOR.MINOR.PATCH versions: not for
1.2.3-rc.1, 0.0.0-dev or 1.2.3+dirty.

` + credentialsHelp,
		Example: `  strata publish -f examples/publish/publish.yaml --pkgs-path testdata/pkgs
  VERSION=1.2.3 strata publish -f publish.yaml --publish --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.verbose = logLevelGiven(cmd)
			err := runPublishCmd(cmd.Context(), cmd, env, o)
			var be *publish.BlockerError
			if errors.As(err, &be) {
				return &ExitError{Code: blockerExitCode, Err: err}
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.file, "file", "f", "", "publish config (YAML; see docs/publish.md)")
	fl.BoolVar(&o.publish, "publish", false, "make the mutations (default: a dry run printing them; PUBLISH=1 does the same)")
	fl.StringSliceVar(&o.platforms, "platform", nil, "platforms to build, overriding the config's, e.g. linux/amd64,linux/arm64")
	o.localBuild.addFlags(fl, env.Getenv)
	o.remote.add(cmd, true)
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

const credentialsHelp = `Credentials for the destination, first found wins: --username with
--password-stdin; $REGISTRY_TOKEN (a registry token sent as Bearer, or the
password with --username); docker config.json ($DOCKER_CONFIG) and podman
auth.json ($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json) with
their credential helpers; --token-command. A registry that answers /v2/
anonymously with 200 is published to without credentials when none is found.`

// PublishResult is the --json output of strata publish.
type PublishResult struct {
	publish.ReleaseResult
	// VersionSource says where the version came from: $VERSION,
	// $CI_COMMIT_TAG, $GITHUB_REF_NAME or config.
	VersionSource string `json:"versionSource"`
	// Release is set for a release version (IsRelease).
	Release bool `json:"release"`
	// Skipped are platforms that are not required and failed to build.
	Skipped []string `json:"skipped"`
}

// publishEnabled reports whether PUBLISH asks for mutations.
func publishEnabled(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func runPublishCmd(ctx context.Context, cmd *cobra.Command, env *Env, o *publishOptions) error {
	cfg, desc, err := readPublishConfig(o.file)
	if err != nil {
		return err
	}
	platforms, required, err := publishPlatforms(o, cfg, desc)
	if err != nil {
		return err
	}
	fallback := cfg.Version
	if fallback == "" {
		fallback = desc.Annotations["org.opencontainers.image.version"]
	}
	version, vsrc, err := publish.ResolveVersion(env.Getenv, fallback)
	if err != nil {
		return fmt.Errorf("%w (%s)", err, cfg.File())
	}
	release := publish.IsRelease(version)
	dryRun := !o.publish && !publishEnabled(env.Getenv("PUBLISH"))
	out := newPublishOutput(env, o.remote.json)
	switch {
	case release && cfg.MoveLatest():
		out.line("version %s (from %s): a release, latest moves", version, vsrc)
	case release:
		out.line("version %s (from %s): a release; latest stays (latest: false)", version, vsrc)
	default:
		out.line("version %s (from %s): not a release (pre-release, dev or build metadata), latest stays", version, vsrc)
	}
	// Preflight: nothing is built or pushed when the registry is not usable.
	log := o.remote.logger(cmd, env)
	kc, err := preflightRepository(ctx, cmd, env, o, cfg.Repository, log, out)
	if err != nil {
		return err
	}
	imgs, skipped, err := buildPlatforms(ctx, env, o, desc, platforms, required, out)
	if err != nil {
		return err
	}
	if dryRun {
		out.line("dry run: these mutations would be made (pass --publish or set PUBLISH=1 to make them):")
	}
	res, err := publish.Release(ctx, publish.ReleaseOptions{
		Repository: cfg.Repository, Version: version, Images: imgs, Annotations: releaseAnnotations(cfg, version),
		Require: required, MoveLatest: release && cfg.MoveLatest(), DryRun: dryRun,
		Step:     func(s publish.Step) { out.step(s, dryRun) },
		Progress: out.progress,
		Jobs:     o.remote.jobs, Insecure: o.remote.insecure, Keychain: kc, Log: log,
	})
	if err != nil {
		return err
	}
	if o.remote.json {
		return printJSON(env.Stdout, PublishResult{ReleaseResult: res, VersionSource: string(vsrc), Release: release, Skipped: append([]string{}, skipped...)})
	}
	if dryRun {
		out.line("dry run: nothing was pushed")
	} else {
		out.line("published %s:%s %s", res.Repository, strings.Join(res.Tags, ", :"), res.Index)
	}
	return nil
}

// readPublishConfig reads a publish config and its build description.
func readPublishConfig(file string) (*publish.Config, *buildspec.Description, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read the publish config: %w", err)
	}
	cfg, err := publish.ParseConfig(file, raw)
	if err != nil {
		return nil, nil, err
	}
	desc, err := loadDescription(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, desc, nil
}

// publishPlatforms are the platforms to build (--platform, else the
// config's, the description's, the build machine's) and the required
// ones, all of which must be among them.
func publishPlatforms(o *publishOptions, cfg *publish.Config, desc *buildspec.Description) ([]builder.Platform, []v1.Platform, error) {
	platforms, err := parsePlatforms(strings.Join(choosePlatforms(o.platforms, cfg.Platforms, desc.Platforms), ","))
	if err != nil {
		return nil, nil, fmt.Errorf("platforms: %w", err)
	}
	names := make([]string, len(platforms))
	have := make([]v1.Platform, len(platforms))
	for i, p := range platforms {
		names[i] = p.Platform.String()
		have[i] = p.Platform
	}
	required, err := cfg.RequiredPlatforms(names)
	if err != nil {
		return nil, nil, err
	}
	if missing := publish.MissingPlatforms(have, required); len(missing) > 0 {
		return nil, nil, fmt.Errorf("required platform %s missing from the platforms to build (%s): add it to platforms in %s, or drop it from require (nothing was built or pushed)",
			strings.Join(missing, ", "), strings.Join(names, ", "), cfg.File())
	}
	return platforms, required, nil
}

// preflightRepository finds the credentials for repo and checks the
// registry with them (publish.Preflight); it returns the keychain.
func preflightRepository(ctx context.Context, cmd *cobra.Command, env *Env, o *publishOptions, repo string, log *slog.Logger, out *publishOutput) (authn.Keychain, error) {
	kc, err := o.remote.keychain(cmd, env, log, repo)
	if err != nil {
		return nil, err
	}
	pf, err := publish.Preflight(ctx, repo, publish.PreflightOptions{Keychain: kc, Insecure: o.remote.insecure, Log: log})
	if err != nil {
		return nil, err
	}
	if pf.Anonymous && !pf.HasCredential {
		out.line("registry %s answers anonymously and no credential was found: going on without one", hostOf(repo))
	}
	return kc, nil
}

// releaseAnnotations are the index's annotations: the config's, with the
// version unless the config sets it.
func releaseAnnotations(cfg *publish.Config, version string) map[string]string {
	annots := map[string]string{}
	for k, v := range cfg.Annotations {
		annots[k] = v
	}
	if _, ok := annots["org.opencontainers.image.version"]; !ok {
		annots["org.opencontainers.image.version"] = version
	}
	return annots
}

// loadDescription reads the config's build description, inline or from its
// file; a description's errors name the line of the file they are in.
func loadDescription(cfg *publish.Config) (*buildspec.Description, error) {
	if cfg.BuildPath == "" {
		return buildspec.Parse(cfg.File(), cfg.BuildInline)
	}
	if strings.HasSuffix(cfg.BuildPath, ".nix") {
		return nil, fmt.Errorf("%s: build: %s is a Nix description; publish takes YAML or JSON descriptions (docs/build.md)", cfg.File(), cfg.BuildPath)
	}
	raw, err := os.ReadFile(cfg.BuildPath)
	if err != nil {
		return nil, fmt.Errorf("%s: build: %w (the path is relative to the config file)", cfg.File(), err)
	}
	return buildspec.Parse(cfg.BuildPath, raw)
}

// buildPlatforms builds each platform's image, in parallel, into a slice
// indexed by platform (so the order never depends on timing). A platform
// that is not required may fail: it is reported and left out.
func buildPlatforms(ctx context.Context, env *Env, o *publishOptions, desc *buildspec.Description,
	platforms []builder.Platform, required []v1.Platform, out *publishOutput) ([]publish.PlatformImage, []string, error) {
	prog := newProgress(env.Stderr, o.remote.json)
	b, err := newPublishBuilder(env, o, desc, platforms, prog)
	if err != nil {
		return nil, nil, err
	}
	if desc.Name == "" {
		desc.Name = "image"
	}
	imgs := make([]v1.Image, len(platforms))
	sboms := make([][]v1.Image, len(platforms))
	errs := make([]error, len(platforms))
	var wg sync.WaitGroup
	for i, p := range platforms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			imgs[i], sboms[i], errs[i] = buildPlatformImage(ctx, b, desc, o.ref, p)
		}()
	}
	wg.Wait()
	prog.done()
	var (
		result  []publish.PlatformImage
		skipped []string
		fatal   []error
	)
	for i, p := range platforms {
		ps := p.Platform.String()
		if errs[i] != nil {
			if len(requiredOnly(required, p.Platform)) > 0 {
				fatal = append(fatal, fmt.Errorf("build %s (a required platform; nothing was pushed): %w", ps, errs[i]))
				continue
			}
			out.line("build %s failed, and it is not required: publishing without it: %v", ps, errs[i])
			skipped = append(skipped, ps)
			continue
		}
		d, err := imgs[i].Digest()
		if err != nil {
			return nil, nil, err
		}
		out.line("built %s %s", ps, d)
		pl := p.Platform
		result = append(result, publish.PlatformImage{Platform: &pl, Image: imgs[i], Referrers: sboms[i]})
	}
	if len(fatal) > 0 {
		return nil, nil, errors.Join(fatal...)
	}
	return result, skipped, nil
}

// newPublishBuilder is the builder of a release: the description must name
// something to build, and the flags a package set and a cache directory.
func newPublishBuilder(env *Env, o *publishOptions, desc *buildspec.Description, platforms []builder.Platform, prog *progress) (*builder.Builder, error) {
	if len(desc.Packages) == 0 && len(desc.Layers) == 0 {
		return nil, fmt.Errorf("%s: nothing to build: the description names no packages or layers", desc.File())
	}
	if !o.hasSource() {
		return nil, errNoSource
	}
	store, err := o.openCache()
	if err != nil {
		return nil, err
	}
	drv, err := nix.New(o.nixConfig(quietLog(env, o.verbose)))
	if err != nil {
		return nil, err
	}
	strat, err := layering.New("", nil)
	if err != nil {
		return nil, err
	}
	bo := o.builderOptions(desc, platforms, quietLog(env, o.verbose), prog)
	bo.Nix, bo.Store, bo.Strategy = drv, store, strat
	return builder.New(bo)
}

// buildPlatformImage builds desc for platform p and returns the image and
// its SBOMs, which go out as its referrers, as with build.
func buildPlatformImage(ctx context.Context, b *builder.Builder, desc *buildspec.Description, ref string, p builder.Platform) (v1.Image, []v1.Image, error) {
	req := desc.Request()
	req.Ref = ref
	req.Platforms = []string{p.Platform.String()}
	res, err := b.Build(ctx, req)
	if err != nil {
		return nil, nil, explainBuildError(desc, err)
	}
	art, err := b.Load(ctx, res.OCI)
	if err != nil {
		return nil, nil, err
	}
	if art.Image == nil {
		return nil, nil, fmt.Errorf("builder returned an index for one platform")
	}
	refs, err := b.Referrers(ctx, "", res.OCI.Digest)
	if err != nil {
		return nil, nil, err
	}
	var sboms []v1.Image
	for _, d := range refs {
		img, err := b.LoadReferrer(ctx, d)
		if err != nil {
			return nil, nil, err
		}
		sboms = append(sboms, img)
	}
	return art.Image, sboms, nil
}

// requiredOnly returns the entries of required that p satisfies.
func requiredOnly(required []v1.Platform, p v1.Platform) []v1.Platform {
	var out []v1.Platform
	for _, r := range required {
		if len(publish.MissingPlatforms([]v1.Platform{p}, []v1.Platform{r})) == 0 {
			out = append(out, r)
		}
	}
	return out
}

// publishOutput prints plain lines (not with --json) and, on a terminal,
// progress bars of image pushes.
type publishOutput struct {
	w    io.Writer // plain lines; nil with --json
	tty  io.Writer // progress bars; nil unless stderr is a terminal
	mu   sync.Mutex
	last time.Time
}

func newPublishOutput(env *Env, jsonOut bool) *publishOutput {
	o := &publishOutput{}
	if !jsonOut {
		o.w = env.Stdout
		if f, ok := env.Stderr.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				o.tty = f
			}
		}
	}
	return o
}

func (o *publishOutput) line(format string, args ...any) {
	if o.w == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tty != nil {
		fmt.Fprint(o.tty, "\r\033[K")
	}
	fmt.Fprintf(o.w, format+"\n", args...)
}

func (o *publishOutput) step(s publish.Step, dryRun bool) {
	if dryRun {
		o.line("  %s", s)
		return
	}
	o.line("%s", s)
}

const barWidth = 30

func (o *publishOutput) progress(s publish.Step, u v1.Update) {
	if o.tty == nil || u.Total <= 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if u.Complete < u.Total && time.Since(o.last) < 100*time.Millisecond {
		return
	}
	o.last = time.Now()
	n := int(int64(barWidth) * min(u.Complete, u.Total) / u.Total)
	fmt.Fprintf(o.tty, "\r\033[Kpushing %s [%s%s] %s / %s", s.Platform,
		strings.Repeat("=", n), strings.Repeat(" ", barWidth-n), humanSize(u.Complete), humanSize(u.Total))
}
