package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"strata/internal/auth"
	"strata/internal/builder"
	"strata/internal/image"
	"strata/internal/layer"
	"strata/internal/layering"
	"strata/internal/metrics"
	"strata/internal/nix"
	"strata/internal/nixcache"
	"strata/internal/ondemand"
	"strata/internal/registry"
	"strata/internal/storage"
	"strata/web"
)

// serveOptions are the flags of strata serve. Each flag's default comes from
// the Nixery variable named in its help, so strata is a drop-in for Nixery;
// a flag given on the command line wins.
type serveOptions struct {
	listen      string
	pkgsPath    string
	channel     string
	pkgsRepo    string
	flake       string
	storage     string
	storagePath string
	nixTimeout  time.Duration
	builders    string
	popularity  string
	packageSet  string
	strategy    string
	maxLayers   int
	platforms   string
	epoch       int64
	compression string

	pushPrefix     string
	anonymousPull  bool
	htpasswd       string
	tokenService   bool
	tokenKey       string
	tokenTTL       time.Duration
	tokenRealm     string
	maxUpload      int64
	maxUploads     int
	gcInterval     time.Duration
	gcGrace        time.Duration
	uploadMaxAge   time.Duration
	deleteUntagged bool

	readyInterval time.Duration
	failureTTL    time.Duration
	checkOnStart  bool

	cacheKeyFile  string
	cachePriority int

	s3 storageOptions
}

func init() { register(newServeCmd) }

func newServeCmd(env *Env) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the on-demand registry: pull HOST/shell/hello and get an image of those Nix packages",
		Long: `serve runs an OCI registry that builds images on demand from the image name:
every path component is a package attribute of the package set, plus the
meta-packages shell, amd64, arm64 and buildpacks.

Nixery's environment variables keep working (PORT, NIXERY_PKGS_PATH,
NIXERY_CHANNEL, NIXERY_PKGS_REPO, NIXERY_STORAGE_BACKEND, STORAGE_PATH,
NIX_TIMEOUT, NIX_POPULARITY_URL); a flag wins over its variable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), env, o)
		},
	}
	f := cmd.Flags()
	get := env.Getenv
	listen := "127.0.0.1:8080"
	if p := get("PORT"); p != "" {
		listen = ":" + p
	}
	timeout := 60 * time.Second
	if t := get("NIX_TIMEOUT"); t != "" {
		if n, err := strconv.Atoi(t); err == nil {
			timeout = time.Duration(n) * time.Second
		} else if d, err := time.ParseDuration(t); err == nil {
			timeout = d
		}
	}
	backend := "filesystem"
	if v := get("NIXERY_STORAGE_BACKEND"); v != "" {
		backend = v
	}
	f.StringVar(&o.listen, "listen", listen, "address to listen on (PORT=N means :N)")
	f.StringVar(&o.pkgsPath, "pkgs-path", get("NIXERY_PKGS_PATH"), "package set at a local path (NIXERY_PKGS_PATH)")
	f.StringVar(&o.channel, "channel", get("NIXERY_CHANNEL"), "nixpkgs channel or commit (NIXERY_CHANNEL)")
	f.StringVar(&o.pkgsRepo, "pkgs-repo", get("NIXERY_PKGS_REPO"), "package set in a git repository; the image tag selects a ref (NIXERY_PKGS_REPO)")
	f.StringVar(&o.flake, "flake", "", "package set: a flake reference whose legacyPackages (else packages) are used, e.g. github:NixOS/nixpkgs/nixos-unstable or git+file:///src")
	f.StringVar(&o.storage, "storage", backend, "storage backend: filesystem or s3 (NIXERY_STORAGE_BACKEND)")
	f.StringVar(&o.storagePath, "storage-path", get("STORAGE_PATH"), "directory of the filesystem storage (STORAGE_PATH)")
	f.DurationVar(&o.nixTimeout, "nix-timeout", timeout, "time limit of one Nix build (NIX_TIMEOUT, in seconds)")
	f.StringVar(&o.builders, "nix-builders", "", "Nix remote builders, as Nix's builders setting (default: Nix's own configuration)")
	f.StringVar(&o.popularity, "popularity", get("NIX_POPULARITY_URL"), "popularity data in Nixery's format, a path or URL (NIX_POPULARITY_URL)")
	f.StringVar(&o.packageSet, "package-set", "", "a corpus file (the package set's paths and images, as strata layers reads) whose popularity and image sizes configure the layering strategy, as the layering benchmark measures it; --popularity then replaces its popularity (default none)")
	f.StringVar(&o.strategy, "strategy", layering.Default().Name(), "layering strategy")
	f.IntVar(&o.maxLayers, "max-layers", 100, "most layers in an image, the customisation layer included")
	f.StringVar(&o.platforms, "platforms", hostPlatform(), "platforms to build, comma-separated, each os/arch[=native|cross|remote]")
	f.Int64Var(&o.epoch, "source-date-epoch", sourceDateEpoch(get), "modification time of every file in the layers (SOURCE_DATE_EPOCH)")
	f.StringVar(&o.compression, "compression", "gzip", "layer compression: gzip or zstd")
	f.StringVar(&o.pushPrefix, "push-prefix", "pushed", `push namespace: repositories named PREFIX/... accept pushes and deletes, every other name is an on-demand image (a push there is DENIED); "" disables pushes`)
	f.BoolVar(&o.anonymousPull, "anonymous-pull", true, "let clients without credentials pull")
	f.StringVar(&o.htpasswd, "htpasswd", "", "htpasswd file (bcrypt) of the users who may push and delete; enables access control (default: none, anyone may push)")
	f.BoolVar(&o.tokenService, "token-service", true, "with --htpasswd, challenge clients with the built-in token service at /token (Bearer); false: Basic")
	f.StringVar(&o.tokenKey, "token-key", "", "file holding the token signing key, at least 32 bytes (default: a random key per start; replicas need a shared file)")
	f.DurationVar(&o.tokenTTL, "token-ttl", 5*time.Minute, "lifetime of issued tokens")
	f.StringVar(&o.tokenRealm, "token-realm", "", "URL of the token service in challenges (default: http://<request host>/token)")
	f.Int64Var(&o.maxUpload, "max-upload-size", 16<<30, "largest blob accepted, in bytes (0: no limit)")
	f.IntVar(&o.maxUploads, "max-concurrent-uploads", 64, "most upload requests at once; more answer 429")
	f.DurationVar(&o.gcInterval, "gc-interval", 0, "run garbage collection this often while serving (0: never; see strata gc)")
	f.DurationVar(&o.gcGrace, "gc-grace", time.Hour, "garbage collection never removes objects younger than this")
	f.DurationVar(&o.uploadMaxAge, "gc-upload-max-age", 24*time.Hour, "garbage collection removes uploads idle for longer than this")
	f.BoolVar(&o.deleteUntagged, "gc-delete-untagged", true, "garbage collection removes pushed manifests no tag reaches (after the grace period)")
	f.DurationVar(&o.readyInterval, "ready-interval", 30*time.Second, "how often /readyz re-checks that the package set evaluates (the storage check runs at most every 2s)")
	f.DurationVar(&o.failureTTL, "failed-build-ttl", 30*time.Second, "answer a build failure that would repeat (unknown, unfree or broken package, Nix build error) from memory for this long, so client retries do not rebuild; timeouts are never remembered (0: never)")
	f.StringVar(&o.cacheKeyFile, "cache-key-file", "", "serve the store paths of the images built as a Nix binary cache, signed with this secret key (Nix's NAME:BASE64; make one with nix-store --generate-binary-cache-key NAME secret.key public.key); default: no cache")
	f.IntVar(&o.cachePriority, "cache-priority", 41, "the Nix binary cache's priority in /nix-cache-info (lower is tried first; cache.nixos.org is 40)")
	f.BoolVar(&o.checkOnStart, "check-on-start", false, "at start, evaluate the packages of the images built before in the package source and log each renamed, removed or failing one, as strata check does (default false)")
	addStorageFlags(f, env, &o.s3)
	return cmd
}

func hostPlatform() string { return "linux/" + runtime.GOARCH }

var nixSystems = map[string]string{"amd64": "x86_64-linux", "arm64": "aarch64-linux"}

// parsePlatforms parses "linux/amd64,linux/arm64=cross".
func parsePlatforms(s string) ([]builder.Platform, error) {
	host := nixSystems[runtime.GOARCH]
	var out []builder.Platform
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, mode, _ := strings.Cut(item, "=")
		p, err := image.ParsePlatform(name)
		if err != nil {
			return nil, err
		}
		if p.OS != "linux" {
			return nil, fmt.Errorf("platform %s: only linux images can be built from Nix packages", name)
		}
		sys, ok := nixSystems[p.Architecture]
		if !ok {
			return nil, fmt.Errorf("platform %s: unsupported architecture; use linux/amd64 or linux/arm64", name)
		}
		if seen[p.String()] {
			return nil, fmt.Errorf("platform %s given twice", name)
		}
		seen[p.String()] = true
		if mode == "" {
			mode = "native"
			if sys != host {
				mode = "cross"
			}
		}
		var t nix.Target
		switch mode {
		case "native", "remote":
			// remote: Nix hands the build to a builder for that system.
			t = nix.Target{System: sys}
		case "cross":
			t = nix.Target{System: host, CrossSystem: sys}
		default:
			return nil, fmt.Errorf("platform %s: mode %q: use native, cross or remote", name, mode)
		}
		out = append(out, builder.Platform{Platform: p, Target: t})
	}
	if len(out) == 0 {
		return nil, errors.New("--platforms names no platform; use e.g. linux/amd64")
	}
	return out, nil
}

func runServe(ctx context.Context, env *Env, o *serveOptions) error {
	if err := checkServeFlags(env, o); err != nil {
		return err
	}
	plats, err := parsePlatforms(o.platforms)
	if err != nil {
		return fmt.Errorf("--platforms: %w", err)
	}
	store, err := openStorage(ctx, o.storage, o.storagePath, &o.s3)
	if err != nil {
		return err
	}
	met := metrics.New()
	sb, err := newServeBuilder(ctx, env, o, store, plats, met)
	if err != nil {
		return err
	}
	if o.checkOnStart {
		var recent []string
		for _, r := range sb.builds.List() {
			recent = append(recent, r.Name)
		}
		go checkOnStart(ctx, env.Log, sb.drv, store, recent, plats[0].Platform.String())
	}
	authSvc, err := serveAuth(env, o)
	if err != nil {
		return err
	}
	reg := newServeRegistry(ctx, env, o, store, sb.b, authSvc, met)
	mux, cache, err := newServeMux(env, o, store, sb, authSvc, met)
	if err != nil {
		return err
	}
	return listenAndServe(ctx, env, o, serveTop(reg, mux, cache, met))
}

// checkServeFlags rejects flag combinations strata serve cannot run with.
func checkServeFlags(env *Env, o *serveOptions) error {
	if env.Getenv("GCS_BUCKET") != "" || o.storage == "gcs" {
		return errors.New("storage backend gcs (Google Cloud Storage) is not supported; use --storage filesystem or --storage s3 (S3-compatible object storage)")
	}
	if o.compression != "gzip" && o.compression != "zstd" {
		return fmt.Errorf("--compression %q: use gzip or zstd", o.compression)
	}
	if o.pkgsPath == "" && o.channel == "" && o.pkgsRepo == "" && o.flake == "" {
		return errors.New("no package source: set --pkgs-path, --pkgs-repo, --channel or --flake (or NIXERY_PKGS_PATH, NIXERY_PKGS_REPO, NIXERY_CHANNEL)")
	}
	return nil
}

// serveBuilder is the builder of strata serve and what it was made with.
type serveBuilder struct {
	b        *builder.Builder
	drv      *nix.Driver
	builds   *web.Recent   // the builds the page lists
	cacheKey *nixcache.Key // the Nix binary cache's key; nil: no cache
}

// newServeBuilder makes the layering strategy, the Nix driver, the
// binary cache's recorder and the builder of the flags.
func newServeBuilder(ctx context.Context, env *Env, o *serveOptions, store storage.Store, plats []builder.Platform, met *metrics.Metrics) (*serveBuilder, error) {
	strat, err := loadStrategy(ctx, o.strategy, o.popularity, o.packageSet)
	if err != nil {
		return nil, err
	}
	sb := &serveBuilder{builds: web.NewRecent(50)}
	sb.drv, err = nix.New(nix.Config{
		PkgsPath: o.pkgsPath, Channel: o.channel, PkgsRepo: o.pkgsRepo, Flake: o.flake,
		Timeout: o.nixTimeout, Builders: o.builders, Log: env.Log,
	})
	if err != nil {
		return nil, err
	}
	var recorder builder.Recorder
	if o.cacheKeyFile != "" {
		if sb.cacheKey, err = nixcache.LoadKey(o.cacheKeyFile); err != nil {
			return nil, fmt.Errorf("--cache-key-file: %w", err)
		}
		recorder = &nixcache.Recorder{Store: store, Key: sb.cacheKey}
	}
	sb.b, err = builder.New(builder.Options{
		Nix: sb.drv, Store: store, Strategy: strat, MaxLayers: o.maxLayers,
		Platforms: plats, MTime: time.Unix(o.epoch, 0), Compression: compressionOf(o.compression), Log: env.Log,
		Observer: met, Builds: sb.builds, LeaseWait: 2*o.nixTimeout + 5*time.Minute, Version: Version,
		FailureTTL: failureTTL(o.failureTTL), Recorder: recorder,
	})
	if err != nil {
		return nil, err
	}
	return sb, nil
}

// serveAuth is the access control of the flags: nil when there is none.
func serveAuth(env *Env, o *serveOptions) (*auth.Service, error) {
	if o.htpasswd != "" {
		return newAuth(o)
	}
	if !o.anonymousPull {
		return nil, errors.New("--anonymous-pull=false needs --htpasswd: nobody could pull")
	}
	if o.pushPrefix != "" {
		env.Log.Warn("no --htpasswd: anyone who can reach the registry may push to " + o.pushPrefix + "/...")
	}
	return nil, nil
}

// newServeRegistry is the registry of on-demand and pushed images, with
// its periodic garbage collection started.
func newServeRegistry(ctx context.Context, env *Env, o *serveOptions, store storage.Store, b *builder.Builder, authSvc *auth.Service, met *metrics.Metrics) http.Handler {
	ropts := registry.Options{Store: store, Backend: ondemand.New(b), Log: env.Log, PushPrefix: o.pushPrefix, Auth: authSvc,
		Redirect: o.s3.redirect, MaxUploadSize: o.maxUpload, MaxConcurrentUploads: o.maxUploads, Metrics: met}
	if _, ok := env.Log.Handler().(*slog.JSONHandler); ok && env.Log.Enabled(ctx, slog.LevelInfo) {
		// The same JSON records, from the registry's fast encoder.
		ropts.AccessLog = env.Stderr
	}
	reg := registry.New(ropts)
	if o.gcInterval > 0 {
		go runPeriodicGC(ctx, env, reg.(registry.Collector), o)
	}
	return reg
}

// newServeMux is everything outside /v2: the token service, health and
// readiness, metrics and the page, and the Nix binary cache (nil when
// there is none), which the caller routes by path.
func newServeMux(env *Env, o *serveOptions, store storage.Store, sb *serveBuilder, authSvc *auth.Service, met *metrics.Metrics) (mux *http.ServeMux, cache http.Handler, err error) {
	mux = http.NewServeMux()
	if authSvc != nil {
		mux.Handle("/token", authSvc)
	}
	// /healthz is liveness: the process serves HTTP. /readyz is
	// readiness: storage takes a write and a read, and the package set
	// evaluates.
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("/readyz", metrics.NewReadiness(
		metrics.Check{Name: "storage", Run: metrics.StorageCheck(store), Timeout: 5 * time.Second, Every: 2 * time.Second},
		metrics.Check{Name: "nix", Run: func(ctx context.Context) error {
			if _, err := sb.drv.ShellPackages(ctx, ""); err != nil {
				return fmt.Errorf("the package set does not evaluate: %w", err)
			}
			return nil
		}, Timeout: 30 * time.Second, Every: o.readyInterval},
	))
	mux.Handle("/metrics", met.Handler())
	webOpts := web.Options{Builder: pageBuilds{sb.b, sb.builds}, Source: sourceDescription(o), Versioned: o.pkgsRepo != "", PushPrefix: o.pushPrefix}
	if sb.cacheKey != nil {
		if cache, err = newNixCache(store, authSvc, met, o, env.Log); err != nil {
			return nil, nil, err
		}
		webOpts.NixCacheKey = sb.cacheKey.PublicKey()
		env.Log.Info("nix binary cache", "publicKey", sb.cacheKey.PublicKey())
	}
	mux.Handle("/", web.Handler(webOpts))
	return mux, cache, nil
}

// serveTop routes a request: /v2 to the registry, which sees every /v2
// path as sent (it answers malformed ones, .. and //, with spec errors,
// where the mux would redirect); the Nix binary cache's paths to it;
// the rest to the mux, counted in the metrics.
func serveTop(reg, mux, cache http.Handler, met *metrics.Metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/") {
			reg.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		if cache != nil && nixcache.Match(r.URL.Path) {
			cache.ServeHTTP(sw, r)
		} else {
			mux.ServeHTTP(sw, r)
		}
		met.ObserveRequest(metrics.EndpointOther, r.Method, sw.code(), sw.bytes, time.Since(start))
	})
}

// listenAndServe serves top on --listen until ctx ends, then shuts down
// within 10 seconds.
func listenAndServe(ctx context.Context, env *Env, o *serveOptions, top http.Handler) error {
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (choose another address with --listen)", o.listen, err)
	}
	srv := &http.Server{
		Handler:           top,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	env.Log.Info("serving", "addr", ln.Addr().String(), "platforms", o.platforms, "storage", describeStorage(o.storage, o.storagePath, &o.s3))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// newNixCache is the Nix binary cache's handler, behind the same rule as
// a pull: open when anonymous pulls are, else for htpasswd users (Nix
// sends Basic credentials from its netrc file).
func newNixCache(store storage.Store, authSvc *auth.Service, met *metrics.Metrics, o *serveOptions, log *slog.Logger) (http.Handler, error) {
	co := nixcache.Options{Store: store, Priority: o.cachePriority, Registerer: met.Registry(), Log: log}
	if authSvc != nil {
		co.Authorize = func(w http.ResponseWriter, r *http.Request) bool {
			res := authSvc.Check(r, "nix-cache", auth.Pull)
			if res.Allowed {
				return true
			}
			if res.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="strata nix cache"`)
			}
			http.Error(w, "the Nix binary cache needs the credentials of a registry user (a netrc-file entry for this host)", res.Status)
			return false
		}
	}
	return nixcache.New(co)
}

// newAuth builds the access control of --htpasswd and the token flags.
func newAuth(o *serveOptions) (*auth.Service, error) {
	users, err := auth.LoadHtpasswd(o.htpasswd)
	if err != nil {
		return nil, fmt.Errorf("--htpasswd: %w", err)
	}
	var key []byte
	if o.tokenKey != "" {
		if key, err = os.ReadFile(o.tokenKey); err != nil {
			return nil, fmt.Errorf("--token-key: %w", err)
		}
		if len(key) < 32 {
			return nil, errors.New("--token-key: the key file must hold at least 32 bytes (e.g. head -c 32 /dev/urandom > FILE)")
		}
	}
	prefix := strings.Trim(o.pushPrefix, "/")
	return auth.New(auth.Options{
		Users: users, AnonymousPull: o.anonymousPull, Bearer: o.tokenService, Realm: o.tokenRealm, Key: key, TTL: o.tokenTTL,
		CanPush: func(repo string) bool { return prefix != "" && strings.HasPrefix(repo, prefix+"/") },
	})
}

// runPeriodicGC runs an online garbage collection every --gc-interval.
func runPeriodicGC(ctx context.Context, env *Env, c registry.Collector, o *serveOptions) {
	t := time.NewTicker(o.gcInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := c.CollectGarbage(ctx, registry.GCOptions{Grace: o.gcGrace, UploadMaxAge: o.uploadMaxAge,
			DeleteUntagged: o.deleteUntagged, Log: env.Log}); err != nil && ctx.Err() == nil {
			env.Log.Error("garbage collection failed", "error", err.Error())
		}
	}
}

// statusWriter records the status and body size of the pages outside /v2,
// for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// sourceDescription describes the package source on the landing page,
// without credentials or local paths.
func sourceDescription(o *serveOptions) string {
	switch {
	case o.pkgsRepo != "":
		repo := o.pkgsRepo
		if u, err := url.Parse(repo); err == nil && u.User != nil {
			u.User = nil
			repo = u.String()
		}
		return "git repository " + repo
	case o.channel != "":
		return "nixpkgs " + o.channel
	case o.pkgsPath != "":
		return "a local package set"
	}
	return ""
}

// pageBuilds is what the page shows of the builder: its platforms and
// the builds it told the list of recent builds.
type pageBuilds struct {
	*builder.Builder
	recent *web.Recent
}

func (p pageBuilds) Recent() *web.Recent { return p.recent }

func compressionOf(s string) layer.Compression { return layer.Compression(s) }

// failureTTL maps the flag's 0 ("never") to the builder's "never" (-1).
func failureTTL(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
