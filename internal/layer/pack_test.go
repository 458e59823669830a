package layer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func decompress(t testing.TB, c Compression, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		r = zr
	case Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testData is a few MiB of semi-compressible bytes: several gzip blocks.
func testData(size int) []byte {
	b := make([]byte, size)
	semiCompressible(rand.New(rand.NewPCG(1, 2)), b)
	return b
}

func TestPackDigests(t *testing.T) {
	data := testData(3*gzipBlockSize + 12345)
	for _, c := range []Compression{Gzip, Zstd} {
		for _, level := range []int{0, 1, 8} {
			d, blob := packBytes(t, c, level, data)
			if got, want := d.DiffID.String(), "sha256:"+sha256Hex(data); got != want {
				t.Errorf("%s/%d: diffID %s, want %s", c, level, got, want)
			}
			if got, want := d.Digest.String(), "sha256:"+sha256Hex(blob); got != want {
				t.Errorf("%s/%d: digest %s, want %s", c, level, got, want)
			}
			if d.Size != int64(len(blob)) {
				t.Errorf("%s/%d: size %d, want %d", c, level, d.Size, len(blob))
			}
			if len(blob) >= len(data) {
				t.Errorf("%s/%d: %d bytes compressed to %d", c, level, len(data), len(blob))
			}
			if got := decompress(t, c, blob); !bytes.Equal(got, data) {
				t.Errorf("%s/%d: round trip differs", c, level)
			}
		}
	}
	if d, _ := packBytes(t, Gzip, 0, data); d.MediaType != types.OCILayer {
		t.Errorf("gzip media type %s", d.MediaType)
	}
	if d, _ := packBytes(t, Zstd, 0, data); d.MediaType != types.OCILayerZStd {
		t.Errorf("zstd media type %s", d.MediaType)
	}
	if d, _ := packBytes(t, "", 0, data); d.MediaType != types.OCILayer {
		t.Errorf("default media type %s", d.MediaType)
	}
}

func TestPackEmpty(t *testing.T) {
	for _, c := range []Compression{Gzip, Zstd} {
		d, blob := packBytes(t, c, 0, nil)
		if len(decompress(t, c, blob)) != 0 || d.Size != int64(len(blob)) {
			t.Errorf("%s: empty stream: %d bytes, desc %+v", c, len(blob), d)
		}
	}
}

// The compressed bytes depend neither on GOMAXPROCS nor on how the tar is
// cut into writes.
func TestPackDeterministic(t *testing.T) {
	data := testData(4*gzipBlockSize + 777)
	for _, c := range []Compression{Gzip, Zstd} {
		var ref []byte
		for _, procs := range []int{1, 2, 5} {
			old := runtime.GOMAXPROCS(procs)
			for _, chunk := range []int{1 << 20, 65539} {
				var out bytes.Buffer
				_, err := Pack(context.Background(), &out, c, 0, func(w io.Writer) error {
					for i := 0; i < len(data); i += chunk {
						if _, err := w.Write(data[i:min(i+chunk, len(data))]); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if ref == nil {
					ref = out.Bytes()
				} else if !bytes.Equal(out.Bytes(), ref) {
					t.Errorf("%s: GOMAXPROCS %d, writes of %d: output differs", c, procs, chunk)
				}
			}
			runtime.GOMAXPROCS(old)
		}
	}
}

type failWriter struct{ after int }

var errDisk = errors.New("disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errDisk
	}
	f.after -= len(p)
	return len(p), nil
}

func TestPackErrors(t *testing.T) {
	data := testData(4 * gzipBlockSize)
	write := func(w io.Writer) error {
		for i := 0; i < len(data); i += 1 << 16 {
			if _, err := w.Write(data[i : i+1<<16]); err != nil {
				return err
			}
		}
		return nil
	}
	for _, c := range []Compression{Gzip, Zstd} {
		if _, err := Pack(context.Background(), &failWriter{after: 1000}, c, 0, write); !errors.Is(err, errDisk) {
			t.Errorf("%s: failing destination: %v", c, err)
		}
		errWrite := errors.New("tar failed")
		if _, err := Pack(context.Background(), io.Discard, c, 0, func(io.Writer) error { return errWrite }); !errors.Is(err, errWrite) {
			t.Errorf("%s: failing write: %v", c, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Pack(ctx, io.Discard, c, 0, write); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: cancelled: %v", c, err)
		}
	}
	if _, err := Pack(context.Background(), io.Discard, "lz4", 0, write); err == nil {
		t.Error("unknown compression: no error")
	}
	if _, err := Pack(context.Background(), io.Discard, Gzip, 10, write); err == nil {
		t.Error("gzip level 10: no error")
	}
	if _, err := Pack(context.Background(), io.Discard, Zstd, 23, write); err == nil {
		t.Error("zstd level 23: no error")
	}
}

// Packing a real tar: the gzip blob decompresses back to WriteStorePaths'
// output.
func TestPackStorePaths(t *testing.T) {
	root := goldenRoot(t)
	want := writeTar(t, root, goldenPaths, Options{})
	var blob bytes.Buffer
	d, err := Pack(context.Background(), &blob, Gzip, 0, func(w io.Writer) error {
		return WriteStorePaths(context.Background(), w, goldenPaths, Options{Root: root})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(decompress(t, Gzip, blob.Bytes()), want) {
		t.Error("round trip differs")
	}
	if d.Digest.String() != goldenGzipDigest {
		t.Errorf("digest %s, want %s", d.Digest, goldenGzipDigest)
	}
}

// Failed packs leave no compressor goroutines behind.
func TestPackNoGoroutineLeak(t *testing.T) {
	data := testData(4 * gzipBlockSize)
	before := runtime.NumGoroutine()
	for range 10 {
		for _, c := range []Compression{Gzip, Zstd} {
			Pack(context.Background(), &failWriter{after: 1000}, c, 0, func(w io.Writer) error {
				_, err := w.Write(data)
				return err
			})
			Pack(context.Background(), io.Discard, c, 0, func(w io.Writer) error {
				w.Write(data[:1000])
				return errors.New("tar failed")
			})
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines: %d before, %d after", before, after)
	}
}
