// Package nix is the only code in strata that runs Nix. It evaluates
// package names against a package source (a local path, a git repository
// or a nixpkgs channel), builds the resolved attributes, and reads the
// closure graph of the results.
//
// Nix is driven through its stable command-line interfaces only
// (nix-instantiate --eval --json, nix-build, nix path-info --json,
// nix-store --dump-db), which work from Nix 2.8 to current Nix and Lix.
// Every process runs in its own process group with a minimal environment;
// when its context ends the group is interrupted (so that Nix stops its
// sandboxed builder and cleans up) and then killed.
package nix

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"strata/internal/closure"
)

// Config configures a Driver. Exactly one package source must be set.
type Config struct {
	// PkgsPath is a local package-set directory (NIXERY_PKGS_PATH) holding
	// a default.nix that is a function of { system, crossSystem, ... } or an
	// attribute set.
	PkgsPath string
	// Channel is a nixpkgs channel name (e.g. "nixos-unstable"), a nixpkgs
	// commit (40 hex digits) or a tarball URL (NIXERY_CHANNEL).
	Channel string
	// PkgsRepo is a git repository URL or local path (NIXERY_PKGS_REPO)
	// whose root holds the package set; the image tag selects the ref.
	PkgsRepo string
	// Flake is a flake reference ("github:NixOS/nixpkgs/nixos-unstable",
	// "path:/src", "git+https://...") whose legacyPackages.<system> (else
	// packages.<system>) is the package set. Cross targets use nixpkgs'
	// pkgsCross; the image tag is not used (pin the ref instead).
	Flake string
	// Timeout bounds each build (NIX_TIMEOUT); 0 means no limit beyond the
	// caller's context.
	Timeout time.Duration
	// Builders is passed as --option builders (remote builders); "" leaves
	// Nix's own configuration alone.
	Builders string
	// Args are extra arguments of the package-set function: a value that
	// starts with "/" is passed as a Nix path, anything else as a string.
	// The offline test set takes busyboxAmd64 and busyboxArm64; they
	// default to the static busybox binaries installed by scripts/deps.sh.
	Args map[string]string
	// UseSubstituters keeps Nix's configured binary caches. By default
	// every call passes --option substituters '' because strata's machines
	// have no binary cache.
	UseSubstituters bool
	// Log receives debug logs of every Nix call; nil discards them.
	Log *slog.Logger
}

// Target selects the platforms of a build: System is the build machine's
// Nix system ("x86_64-linux"); CrossSystem, when set, is the platform the
// packages' binaries are for ("aarch64-linux"), cross-compiled on System.
type Target struct {
	System      string
	CrossSystem string
}

// Host is the platform whose binaries the packages hold.
func (t Target) Host() string {
	if t.CrossSystem != "" {
		return t.CrossSystem
	}
	return t.System
}

// String describes the target for messages: "aarch64-linux" or
// "aarch64-linux (cross from x86_64-linux)".
func (t Target) String() string {
	switch {
	case t.CrossSystem != "" && t.System != "":
		return t.CrossSystem + " (cross from " + t.System + ")"
	case t.CrossSystem != "":
		return t.CrossSystem + " (cross)"
	case t.System != "":
		return t.System
	}
	return "the build machine's system"
}

// Package is a resolved package of the set.
type Package struct {
	// Attr is the canonical dotted attribute path, e.g.
	// "python3Packages.numpy".
	Attr string
	// Name is the derivation name ("hello-2.12.1"), Pname and Version its
	// parts when the package declares them.
	Name, Pname, Version string
	// Description and License (spdxId or short name; several joined with
	// " AND ") come from meta.
	Description, License string
	// Homepage is meta.homepage (the first one when it is a list).
	Homepage string
	// OutPath is the store path of the built output, filled by Build.
	OutPath string
}

// Result is the outcome of a build.
type Result struct {
	// Packages has one entry per built attribute, in the order given, with
	// Attr, Name and OutPath set (metadata comes from Resolve).
	Packages []Package
	// Graph is the closure of the packages' out paths, which are its
	// roots.
	Graph *closure.Graph
}

// Driver runs Nix for one package source. It is safe for concurrent use.
type Driver struct {
	cfg      Config
	log      *slog.Logger
	defArgs  map[string]string
	builds   atomic.Int64
	revMu    sync.Mutex
	revCache map[string]treeRev
	// noBuildUsers is set when strata runs as root on a machine without
	// Nix's build-users group (Debian's nix-bin, just installed): Nix would
	// refuse every build, so builds run as root, still sandboxed.
	noBuildUsers bool

	// testHookStarted, when set, is called with the pid (= process group)
	// of every Nix process started.
	testHookStarted func(name string, pid int)
}

// Default locations of the static busybox binaries of the offline set.
const (
	defaultBusyboxAmd64 = "/bin/busybox"
	defaultBusyboxArm64 = "/opt/strata/busybox-arm64/bin/busybox"
	// defaultBuildUsersGroup is the group Nix run as root builds with
	// unless its configuration says otherwise.
	defaultBuildUsersGroup = "nixbld"
)

// New checks cfg and returns a driver. It does not run Nix.
func New(cfg Config) (*Driver, error) {
	n := 0
	for _, s := range []string{cfg.PkgsPath, cfg.Channel, cfg.PkgsRepo, cfg.Flake} {
		if s != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, errors.New("nix: no package source: set a local path (NIXERY_PKGS_PATH), a git repository (NIXERY_PKGS_REPO), a nixpkgs channel (NIXERY_CHANNEL) or a flake reference")
	case n > 1:
		return nil, errors.New("nix: more than one package source: set only one of NIXERY_PKGS_PATH, NIXERY_PKGS_REPO, NIXERY_CHANNEL and a flake reference")
	}
	if cfg.PkgsPath != "" {
		abs, err := filepath.Abs(cfg.PkgsPath)
		if err != nil {
			return nil, fmt.Errorf("nix: package path %s: %w", cfg.PkgsPath, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("nix: package path: %w", err)
		}
		if fi.IsDir() {
			if _, err := os.Stat(filepath.Join(abs, "default.nix")); err != nil {
				return nil, fmt.Errorf("nix: package path %s has no default.nix: %w", abs, err)
			}
		}
		cfg.PkgsPath = abs
	}
	if cfg.Channel != "" && !validChannel(cfg.Channel) {
		return nil, fmt.Errorf("nix: channel %q: use a channel name such as nixos-unstable, a nixpkgs commit or an https:// or file:// tarball URL", cfg.Channel)
	}
	if cfg.Flake != "" && (strings.HasPrefix(cfg.Flake, "-") || strings.ContainsAny(cfg.Flake, "\x00\n\r\t ")) {
		return nil, fmt.Errorf("nix: flake reference %q is not valid; use e.g. github:NixOS/nixpkgs/nixos-unstable", cfg.Flake)
	}
	if cfg.PkgsRepo != "" && (strings.HasPrefix(cfg.PkgsRepo, "-") || strings.ContainsAny(cfg.PkgsRepo, "\x00\n")) {
		return nil, fmt.Errorf("nix: git repository %q is not a valid URL or path", cfg.PkgsRepo)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("nix: negative timeout %s", cfg.Timeout)
	}
	for k, v := range cfg.Args {
		if !validIdent(k) {
			return nil, fmt.Errorf("nix: argument name %q is not a Nix identifier", k)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("nix: argument %s holds a NUL byte", k)
		}
	}
	// The offline set's busybox binaries, passed only to a function that
	// names them: resolve symlinks so that the set imports the directory
	// that really holds the file.
	defArgs := make(map[string]string, 2)
	for k, v := range map[string]string{"busyboxAmd64": defaultBusyboxAmd64, "busyboxArm64": defaultBusyboxArm64} {
		if _, ok := cfg.Args[k]; ok {
			continue
		}
		if p, err := filepath.EvalSymlinks(v); err == nil {
			defArgs[k] = p
		}
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d := &Driver{cfg: cfg, log: log, defArgs: defArgs, revCache: make(map[string]treeRev)}
	if NoBuildUsers() {
		d.noBuildUsers = true
		log.Info("nix: no build-users group, builds run as root in the sandbox", "group", defaultBuildUsersGroup)
	}
	return d, nil
}

// NoBuildUsers reports whether Nix, run by this process, would fail for
// want of build users: it runs as root and the 'nixbld' group that Nix
// builds as by default does not exist (Debian's nix-bin as installed, with
// no nix.conf). Nix then needs build-users-group set to empty, which the
// Driver passes on every call.
func NoBuildUsers() bool {
	if os.Geteuid() != 0 {
		return false
	}
	_, err := user.LookupGroup(defaultBuildUsersGroup)
	return err != nil
}

// Builds is the number of nix-build invocations started so far.
func (d *Driver) Builds() int64 { return d.builds.Load() }
