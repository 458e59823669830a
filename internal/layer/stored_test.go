package layer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// storedGolden packs the golden tree into a file and returns it as a stored
// layer, with a counter of how often the blob was opened.
func storedGolden(t *testing.T, c Compression) (v1.Layer, Desc, *int) {
	t.Helper()
	root := goldenRoot(t)
	blob := filepath.Join(t.TempDir(), "blob")
	f, err := os.Create(blob)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Pack(context.Background(), f, c, 0, func(w io.Writer) error {
		return WriteStorePaths(context.Background(), w, goldenPaths, Options{Root: root})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	opens := new(int)
	l, err := NewStored(d, func() (io.ReadCloser, error) {
		*opens++
		return os.Open(blob)
	})
	if err != nil {
		t.Fatal(err)
	}
	return l, d, opens
}

func TestStoredLayer(t *testing.T) {
	for _, c := range []Compression{Gzip, Zstd} {
		l, d, opens := storedGolden(t, c)
		if dg, _ := l.Digest(); dg != d.Digest {
			t.Errorf("%s: digest %s, want %s", c, dg, d.Digest)
		}
		if di, _ := l.DiffID(); di != d.DiffID {
			t.Errorf("%s: diffID %s, want %s", c, di, d.DiffID)
		}
		if sz, _ := l.Size(); sz != d.Size {
			t.Errorf("%s: size %d, want %d", c, sz, d.Size)
		}
		if mt, _ := l.MediaType(); mt != d.MediaType {
			t.Errorf("%s: media type %s, want %s", c, mt, d.MediaType)
		}
		desc, err := partial.Descriptor(l)
		if err != nil || desc.Digest != d.Digest || desc.Size != d.Size || desc.MediaType != d.MediaType {
			t.Errorf("%s: descriptor %+v, %v", c, desc, err)
		}
		if *opens != 0 {
			t.Errorf("%s: blob opened %d times for metadata", c, *opens)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tb, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || sha256Hex(tb) != goldenTarSHA256 {
			t.Errorf("%s: uncompressed sha256 %s, %v", c, sha256Hex(tb), err)
		}
		// validate.Layer only knows gzip.
		if c != Gzip {
			continue
		}
		if err := validate.Layer(l); err != nil {
			t.Errorf("%s: validate: %v", c, err)
		}
	}
}

func TestStoredLayerSinks(t *testing.T) {
	l, d, _ := storedGolden(t, Gzip)
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate image: %v", err)
	}

	// OCI layout.
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", d.Digest.Hex)); err != nil {
		t.Errorf("layout: %v", err)
	}

	// docker-archive tarball.
	ref, err := name.ParseReference("example.com/strata/test:latest")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarball.Write(ref, img, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(d.Digest.Hex)) {
		t.Error("tarball does not mention the layer")
	}

	// A registry.
	srv := httptest.NewServer(registry.New(registry.Logger(nopLogger())))
	defer srv.Close()
	rref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/strata/test:latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(rref, img); err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(rref)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := got.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("pulled layers %d, %v", len(ls), err)
	}
	if dg, _ := ls[0].Digest(); dg != d.Digest {
		t.Errorf("pulled layer %s, want %s", dg, d.Digest)
	}
	if err := validate.Image(got); err != nil {
		t.Errorf("validate pulled image: %v", err)
	}
}

func TestStoredLayerErrors(t *testing.T) {
	_, d, _ := storedGolden(t, Gzip)
	errOpen := errors.New("no such blob")
	l, err := NewStored(d, func() (io.ReadCloser, error) { return nil, errOpen })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Compressed(); !errors.Is(err, errOpen) {
		t.Errorf("Compressed: %v", err)
	}
	open := func() (io.ReadCloser, error) { return nil, errOpen }
	for _, bad := range []Desc{{}, {Digest: d.Digest}, {Digest: d.Digest, DiffID: d.DiffID, Size: -1}} {
		if _, err := NewStored(bad, open); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	if _, err := NewStored(d, nil); err == nil {
		t.Error("nil opener: no error")
	}
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }
