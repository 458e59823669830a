package nixcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"sort"

	"github.com/klauspost/compress/zstd"
	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/nixhash"
	"golang.org/x/sync/errgroup"

	"strata/internal/closure"
	"strata/internal/storage"
)

// Recorder stores the NAR and the signed narinfo of store paths, making
// them servable by the Handler on the same storage. It is safe for
// concurrent use; recording a path twice stores the same objects again.
type Recorder struct {
	// Store is where NARs and narinfos go. Required.
	Store storage.Store
	// Key signs each narinfo; default none (unsigned narinfos, which a
	// Nix client with the default require-sigs = true refuses).
	Key *Key
	// Root is prefixed to store paths when reading them (a chroot store);
	// default "/".
	Root string
	// Jobs is how many store paths are recorded at once; default 2.
	Jobs int
	// Level is the zstd level of the NARs; default 3 (zstd's default).
	Level int
}

// Record makes every store path of g servable: for each path not recorded
// yet it writes the NAR, from the store under Root, and then the signed
// narinfo. Each NAR's hash and size are checked against the ones Nix
// registered (g's NarHash and NarSize), so a store path changed on disk
// since Nix built it is refused rather than served.
func (r *Recorder) Record(ctx context.Context, g *closure.Graph) error {
	if r.Store == nil {
		return errors.New("nixcache: Recorder needs a Store")
	}
	jobs := r.Jobs
	if jobs <= 0 {
		jobs = 2
	}
	grp, gctx := errgroup.WithContext(ctx)
	grp.SetLimit(jobs)
	for _, p := range g.Sorted() {
		n := g.Paths[p]
		grp.Go(func() error { return r.recordPath(gctx, n) })
	}
	return grp.Wait()
}

// Recorded reports whether the store path p has a narinfo.
func (r *Recorder) Recorded(ctx context.Context, p string) (bool, error) {
	h, err := StorePathHash(p)
	if err != nil {
		return false, err
	}
	return r.recorded(ctx, h)
}

func (r *Recorder) recordPath(ctx context.Context, n *closure.Path) error {
	h, err := StorePathHash(n.Path)
	if err != nil {
		return err
	}
	if done, err := r.recorded(ctx, h); done || err != nil {
		return err
	}
	root := r.Root
	if root == "" {
		root = "/"
	}
	self := &finder{needle: []byte(h)}
	return r.record(ctx, entry{
		path: n.Path, references: n.References,
		dump: func(w io.Writer) error {
			return nar.DumpPath(io.MultiWriter(w, self), filepath.Join(root, n.Path))
		},
		check: func(got *nixhash.HashWithEncoding, size int64) error { return checkRegistered(n, got, size) },
		// Nix lists a path that refers to itself among its references;
		// the closure graph leaves self out, the NAR tells.
		self: func() bool { return self.found },
	})
}

// recorded reports whether the store path hash h has a narinfo.
func (r *Recorder) recorded(ctx context.Context, h string) (bool, error) {
	if _, err := r.Store.Stat(ctx, storage.NarinfoKey(h)); err == nil {
		return true, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return false, fmt.Errorf("nixcache: %w", err)
	}
	return false, nil
}

// entry is one store path to record.
type entry struct {
	path       string
	references []string // absolute store paths, self excluded
	dump       func(io.Writer) error
	check      func(*nixhash.HashWithEncoding, int64) error // default none
	self       func() bool                                  // default false
	ca         string                                       // narinfo CA field; default none
}

// record stores e's NAR, then its signed narinfo.
func (r *Recorder) record(ctx context.Context, e entry) error {
	h, err := StorePathHash(e.path)
	if err != nil {
		return err
	}
	var refs []string
	for _, ref := range e.references {
		if _, err := StorePathHash(ref); err != nil {
			return err
		}
		refs = append(refs, path.Base(ref))
	}
	w, err := r.Store.Create(ctx)
	if err != nil {
		return fmt.Errorf("nixcache: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = w.Cancel(context.WithoutCancel(ctx))
		}
	}()
	level := r.Level
	if level == 0 {
		level = 3
	}
	fileSum := sha256.New()
	fileCount := &counter{}
	enc, err := zstd.NewWriter(io.MultiWriter(w, fileSum, fileCount),
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("nixcache: %w", err)
	}
	narSum := sha256.New()
	narCount := &counter{}
	if err := e.dump(&ctxWriter{ctx: ctx, w: io.MultiWriter(enc, narSum, narCount)}); err != nil {
		_ = enc.Close()
		return fmt.Errorf("nixcache: writing the NAR of %s: %w", e.path, err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("nixcache: compressing the NAR of %s: %w", e.path, err)
	}
	narHash, err := nixhash.NewHashWithEncoding(nixhash.SHA256, narSum.Sum(nil), nixhash.NixBase32, true)
	if err != nil {
		return err
	}
	if e.check != nil {
		if err := e.check(narHash, narCount.n); err != nil {
			return err
		}
	}
	fileDigest := fileSum.Sum(nil)
	fileHash, err := nixhash.NewHashWithEncoding(nixhash.SHA256, fileDigest, nixhash.NixBase32, true)
	if err != nil {
		return err
	}
	fileName := nixbase32.EncodeToString(fileDigest)
	if err := w.Commit(ctx, storage.NARKey(fileName)); err != nil {
		return fmt.Errorf("nixcache: storing the NAR of %s: %w", e.path, err)
	}
	committed = true

	if e.self != nil && e.self() {
		refs = append(refs, path.Base(e.path))
	}
	sort.Strings(refs)
	ni := &narinfo.NarInfo{
		StorePath:   e.path,
		URL:         "nar/" + fileName + ".nar.zst",
		Compression: "zstd",
		FileHash:    fileHash,
		FileSize:    uint64(fileCount.n),
		NarHash:     narHash,
		NarSize:     uint64(narCount.n),
		References:  refs,
		CA:          e.ca,
	}
	if r.Key != nil {
		sig, err := r.Key.secret.Sign(nil, ni.Fingerprint())
		if err != nil {
			return fmt.Errorf("nixcache: signing %s: %w", e.path, err)
		}
		ni.Signatures = []signature.Signature{sig}
	}
	if err := ni.Check(); err != nil {
		return fmt.Errorf("nixcache: narinfo of %s: %w", e.path, err)
	}
	return put(ctx, r.Store, storage.NarinfoKey(h), []byte(ni.String()))
}

// checkRegistered compares a NAR's hash and size with what Nix registered.
func checkRegistered(n *closure.Path, got *nixhash.HashWithEncoding, size int64) error {
	if n.NarSize != 0 && n.NarSize != size {
		return fmt.Errorf("nixcache: %s serialises to %d bytes, Nix registered %d: the path changed on disk; check it with nix-store --verify --check-contents", n.Path, size, n.NarSize)
	}
	if n.NarHash == "" {
		return nil
	}
	want, err := nixhash.ParseAny(n.NarHash, nil)
	if err != nil {
		return fmt.Errorf("nixcache: NAR hash %q of %s: %w", n.NarHash, n.Path, err)
	}
	if want.Algo() != nixhash.SHA256 || !bytes.Equal(want.Digest(), got.Digest()) {
		return fmt.Errorf("nixcache: %s has NAR hash %s, Nix registered %s: the path changed on disk; check it with nix-store --verify --check-contents", n.Path, got.String(), n.NarHash)
	}
	return nil
}

func put(ctx context.Context, st storage.Store, key string, data []byte) error {
	w, err := st.Create(ctx)
	if err != nil {
		return fmt.Errorf("nixcache: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		_ = w.Cancel(ctx)
		return fmt.Errorf("nixcache: %w", err)
	}
	if err := w.Commit(ctx, key); err != nil {
		return fmt.Errorf("nixcache: %w", err)
	}
	return nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// finder reports whether needle occurs in the bytes written, across
// write boundaries.
type finder struct {
	needle []byte
	tail   []byte
	found  bool
}

func (f *finder) Write(p []byte) (int, error) {
	if f.found {
		return len(p), nil
	}
	buf := append(f.tail, p...)
	if bytes.Contains(buf, f.needle) {
		f.found = true
		f.tail = nil
		return len(p), nil
	}
	keep := len(f.needle) - 1
	if len(buf) > keep {
		buf = buf[len(buf)-keep:]
	}
	f.tail = append(f.tail[:0], buf...)
	return len(p), nil
}

// ctxWriter stops a long NAR dump when ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
