package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// CopyOptions configures Copy, Write and NewTarget.
type CopyOptions struct {
	// Jobs is the number of blobs transferred at once. Default 4.
	Jobs int
	// Insecure allows plain HTTP and unverified TLS to every registry.
	// Default false: plain HTTP only to localhost and 127.0.0.0/8.
	Insecure bool
	// Keychain supplies credentials. Default: Keychain(CredOptions{}).
	Keychain authn.Keychain
	// Progress, when set, is called with the bytes done and the total as
	// the copy goes (from several goroutines, never at once). Default: nil.
	Progress func(v1.Update)
	// Retry bounds retries of each request. Default: see RetryOptions.
	Retry RetryOptions
	// ChunkSize, when positive, uploads every blob larger than it in PATCH
	// chunks of this size. Default 0: one PATCH per blob, and 8 MiB chunks
	// (halved while refused) only after the registry answers 413.
	ChunkSize int64
	// Log receives debug lines: every HTTP request with credentials
	// redacted. Default: no logging.
	Log *slog.Logger
	// Platform picks one platform's image from a source that holds
	// several (see Copy). Default nil.
	Platform *v1.Platform
	// NoReferrers leaves the source's referrers behind. Default false:
	// SBOMs and signatures are copied with what they refer to.
	NoReferrers bool
	// DryRun reads and checks the source and the destination's name and
	// returns what would be written, writing nothing. Default false.
	DryRun bool
	// ArchiveName is the repository name of the image in a docker-archive
	// destination that names only a tag (docker-archive:FILE[:TAG]).
	// Default "image".
	ArchiveName string
}

// Result describes what was written.
type Result struct {
	// Ref is the destination written to.
	Ref string `json:"ref"`
	// Digest of the written manifest or index.
	Digest string `json:"digest"`
	// MediaType of the written manifest or index.
	MediaType string `json:"mediaType"`
	// Size of the written manifest or index in bytes.
	Size int64 `json:"size"`
	// Referrers are the digests of the referrers written with it (SBOMs,
	// signatures). Default none.
	Referrers []string `json:"referrers,omitempty"`
}

// client is what one operation shares: remote options and progress.
type client struct {
	remote   []remote.Option
	insecure bool
	prog     func(v1.Update)
	mu       sync.Mutex // serialises prog
}

func newClient(ctx context.Context, o CopyOptions) (*client, error) {
	if o.Jobs <= 0 {
		o.Jobs = 4
	}
	if o.Keychain == nil {
		o.Keychain = Keychain(CredOptions{})
	}
	c := &client{prog: o.Progress, insecure: o.Insecure}
	c.remote = []remote.Option{
		remote.WithContext(ctx),
		remote.WithJobs(o.Jobs),
		remote.WithAuthFromKeychain(o.Keychain),
		remote.WithTransport(newTransport(transportOptions{Insecure: o.Insecure, Retry: o.Retry, ChunkSize: o.ChunkSize, Log: o.Log})),
		remote.WithUserAgent("strata"),
		// Status retries are ours (they honour Retry-After); ggcr keeps its
		// whole-upload retries for failures inside an upload session.
		remote.WithRetryStatusCodes(),
	}
	return c, nil
}

// opts are the remote options with ctx.
func (c *client) opts(ctx context.Context) []remote.Option {
	return append(append([]remote.Option(nil), c.remote...), remote.WithContext(ctx))
}

// ref parses a registry reference with the client's HTTP rule.
func (c *client) ref(s string) (name.Reference, error) {
	return ParseReference(strings.TrimPrefix(s, "docker://"), c.insecure)
}

// push writes t to ref, reporting progress.
func (c *client) push(ctx context.Context, ref name.Reference, t remote.Taggable) error {
	opts := c.opts(ctx)
	var wg sync.WaitGroup
	if c.prog != nil {
		ch := make(chan v1.Update, 16)
		opts = append(opts, remote.WithProgress(ch))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range ch {
				c.mu.Lock()
				c.prog(u)
				c.mu.Unlock()
			}
		}()
	}
	err := remote.Push(ref, t, opts...)
	wg.Wait()
	return err
}

// Copy copies src to dst through the one writer (see Target), preserving
// digests: an index is copied with all its children, byte for byte, and
// the referrers of what is copied (SBOMs, signatures) come along unless
// NoReferrers. src and dst are locations as ParseLocation takes them:
// "oci:DIR[:REF]" (REF a ref.name or a digest), "docker-archive:FILE[:REF]"
// or a registry reference.
//
// An OCI layout written by strata build holds the image and its SBOM: the
// image is what is copied (under dst's tag) and the SBOM becomes its
// referrer. A source holding several images (several platforms in a
// layout, an archive or an index) needs Platform, else the error lists
// them; with Platform, the image of that platform is copied, not the index.
// Blobs already in dst's repository are skipped, blobs in another
// repository of the same registry are mounted.
func Copy(ctx context.Context, src, dst string, opts CopyOptions) (Result, error) {
	c, err := newClient(ctx, opts)
	if err != nil {
		return Result{}, err
	}
	t, err := c.target(dst, opts.ArchiveName)
	if err != nil {
		return Result{}, err
	}
	loc, err := ParseLocation(src, opts.Insecure)
	if err != nil {
		return Result{}, fmt.Errorf("source %w", err)
	}
	a, err := c.open(ctx, loc, SourceOptions{Platform: opts.Platform, NoReferrers: opts.NoReferrers})
	if err != nil {
		return Result{}, err
	}
	if tag := pinnedTag(src); loc.Kind == KindRegistry && tag != "" {
		// REPO:TAG@DIGEST: the digest is copied, and the tag must still
		// name it.
		d, _, _, err := a.describe()
		if err != nil {
			return Result{}, fmt.Errorf("read the source: %w", err)
		}
		if opts.Platform == nil {
			if err := c.checkPinned(ctx, "source "+src, loc.Reference, tag, d); err != nil {
				return Result{}, err
			}
		}
	}
	if opts.DryRun {
		d, mt, raw, err := a.describe()
		if err != nil {
			return Result{}, fmt.Errorf("read the source: %w", err)
		}
		return Result{Ref: t.String(), Digest: d.String(), MediaType: string(mt), Size: int64(len(raw)), Referrers: a.referrerDigests()}, nil
	}
	return t.Write(ctx, a)
}

// explain adds what to do next to registry errors that need the user.
func explain(err error) error {
	var te *transport.Error
	if !errors.As(err, &te) {
		return err
	}
	switch te.StatusCode {
	case 401:
		return fmt.Errorf("authentication refused: %w (check the credentials: --username with --password-stdin, $REGISTRY_TOKEN, docker/podman login, or --token-command)", err)
	case 403:
		return fmt.Errorf("access denied: %w (the credentials lack permission for this repository)", err)
	case 404:
		return fmt.Errorf("%w (check the reference exists)", err)
	case 429:
		return fmt.Errorf("%w (rate limited: try again later, or with fewer --jobs)", err)
	}
	return err
}
