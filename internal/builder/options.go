package builder

import (
	"context"
	"log/slog"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"strata/internal/closure"
	"strata/internal/layer"
	"strata/internal/layering"
	"strata/internal/nix"
	"strata/internal/storage"
)

// Nix is what the builder needs from the Nix driver.
type Nix interface {
	Revision(ctx context.Context, ref string) (string, error)
	Resolve(ctx context.Context, ref string, t nix.Target, names []string) ([]nix.Package, error)
	Build(ctx context.Context, ref string, t nix.Target, attrs []string) (*nix.Result, error)
	ShellPackages(ctx context.Context, ref string) ([]string, error)
}

// PathNix is what the builder needs from the Nix driver for requests that
// name store paths or ask for a Nix database; *nix.Driver implements it.
type PathNix interface {
	Realise(ctx context.Context, inputs, paths []string) (*nix.Result, error)
	Database(ctx context.Context, paths []string, mtime time.Time) (*nix.NixDB, error)
}

// Platform is a platform the builder produces images for, and how Nix
// builds for it.
type Platform struct {
	Platform v1.Platform
	Target   nix.Target
}

// Options configure a Builder.
type Options struct {
	Nix   Nix
	Store storage.Store
	// Strategy groups a closure into layers; default layering.Default().
	Strategy layering.Strategy
	// MaxLayers is the layer budget of an image, the customisation layer
	// included; default 100.
	MaxLayers int
	// Platforms are the configured platforms, at least one; the order does
	// not matter (indexes are sorted).
	Platforms []Platform
	// MTime is every layer entry's modification time and the config's
	// creation time; default time.Unix(1, 0) (SOURCE_DATE_EPOCH=1).
	MTime time.Time
	// Compression of layers; default gzip.
	Compression layer.Compression
	// Level is the compression level; default 6 (as gzip -6).
	Level int
	// Jobs is how many layers are packed at once; default GOMAXPROCS.
	Jobs int
	// StoreRoot is prefixed to store paths when reading them; default "/".
	StoreRoot string
	// Log receives build events; default slog.Default().
	Log *slog.Logger
	// Progress, when set, receives progress events of every build (from
	// several goroutines at once); default none.
	Progress func(Event)
	// LeaseWait bounds how long a build waits for another process's build
	// of the same image, on a Store that implements storage.Leaser (see
	// distlock.go); set it above the Nix timeout. Default 15 minutes.
	LeaseWait time.Duration
	// Observer, when set, receives build and layer events (for metrics);
	// default none.
	Observer Observer
	// Builds, when set, is told of every build that ran (an image found
	// stored is not a build), for the list of recent builds on strata
	// serve's page (web.Recent); default none.
	Builds BuildLog
	// Version is strata's version, named in each SBOM's creators as
	// "Tool: strata-<Version>" (see sbom.go); default "dev".
	Version string
	// FailureTTL is how long a build failure that repeats (an unknown,
	// unfree or broken package, a Nix build that exits with an error) is
	// answered from memory instead of building again; see failures.go.
	// Default 30 seconds; negative: never remembered.
	FailureTTL time.Duration
	// Recorder, when set, records the closure of every platform image a
	// build makes, while its layers are packed: the Nix binary cache
	// (nixcache.Recorder) serves exactly the recorded store paths. A
	// recording error fails the build. Default none.
	Recorder Recorder
}

// Recorder records the store paths of a built image.
type Recorder interface {
	Record(ctx context.Context, g *closure.Graph) error
}

// BuildLog is told of each build that ran; web.Recent is one.
type BuildLog interface {
	Add(Record)
}

// Record is one build that ran.
type Record struct {
	Name     string
	Ref      string
	Time     time.Time
	Duration time.Duration
	Digest   string
	Err      error
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
