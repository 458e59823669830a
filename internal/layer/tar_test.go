package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// goldenTree is a fixed fake store: two store paths, one of them a single
// executable file, with a subdirectory, an executable, read-only and
// writable files, a relative and an absolute symlink, a hard link, an
// empty directory and a name too long for USTAR.
var goldenTree = []fsEntry{
	{path: "nix/store", dir: true},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12", dir: true, mode: 0o555},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/bin", dir: true, mode: 0o755},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/bin/hello", content: "#!/bin/sh\necho hello\n", mode: 0o755},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/bin/hi", link: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/bin/hello"},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/lib", dir: true, mode: 0o755},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/lib/libhello.so.1", content: strings.Repeat("\x7fELF library ", 300), mode: 0o644},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/lib/libhello.so", symlink: "libhello.so.1"},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/lib-old", symlink: "/nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/lib"},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/share", dir: true, mode: 0o755},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/share/empty", dir: true, mode: 0o700},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/share/doc", dir: true},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/share/doc/README", content: "hello docs\n", mode: 0o444},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/share/doc/" + strings.Repeat("long-name-", 12), content: "x", mode: 0o600},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/share/doc-a", content: "sorts after doc/ in a walk, before it by full name", mode: 0o644},
	{path: "nix/store/9z8y7x6w5v4u3t2s1r0q9p8o7n6m5l4k-greet.sh", content: "#!/bin/sh\necho greet\n", mode: 0o700},
}

const (
	// goldenTarSHA256 is the sha256 of WriteStorePaths on goldenTree.
	goldenTarSHA256 = "44d074d7aa5134ae484b9d516db5f394c5fa10bc088ab9e908c129fee095d7ee"
	// goldenGzipDigest is the digest of Pack(gzip, default level) of it.
	goldenGzipDigest = "sha256:422f27fbfca6eb77da65713f5776850c1726abc08085e0235f06de640e25cdac"
	// goldenZstdDigest is the digest of Pack(zstd, default level) of it.
	goldenZstdDigest = "sha256:91b16d8dd681d152dfee87fff2c908332aacc1bbec0e1e3c69c002ad4878d010"
)

var goldenPaths = []string{
	"/nix/store/9z8y7x6w5v4u3t2s1r0q9p8o7n6m5l4k-greet.sh",
	"/nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12",
}

func goldenRoot(t testing.TB) string {
	root := t.TempDir()
	makeTree(t, root, goldenTree, time.Date(2024, 5, 6, 7, 8, 9, 123, time.UTC))
	return root
}

func writeTar(t testing.TB, root string, paths []string, opts Options) []byte {
	t.Helper()
	opts.Root = root
	var buf bytes.Buffer
	if err := WriteStorePaths(context.Background(), &buf, paths, opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func packBytes(t testing.TB, c Compression, level int, b []byte) (Desc, []byte) {
	t.Helper()
	var out bytes.Buffer
	d, err := Pack(context.Background(), &out, c, level, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, out.Bytes()
}

func TestWriteStorePathsGolden(t *testing.T) {
	root := goldenRoot(t)
	b := writeTar(t, root, goldenPaths, Options{})
	if got := sha256Hex(b); got != goldenTarSHA256 {
		t.Errorf("tar sha256 = %s, want %s", got, goldenTarSHA256)
	}
	for _, c := range []struct {
		c    Compression
		want string
	}{{Gzip, goldenGzipDigest}, {Zstd, goldenZstdDigest}} {
		d, _ := packBytes(t, c.c, 0, b)
		if d.Digest.String() != c.want {
			t.Errorf("%s digest = %s, want %s", c.c, d.Digest, c.want)
		}
		if d.DiffID.String() != "sha256:"+goldenTarSHA256 {
			t.Errorf("%s diffID = %s, want sha256:%s", c.c, d.DiffID, goldenTarSHA256)
		}
	}
}

func TestWriteStorePathsEntries(t *testing.T) {
	root := goldenRoot(t)
	const hello = "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12"
	ents := readTar(t, writeTar(t, root, goldenPaths, Options{}))
	type want struct {
		typ      byte
		mode     int64
		linkname string
		content  string
	}
	wants := map[string]want{
		"nix/":                      {tar.TypeDir, 0o755, "", ""},
		"nix/store/":                {tar.TypeDir, 0o755, "", ""},
		hello + "/":                 {tar.TypeDir, 0o555, "", ""},
		hello + "/bin/":             {tar.TypeDir, 0o555, "", ""},
		hello + "/bin/hello":        {tar.TypeReg, 0o555, "", "#!/bin/sh\necho hello\n"},
		hello + "/bin/hi":           {tar.TypeLink, 0o555, hello + "/bin/hello", ""},
		hello + "/lib/libhello.so":  {tar.TypeSymlink, 0o777, "libhello.so.1", ""},
		hello + "/lib-old":          {tar.TypeSymlink, 0o777, "/" + hello + "/lib", ""},
		hello + "/share/empty/":     {tar.TypeDir, 0o555, "", ""},
		hello + "/share/doc/README": {tar.TypeReg, 0o444, "", "hello docs\n"},
		hello + "/share/doc-a":      {tar.TypeReg, 0o444, "", ""},
		"nix/store/9z8y7x6w5v4u3t2s1r0q9p8o7n6m5l4k-greet.sh": {tar.TypeReg, 0o555, "", "#!/bin/sh\necho greet\n"},
	}
	var names []string
	for _, e := range ents {
		h := e.hdr
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q, want 0:0 and no names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(time.Unix(1, 0)) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: times %v %v %v, want mtime 1 only", h.Name, h.ModTime, h.AccessTime, h.ChangeTime)
		}
		if strings.HasPrefix(h.Name, "/") {
			t.Errorf("%s: leading /", h.Name)
		}
		if w, ok := wants[h.Name]; ok {
			if h.Typeflag != w.typ || h.Mode != w.mode || h.Linkname != w.linkname {
				t.Errorf("%s: type %c mode %o link %q, want %c %o %q", h.Name, h.Typeflag, h.Mode, h.Linkname, w.typ, w.mode, w.linkname)
			}
			if w.content != "" && string(e.content) != w.content {
				t.Errorf("%s: content %q, want %q", h.Name, e.content, w.content)
			}
			delete(wants, h.Name)
		}
	}
	for n := range wants {
		t.Errorf("missing entry %s", n)
	}
	// Depth first, each directory's entries in byte order: doc/ and its
	// entries before doc-a, although "doc-a" < "doc/README" as strings.
	di, da := slices.Index(names, hello+"/share/doc/README"), slices.Index(names, hello+"/share/doc-a")
	if di < 0 || da < 0 || di > da {
		t.Errorf("order: doc/README at %d, doc-a at %d; names %q", di, da, names)
	}
	if names[0] != "nix/" || names[1] != "nix/store/" || names[2] != hello+"/" {
		t.Errorf("first entries %q", names[:3])
	}
}

func TestWriteStorePathsIgnoreHardLinks(t *testing.T) {
	root := goldenRoot(t)
	for _, e := range readTar(t, writeTar(t, root, goldenPaths, Options{IgnoreHardLinks: true})) {
		if e.hdr.Typeflag == tar.TypeLink {
			t.Errorf("%s: hard link with IgnoreHardLinks", e.hdr.Name)
		}
		if strings.HasSuffix(e.hdr.Name, "/bin/hi") && string(e.content) != "#!/bin/sh\necho hello\n" {
			t.Errorf("bin/hi content %q", e.content)
		}
	}
}

// The tar depends neither on the order files were created in, nor on their
// mtimes, nor on their permission bits beyond "executable or not".
func TestWriteStorePathsIndependentOfDisk(t *testing.T) {
	want := writeTar(t, goldenRoot(t), goldenPaths, Options{})

	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	// Same tree, created in another order (parents before children), with
	// other permissions and mtimes.
	var rev []fsEntry
	for _, e := range goldenTree {
		switch {
		case e.mode == 0o755 && !e.dir:
			e.mode = 0o711
		case e.mode == 0o644:
			e.mode = 0o600
		case e.mode == 0o444:
			e.mode = 0o640
		}
		rev = append(rev, e)
	}
	slices.SortStableFunc(rev, func(a, b fsEntry) int {
		// Deeper first would break parents; reverse within a depth.
		da, db := strings.Count(a.path, "/"), strings.Count(b.path, "/")
		if da != db {
			return da - db
		}
		return strings.Compare(b.path, a.path)
	})
	// A hard link needs its target first.
	slices.SortStableFunc(rev, func(a, b fsEntry) int {
		if a.link != "" && b.path == a.link {
			return 1
		}
		if b.link != "" && a.path == b.link {
			return -1
		}
		return 0
	})
	root := t.TempDir()
	makeTree(t, root, rev, time.Unix(1700000000, 0))
	got := writeTar(t, root, []string{goldenPaths[1], goldenPaths[0], goldenPaths[1]}, Options{})
	if !bytes.Equal(got, want) {
		t.Errorf("tar differs: %s vs %s", sha256Hex(got), sha256Hex(want))
	}
}

func TestWriteStorePathsMTime(t *testing.T) {
	root := goldenRoot(t)
	mt := time.Unix(1700000000, 999)
	for _, e := range readTar(t, writeTar(t, root, goldenPaths, Options{MTime: mt})) {
		if !e.hdr.ModTime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s: mtime %v", e.hdr.Name, e.hdr.ModTime)
		}
	}
}

func TestWriteStorePathsErrors(t *testing.T) {
	root := goldenRoot(t)
	ctx := context.Background()
	for _, p := range []string{"/usr/bin", "/nix/store", "/nix/store/abc/bin", "nix/store/abc", "/nix/store/.."} {
		if err := WriteStorePaths(ctx, io.Discard, []string{p}, Options{Root: root}); err == nil {
			t.Errorf("%s: no error", p)
		}
	}
	if err := WriteStorePaths(ctx, io.Discard, []string{"/nix/store/missing"}, Options{Root: root}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing path: %v", err)
	}
	fifo := filepath.Join(root, "nix/store/fifo-thing")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteStorePaths(ctx, io.Discard, []string{"/nix/store/fifo-thing"}, Options{Root: root}); err == nil {
		t.Error("fifo: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := WriteStorePaths(cctx, io.Discard, goldenPaths, Options{Root: root}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
