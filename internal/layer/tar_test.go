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
// independent copy of a file (written as a hard link, like the hard link),
// a copy with another mode (written in full), an empty directory and a name
// too long for USTAR.
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
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/share/doc/README.copy", content: "hello docs\n", mode: 0o644},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/share/doc/README.exec", content: "hello docs\n", mode: 0o755},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/share/doc/" + strings.Repeat("long-name-", 12), content: "x", mode: 0o600},
	{path: "nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-hello-2.12/share/doc-a", content: "sorts after doc/ in a walk, before it by full name", mode: 0o644},
	{path: "nix/store/9z8y7x6w5v4u3t2s1r0q9p8o7n6m5l4k-greet.sh", content: "#!/bin/sh\necho greet\n", mode: 0o700},
}

const (
	// goldenTarSHA256 is the sha256 of WriteStorePaths on goldenTree.
	goldenTarSHA256 = "d7e654a3439cdade901802bca2c4cf8e2de14eadbe4401586dc70fccd93001d6"
	// goldenGzipDigest is the digest of Pack(gzip, default level) of it. It
	// moves with the deflate encoder: a klauspost/compress upgrade changes it.
	goldenGzipDigest = "sha256:6c9c474fce03894aa7c81baa6f30e2a1b6a64280caf29c5ab60b0f08e9c01871"
	// goldenZstdDigest is the digest of Pack(zstd, default level) of it.
	goldenZstdDigest = "sha256:5d4a292f02c28e8ebf84a29776c62987b2aafa43215978acafebf120d8139cee"
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
		"nix/":                           {tar.TypeDir, 0o755, "", ""},
		"nix/store/":                     {tar.TypeDir, 0o755, "", ""},
		hello + "/":                      {tar.TypeDir, 0o555, "", ""},
		hello + "/bin/":                  {tar.TypeDir, 0o555, "", ""},
		hello + "/bin/hello":             {tar.TypeReg, 0o555, "", "#!/bin/sh\necho hello\n"},
		hello + "/bin/hi":                {tar.TypeLink, 0o555, hello + "/bin/hello", ""},
		hello + "/lib/libhello.so":       {tar.TypeSymlink, 0o777, "libhello.so.1", ""},
		hello + "/lib-old":               {tar.TypeSymlink, 0o777, "/" + hello + "/lib", ""},
		hello + "/share/empty/":          {tar.TypeDir, 0o555, "", ""},
		hello + "/share/doc/README":      {tar.TypeReg, 0o444, "", "hello docs\n"},
		hello + "/share/doc/README.copy": {tar.TypeLink, 0o444, hello + "/share/doc/README", ""},
		hello + "/share/doc/README.exec": {tar.TypeReg, 0o555, "", "hello docs\n"},
		hello + "/share/doc-a":           {tar.TypeReg, 0o444, "", ""},
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

// Hard links depend on content and normalised mode only: the same store
// with identical files hard-linked on disk or as independent copies gives
// the same tar, files of equal content but other modes and files of equal
// size but other content are written in full, and so are empty files.
func TestWriteStorePathsLinksByContent(t *testing.T) {
	const (
		a = "nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"
		b = "nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b"
	)
	same := "identical content\n"
	other := "differing content\n" // same size as same
	big := strings.Repeat("big file, larger than the copy buffer\n", 3<<20/38)
	bigOther := big[:len(big)-1] + "!"
	tree := func(linked bool) []fsEntry {
		copyOf := func(path, target, content string, mode os.FileMode) fsEntry {
			if linked {
				return fsEntry{path: path, link: target}
			}
			return fsEntry{path: path, content: content, mode: mode}
		}
		return []fsEntry{
			{path: "nix/store", dir: true},
			{path: a, dir: true},
			{path: a + "/bin", dir: true},
			{path: a + "/bin/run", content: same, mode: 0o755},
			copyOf(a+"/bin/run2", a+"/bin/run", same, 0o711),
			{path: a + "/doc", dir: true},
			{path: a + "/doc/one", content: same, mode: 0o444},
			copyOf(a+"/doc/two", a+"/doc/one", same, 0o644),
			{path: a + "/doc/zother", content: other, mode: 0o444},
			{path: a + "/doc/big1", content: big, mode: 0o444},
			copyOf(a+"/doc/big2", a+"/doc/big1", big, 0o600),
			{path: a + "/doc/big3", content: bigOther, mode: 0o444},
			{path: a + "/empty1", content: "", mode: 0o444},
			copyOf(a+"/empty2", a+"/empty1", "", 0o444),
			{path: b, dir: true},
			copyOf(b+"/same", a+"/doc/one", same, 0o444),
		}
	}
	paths := []string{"/" + b, "/" + a}
	rootCopies, rootLinked := t.TempDir(), t.TempDir()
	makeTree(t, rootCopies, tree(false), time.Unix(1700000000, 0))
	makeTree(t, rootLinked, tree(true), time.Unix(1600000000, 0))
	copies := writeTar(t, rootCopies, paths, Options{})
	linked := writeTar(t, rootLinked, paths, Options{})
	if !bytes.Equal(copies, linked) {
		t.Fatalf("tar with copies %s, with hard links %s", sha256Hex(copies), sha256Hex(linked))
	}

	type want struct {
		typ      byte
		mode     int64
		linkname string
		content  string
	}
	wants := map[string]want{
		a + "/bin/run":    {tar.TypeReg, 0o555, "", same},
		a + "/bin/run2":   {tar.TypeLink, 0o555, a + "/bin/run", ""},
		a + "/doc/one":    {tar.TypeReg, 0o444, "", same}, // not a link to bin/run: other mode
		a + "/doc/two":    {tar.TypeLink, 0o444, a + "/doc/one", ""},
		a + "/doc/zother": {tar.TypeReg, 0o444, "", other},
		a + "/doc/big1":   {tar.TypeReg, 0o444, "", big},
		a + "/doc/big2":   {tar.TypeLink, 0o444, a + "/doc/big1", ""},
		a + "/doc/big3":   {tar.TypeReg, 0o444, "", bigOther},
		a + "/empty1":     {tar.TypeReg, 0o444, "", ""},
		a + "/empty2":     {tar.TypeReg, 0o444, "", ""},
		b + "/same":       {tar.TypeLink, 0o444, a + "/doc/one", ""}, // across store paths
	}
	for _, e := range readTar(t, copies) {
		h := e.hdr
		w, ok := wants[h.Name]
		if !ok {
			continue
		}
		delete(wants, h.Name)
		if h.Typeflag != w.typ || h.Mode != w.mode || h.Linkname != w.linkname {
			t.Errorf("%s: type %c mode %o link %q, want %c %o %q", h.Name, h.Typeflag, h.Mode, h.Linkname, w.typ, w.mode, w.linkname)
		}
		if h.Typeflag == tar.TypeReg && string(e.content) != w.content {
			t.Errorf("%s: content of %d bytes differs", h.Name, len(e.content))
		}
	}
	for n := range wants {
		t.Errorf("missing entry %s", n)
	}

	// IgnoreHardLinks: every file in full, whatever the disk.
	copies = writeTar(t, rootCopies, paths, Options{IgnoreHardLinks: true})
	linked = writeTar(t, rootLinked, paths, Options{IgnoreHardLinks: true})
	if !bytes.Equal(copies, linked) {
		t.Errorf("IgnoreHardLinks: tar with copies %s, with hard links %s", sha256Hex(copies), sha256Hex(linked))
	}
	for _, e := range readTar(t, linked) {
		if e.hdr.Typeflag == tar.TypeLink {
			t.Errorf("%s: hard link with IgnoreHardLinks", e.hdr.Name)
		}
	}
}
