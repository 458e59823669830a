package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"strata/internal/builder"
	"strata/internal/buildspec"
	"strata/internal/layer"
	"strata/internal/nix"
	"strata/internal/storage"
)

// localBuild holds the flags of the subcommands that build on this machine
// (build and publish): the package source, the local cache and the layers'
// modification time.
type localBuild struct {
	pkgsPath   string        // default NIXERY_PKGS_PATH
	channel    string        // default NIXERY_CHANNEL
	flake      string        // default none
	ref        string        // package-set revision; default latest
	cacheDir   string        // default $XDG_CACHE_HOME/strata
	epoch      int64         // default SOURCE_DATE_EPOCH, else 1
	nixTimeout time.Duration // default none
}

func (l *localBuild) addFlags(f *pflag.FlagSet, get func(string) string) {
	f.StringVar(&l.pkgsPath, "pkgs-path", get("NIXERY_PKGS_PATH"), "package set: a local directory with a default.nix (NIXERY_PKGS_PATH)")
	f.StringVar(&l.channel, "channel", get("NIXERY_CHANNEL"), "package set: a nixpkgs channel or commit (NIXERY_CHANNEL)")
	f.StringVar(&l.flake, "flake", "", "package set: a flake reference whose legacyPackages are used (default none)")
	f.StringVar(&l.ref, "ref", "", "package-set revision for versioned sources (default latest)")
	f.StringVar(&l.cacheDir, "cache-dir", defaultCacheDir(), "local cache of layers and images (a filesystem store)")
	f.Int64Var(&l.epoch, "source-date-epoch", sourceDateEpoch(get), "modification time of every file in the layers (SOURCE_DATE_EPOCH, default 1)")
	f.DurationVar(&l.nixTimeout, "nix-timeout", 0, "time limit of each Nix build (default none)")
}

// errNoSource is the error of a local build without a package set.
var errNoSource = errors.New("no package source: set --pkgs-path, --channel or --flake (or NIXERY_PKGS_PATH, NIXERY_CHANNEL)")

// hasSource reports whether a package set was given.
func (l *localBuild) hasSource() bool {
	return l.pkgsPath != "" || l.channel != "" || l.flake != ""
}

// nixConfig is the Nix driver's configuration for the flags.
func (l *localBuild) nixConfig(log *slog.Logger) nix.Config {
	return nix.Config{PkgsPath: l.pkgsPath, Channel: l.channel, Flake: l.flake, Timeout: l.nixTimeout, Log: log}
}

// sourceDateEpoch is $SOURCE_DATE_EPOCH when it is a number, else 1.
func sourceDateEpoch(get func(string) string) int64 {
	if n, err := strconv.ParseInt(get("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		return n
	}
	return 1
}

// defaultCacheDir is $XDG_CACHE_HOME/strata (or the platform's equivalent).
func defaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "strata")
	}
	return ""
}

// choosePlatforms returns the first non-empty list of platforms, else the
// build machine's.
func choosePlatforms(lists ...[]string) []string {
	for _, l := range lists {
		if len(l) > 0 {
			return l
		}
	}
	return []string{hostPlatform()}
}

// openCache opens the cache directory (--cache-dir) as a filesystem store.
func (l *localBuild) openCache() (storage.Store, error) {
	if l.cacheDir == "" {
		return nil, errors.New("no cache directory: set --cache-dir")
	}
	store, err := storage.NewFS(l.cacheDir)
	if err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	return store, nil
}

// builderOptions are the options of a local build of desc shared by build
// and publish: its layer budget and compression (default gzip), the
// platforms, --source-date-epoch, the log and progress; the caller adds
// the driver, the store and the strategy.
func (l *localBuild) builderOptions(desc *buildspec.Description, platforms []builder.Platform, log *slog.Logger, prog *progress) builder.Options {
	comp := layer.Gzip
	if desc.Compression != "" {
		comp = layer.Compression(desc.Compression)
	}
	return builder.Options{MaxLayers: desc.MaxLayers, Platforms: platforms, MTime: time.Unix(l.epoch, 0),
		Compression: comp, Log: log, Progress: prog.event}
}
