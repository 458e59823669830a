package layer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Compression names a layer compression.
type Compression string

// Layer compressions.
const (
	// Gzip is the default: the most widely supported layer compression.
	Gzip Compression = "gzip"
	// Zstd compresses better and decompresses faster; it needs a recent
	// container runtime.
	Zstd Compression = "zstd"
)

// Default compression levels, used when Pack is given level 0.
const (
	// DefaultGzipLevel is klauspost/compress's level 6: its output is a few
	// percent larger than `pigz -6`'s and it is several times faster.
	DefaultGzipLevel = 6
	// DefaultZstdLevel is zstd's level 3 (klauspost's SpeedDefault).
	DefaultZstdLevel = 3
)

// gzipBlockSize is the size of the independently compressed blocks of the
// parallel gzip stream (each gets the previous block's last 32 KiB as a
// dictionary). The output depends on it, so changing it changes every layer
// digest; it is a constant, never derived from the machine.
const gzipBlockSize = 512 << 10

// zstdConcurrency is the zstd stream encoder's concurrency, fixed so that
// the output never depends on the machine.
const zstdConcurrency = 2

// Desc describes a packed layer blob.
type Desc struct {
	// Digest is the sha256 of the compressed blob.
	Digest v1.Hash
	// DiffID is the sha256 of the uncompressed tar.
	DiffID v1.Hash
	// Size is the size of the compressed blob in bytes.
	Size int64
	// MediaType is the OCI layer media type of the blob.
	MediaType types.MediaType
}

// MediaType returns the OCI layer media type of c.
func (c Compression) MediaType() (types.MediaType, error) {
	switch c {
	case Gzip, "":
		return types.OCILayer, nil
	case Zstd:
		return types.OCILayerZStd, nil
	}
	return "", fmt.Errorf("layer: unknown compression %q (want gzip or zstd)", string(c))
}

// Pack runs write, which produces an uncompressed tar, and streams the
// compressed result into dst, returning the blob's digest, size and media
// type and the tar's diffID, all computed in the same pass.
//
// c is Gzip (the default, also for "") or Zstd; level 0 means the default
// level of c (DefaultGzipLevel, DefaultZstdLevel), otherwise gzip takes 1-9
// and zstd 1-22 (zstd's own scale, mapped to klauspost's four levels).
// Gzip is compressed in parallel on up to GOMAXPROCS cores, in fixed-size
// blocks so that the output is the same whatever the parallelism. Memory is
// bounded by a few MiB per core, whatever the size of the layer.
//
// Pack fails when write fails, when dst fails, and when ctx is done; dst
// may then have received part of the blob.
func Pack(ctx context.Context, dst io.Writer, c Compression, level int, write func(io.Writer) error) (Desc, error) {
	mt, err := c.MediaType()
	if err != nil {
		return Desc{}, err
	}
	out := &blobWriter{w: dst, h: sha256.New()}
	zw, err := newCompressor(out, c, level)
	if err != nil {
		return Desc{}, err
	}
	diff := sha256.New()
	in := &tarSink{ctx: ctx, h: diff, w: zw, out: out}
	werr := write(in)
	// Close even after a failure: it drains the compressor's goroutines.
	cerr := zw.Close()
	switch {
	case werr != nil:
		if oerr := out.failure(); oerr != nil && errors.Is(werr, errSinkFailed) {
			return Desc{}, oerr
		}
		return Desc{}, fmt.Errorf("layer: pack: %w", werr)
	case out.failure() != nil:
		return Desc{}, out.failure()
	case cerr != nil:
		return Desc{}, fmt.Errorf("layer: pack: compress: %w", cerr)
	}
	if err := ctx.Err(); err != nil {
		return Desc{}, fmt.Errorf("layer: pack: %w", err)
	}
	return Desc{
		Digest:    sha256Hash(out.h),
		DiffID:    sha256Hash(diff),
		Size:      out.n,
		MediaType: mt,
	}, nil
}

func sha256Hash(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

func newCompressor(w io.Writer, c Compression, level int) (io.WriteCloser, error) {
	switch c {
	case Gzip, "":
		if level == 0 {
			level = DefaultGzipLevel
		}
		if level < 1 || level > 9 {
			return nil, fmt.Errorf("layer: gzip level %d out of range 1-9", level)
		}
		zw, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, fmt.Errorf("layer: gzip: %w", err)
		}
		// The number of blocks in flight only bounds parallelism and
		// memory; the output depends on the block size alone.
		if err := zw.SetConcurrency(gzipBlockSize, min(max(2*runtime.GOMAXPROCS(0), 4), 16)); err != nil {
			return nil, fmt.Errorf("layer: gzip: %w", err)
		}
		return zw, nil
	case Zstd:
		if level == 0 {
			level = DefaultZstdLevel
		}
		if level < 1 || level > 22 {
			return nil, fmt.Errorf("layer: zstd level %d out of range 1-22", level)
		}
		zw, err := zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
			zstd.WithEncoderConcurrency(zstdConcurrency))
		if err != nil {
			return nil, fmt.Errorf("layer: zstd: %w", err)
		}
		return zw, nil
	}
	return nil, fmt.Errorf("layer: unknown compression %q (want gzip or zstd)", string(c))
}

// errSinkFailed is what the compressor's input reports once the destination
// has failed; Pack then returns the destination's error.
var errSinkFailed = errors.New("destination failed")

// tarSink is the writer Pack hands to write: it hashes the tar, feeds the
// compressor, and stops when ctx is done.
type tarSink struct {
	ctx context.Context
	h   hash.Hash
	w   io.Writer
	out *blobWriter
}

func (s *tarSink) Write(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	if s.out.failed.Load() {
		return 0, errSinkFailed
	}
	s.h.Write(p)
	return s.w.Write(p)
}

// blobWriter hashes and counts the compressed bytes on their way to the
// destination. It never reports an error to the compressor (pgzip leaks
// goroutines when its destination fails); it records the first error and
// drops everything after it, and Pack returns that error.
type blobWriter struct {
	w      io.Writer
	h      hash.Hash
	n      int64
	failed atomic.Bool // set once err is
	mu     sync.Mutex
	err    error
}

func (b *blobWriter) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *blobWriter) Write(p []byte) (int, error) {
	if b.failed.Load() {
		return len(p), nil
	}
	n, err := b.w.Write(p)
	b.h.Write(p[:n])
	b.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		b.mu.Lock()
		b.err = fmt.Errorf("layer: pack: write blob: %w", err)
		b.mu.Unlock()
		b.failed.Store(true)
	}
	return len(p), nil
}
