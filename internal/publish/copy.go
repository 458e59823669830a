package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// CopyOptions configures Copy.
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
}

// Result describes what was pushed.
type Result struct {
	// Ref is the destination reference pushed to.
	Ref string `json:"ref"`
	// Digest of the pushed manifest or index.
	Digest string `json:"digest"`
	// MediaType of the pushed manifest or index.
	MediaType string `json:"mediaType"`
	// Size of the pushed manifest or index in bytes.
	Size int64 `json:"size"`
}

// client is what one operation shares: remote options and name options.
type client struct {
	remote []remote.Option
	names  []name.Option
	prog   func(v1.Update)
	mu     sync.Mutex // serialises prog
}

func newClient(ctx context.Context, jobs int, insecure bool, kc authn.Keychain, retry RetryOptions, chunk int64, log *slog.Logger, prog func(v1.Update)) (*client, error) {
	if jobs <= 0 {
		jobs = 4
	}
	if kc == nil {
		kc = Keychain(CredOptions{})
	}
	c := &client{prog: prog}
	c.remote = []remote.Option{
		remote.WithContext(ctx),
		remote.WithJobs(jobs),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(newTransport(transportOptions{Insecure: insecure, Retry: retry, ChunkSize: chunk, Log: log})),
		remote.WithUserAgent("strata"),
		// Status retries are ours (they honour Retry-After); ggcr keeps its
		// whole-upload retries for failures inside an upload session.
		remote.WithRetryStatusCodes(),
	}
	c.names = []name.Option{name.WeakValidation}
	if insecure {
		c.names = append(c.names, name.Insecure)
	}
	return c, nil
}

// push writes t to ref, reporting progress.
func (c *client) push(ctx context.Context, ref name.Reference, t remote.Taggable) error {
	opts := append([]remote.Option(nil), c.remote...)
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
	err := remote.Push(ref, t, append(opts, remote.WithContext(ctx))...)
	wg.Wait()
	return err
}

// artifact is a source: an image or an index.
type artifact struct {
	img v1.Image
	idx v1.ImageIndex
}

func (a artifact) taggable() remote.Taggable {
	if a.idx != nil {
		return a.idx
	}
	return a.img
}

func (a artifact) describe() (v1.Hash, types.MediaType, int64, error) {
	var (
		d   v1.Hash
		mt  types.MediaType
		raw []byte
		err error
	)
	if a.idx != nil {
		if d, err = a.idx.Digest(); err == nil {
			if mt, err = a.idx.MediaType(); err == nil {
				raw, err = a.idx.RawManifest()
			}
		}
	} else {
		if d, err = a.img.Digest(); err == nil {
			if mt, err = a.img.MediaType(); err == nil {
				raw, err = a.img.RawManifest()
			}
		}
	}
	return d, mt, int64(len(raw)), err
}

// Copy copies src to the registry reference dst, preserving digests: an
// index is copied with all its children, byte for byte. src is "oci:DIR" (an
// OCI layout; "oci:DIR:REF" picks the manifest whose
// org.opencontainers.image.ref.name or digest is REF; a layout holding
// several manifests is pushed as the index it is), "docker-archive:FILE"
// ("docker-archive:FILE:REPO:TAG" picks one image of several) or a registry
// reference. Blobs already in dst's repository are skipped, blobs in another
// repository of the same registry are mounted.
func Copy(ctx context.Context, src, dst string, opts CopyOptions) (Result, error) {
	c, err := newClient(ctx, opts.Jobs, opts.Insecure, opts.Keychain, opts.Retry, opts.ChunkSize, opts.Log, opts.Progress)
	if err != nil {
		return Result{}, err
	}
	dstRef, err := name.ParseReference(dst, c.names...)
	if err != nil {
		return Result{}, fmt.Errorf("destination %q: %w (want REGISTRY/REPOSITORY[:TAG|@DIGEST])", dst, err)
	}
	a, err := c.open(ctx, src)
	if err != nil {
		return Result{}, err
	}
	d, mt, size, err := a.describe()
	if err != nil {
		return Result{}, fmt.Errorf("read source %s: %w", src, err)
	}
	if dg, ok := dstRef.(name.Digest); ok && dg.DigestStr() != d.String() {
		return Result{}, fmt.Errorf("destination digest %s differs from the source's %s: name the destination by tag, or by the source's digest", dg.DigestStr(), d)
	}
	if err := c.push(ctx, dstRef, a.taggable()); err != nil {
		return Result{}, fmt.Errorf("push %s: %w", dstRef, explain(err))
	}
	return Result{Ref: dstRef.String(), Digest: d.String(), MediaType: string(mt), Size: size}, nil
}

// open resolves a source string.
func (c *client) open(ctx context.Context, src string) (artifact, error) {
	switch {
	case strings.HasPrefix(src, "oci:"):
		return openLayout(strings.TrimPrefix(src, "oci:"))
	case strings.HasPrefix(src, "docker-archive:"):
		return openArchive(strings.TrimPrefix(src, "docker-archive:"))
	case strings.HasPrefix(src, "docker://"):
		src = strings.TrimPrefix(src, "docker://")
	}
	ref, err := name.ParseReference(src, c.names...)
	if err != nil {
		return artifact{}, fmt.Errorf("source %q: %w (want oci:DIR, docker-archive:FILE or REGISTRY/REPOSITORY[:TAG|@DIGEST])", src, err)
	}
	return c.openRemote(ctx, ref)
}

func (c *client) openRemote(ctx context.Context, ref name.Reference) (artifact, error) {
	desc, err := remote.Get(ref, append(c.remote, remote.WithContext(ctx))...)
	if err != nil {
		return artifact{}, fmt.Errorf("fetch %s: %w", ref, explain(err))
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return artifact{}, fmt.Errorf("read index %s: %w", ref, err)
		}
		return artifact{idx: idx}, nil
	}
	if desc.MediaType.IsSchema1() {
		return artifact{}, fmt.Errorf("%s is a Docker schema 1 manifest, which strata does not copy: convert it with a newer client first", ref)
	}
	img, err := desc.Image()
	if err != nil {
		return artifact{}, fmt.Errorf("read image %s: %w", ref, err)
	}
	return artifact{img: img}, nil
}

// splitLocal splits "PATH[:REF]" where PATH exists on disk.
func splitLocal(s string) (path, ref string) {
	if _, err := os.Stat(s); err == nil {
		return s, ""
	}
	if i := strings.Index(s, ":"); i > 0 {
		if _, err := os.Stat(s[:i]); err == nil {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func openLayout(spec string) (artifact, error) {
	dir, ref := splitLocal(spec)
	p, err := layout.FromPath(dir)
	if err != nil {
		return artifact{}, fmt.Errorf("open OCI layout %s: %w (want a directory with index.json and oci-layout)", dir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return artifact{}, fmt.Errorf("read OCI layout %s: %w", dir, err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		return artifact{}, fmt.Errorf("read %s/index.json: %w", dir, err)
	}
	var pick []v1.Descriptor
	for _, d := range im.Manifests {
		if ref == "" || d.Annotations["org.opencontainers.image.ref.name"] == ref || d.Digest.String() == ref {
			pick = append(pick, d)
		}
	}
	switch {
	case len(pick) == 0 && ref != "":
		return artifact{}, fmt.Errorf("OCI layout %s has no manifest named %q", dir, ref)
	case len(pick) == 0:
		return artifact{}, fmt.Errorf("OCI layout %s is empty", dir)
	case len(pick) > 1 && ref != "":
		return artifact{}, fmt.Errorf("OCI layout %s has %d manifests named %q: name one by digest (oci:%s:sha256:...)", dir, len(pick), ref, dir)
	case len(pick) > 1:
		return artifact{idx: top}, nil
	}
	d := pick[0]
	if d.MediaType.IsIndex() {
		idx, err := top.ImageIndex(d.Digest)
		if err != nil {
			return artifact{}, fmt.Errorf("read index %s in %s: %w", d.Digest, dir, err)
		}
		return artifact{idx: idx}, nil
	}
	img, err := top.Image(d.Digest)
	if err != nil {
		return artifact{}, fmt.Errorf("read image %s in %s: %w", d.Digest, dir, err)
	}
	return artifact{img: img}, nil
}

func openArchive(spec string) (artifact, error) {
	file, ref := splitLocal(spec)
	var tag *name.Tag
	if ref != "" {
		t, err := name.NewTag(ref)
		if err != nil {
			return artifact{}, fmt.Errorf("docker-archive %s: image %q: %w", file, ref, err)
		}
		tag = &t
	}
	img, err := tarball.ImageFromPath(file, tag)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return artifact{}, fmt.Errorf("docker-archive %s: %w", file, err)
		}
		return artifact{}, fmt.Errorf("read docker-archive %s: %w (with several images, name one: docker-archive:FILE:REPO:TAG)", file, err)
	}
	return artifact{img: img}, nil
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
