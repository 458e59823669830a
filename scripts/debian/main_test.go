package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

const list = `Package: app
Version: 1.0-1
Architecture: amd64
Pre-Depends: libc6 (>= 2.34)
Depends: libfoo | libbar, virtual-mta, dpkg, perl | libperl-alt
Recommends: ca-certificates, huge-docs
Filename: pool/main/a/app/app_1.0-1_amd64.deb
SHA256: 00

Package: libc6
Version: 2.36-9
Architecture: amd64
Depends: libgcc-s1
Filename: pool/main/g/glibc/libc6_2.36-9_amd64.deb
SHA256: 01

Package: libc6
Version: 2.36-9+deb12u14
Architecture: amd64
Depends: libgcc-s1
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb
SHA256: 02

Package: libgcc-s1
Version: 12.2.0-14
Architecture: amd64
Depends: libc6 (>= 2.35)
Filename: pool/main/g/gcc/libgcc-s1_12.2.0-14_amd64.deb
SHA256: 03

Package: libfoo
Version: 2:1.0
Architecture: amd64
Depends: libc6
Filename: pool/main/f/foo/libfoo_1.0_amd64.deb
SHA256: 04

Package: libbar
Version: 1.0
Architecture: amd64
Filename: pool/main/b/bar/libbar_1.0_amd64.deb
SHA256: 05

Package: postfix
Version: 3.7
Architecture: amd64
Provides: virtual-mta, mail-transport-agent
Filename: pool/main/p/postfix/postfix_3.7_amd64.deb
SHA256: 06

Package: ca-certificates
Version: 20230311
Architecture: all
Filename: pool/main/c/ca/ca-certificates_20230311_all.deb
SHA256: 07

Package: py3
Version: 3.11
Architecture: amd64
Depends: libpy3-stdlib
Filename: pool/main/p/py/py3.deb
SHA256: 08

Package: libpy3-stdlib
Version: 3.11
Architecture: amd64
Depends: libc6
Filename: pool/main/p/py/libpy3-stdlib.deb
SHA256: 09
`

func testIndex(t *testing.T) *index {
	ix := &index{arch: "amd64", pkgs: map[string]*pkg{}, provides: map[string][]*pkg{}}
	if err := parseList(strings.NewReader(list), ix); err != nil {
		t.Fatal(err)
	}
	ix.provides["virtual-mta"] = []*pkg{ix.pkgs["postfix"]}
	return ix
}

func testConfig() config {
	return config{
		exclude:    set([]string{"dpkg", "perl"}),
		recommends: set([]string{"ca-certificates"}),
	}
}

func TestResolve(t *testing.T) {
	ix := testIndex(t)
	if v := ix.pkgs["libc6"].Version; v != "2.36-9+deb12u14" {
		t.Errorf("libc6 %s: want the newest version", v)
	}
	ps, err := resolve(ix, []string{"app"}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	// libfoo: the first alternative; postfix: provides virtual-mta; dpkg
	// and the perl group: excluded; ca-certificates: a followed Recommends,
	// huge-docs not.
	if got, want := strings.Join(names, " "), "app ca-certificates libc6 libfoo libgcc-s1 postfix"; got != want {
		t.Errorf("closure %q, want %q", got, want)
	}
	if _, err := resolve(ix, []string{"nosuch"}, testConfig()); err == nil || !strings.Contains(err.Error(), `unknown package "nosuch"`) {
		t.Errorf("unknown package: %v", err)
	}
}

func TestGroups(t *testing.T) {
	ix := testIndex(t)
	c := testConfig()
	c.merges = []merge{{name: "python", re: mustRE(t, "(lib)?py3(-stdlib)?")}}
	ps, err := resolve(ix, []string{"app", "py3"}, c)
	if err != nil {
		t.Fatal(err)
	}
	gs, byName, err := makeGroups(ps, ix, c)
	if err != nil {
		t.Fatal(err)
	}
	if byName["libc6"] != byName["libgcc-s1"] || byName["libc6"].Name != "libc6" {
		t.Errorf("the libc6/libgcc-s1 cycle is not one store path: %v %v", byName["libc6"], byName["libgcc-s1"])
	}
	if byName["py3"] != byName["libpy3-stdlib"] || byName["py3"].Name != "python" {
		t.Errorf("the merge: %v %v", byName["py3"], byName["libpy3-stdlib"])
	}
	var deps []string
	for _, d := range byName["app"].deps {
		deps = append(deps, d.Name)
	}
	if got := strings.Join(deps, " "); got != "ca-certificates libc6 libfoo postfix" {
		t.Errorf("app's store path refers to %q", got)
	}
	if len(gs) != 6 {
		t.Errorf("%d store paths, want 6", len(gs))
	}
}

func mustRE(t *testing.T, s string) *regexp.Regexp {
	re, err := regexp.Compile("^(" + s + ")$")
	if err != nil {
		t.Fatal(err)
	}
	return re
}

// The NAR hash is Nix's: nix-hash computes the same for a tree with a
// directory, an executable, a symlink and an empty file.
func TestNarHashMatchesNix(t *testing.T) {
	nixHash, err := exec.LookPath("nix-hash")
	if err != nil {
		t.Fatal("nix-hash is not installed: run scripts/deps.sh")
	}
	dir := filepath.Join(t.TempDir(), "tree")
	for p, c := range map[string]string{"bin/tool": "#!/bin/sh\necho hi\n", "share/doc/README": "seven b", "share/empty": ""} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "bin/tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../share/doc/README", filepath.Join(dir, "bin/readme")); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if err := nar(h, dir); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nixHash, "--type", "sha256", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), strings.TrimSpace(string(out)); got != want {
		t.Errorf("nar hash %s, nix-hash %s", got, want)
	}
}

// unpackTar merges /usr into /, re-points symlinks, makes hard links
// symlinks and leaves out documentation but copyright files.
func TestUnpackTar(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body string) {
		t.Helper()
		h.Size = int64(len(body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)[:h.Size]); err != nil {
			t.Fatal(err)
		}
	}
	dir := func(n string) { add(&tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755}, "") }
	file := func(n, body string, mode int64) { add(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: mode}, body) }
	link := func(n, target string, typ byte) { add(&tar.Header{Name: n, Typeflag: typ, Linkname: target}, "") }
	dir("./")
	dir("./usr/")
	dir("./usr/bin/")
	dir("./usr/lib/")
	dir("./usr/lib/x86_64-linux-gnu/")
	dir("./lib64/")
	dir("./etc/")
	dir("./usr/share/")
	dir("./usr/share/doc/")
	dir("./usr/share/doc/tool/")
	dir("./usr/share/man/")
	dir("./usr/share/man/man1/")
	file("./usr/lib/x86_64-linux-gnu/ld.so.2", "ld", 0o755)
	link("./lib64/ld.so.2", "/usr/lib/x86_64-linux-gnu/ld.so.2", tar.TypeSymlink)
	file("./usr/bin/tool", "tool", 0o755)
	link("./usr/bin/tool2", "./usr/bin/tool", tar.TypeLink)
	link("./usr/bin/conf", "../../etc/conf", tar.TypeSymlink)
	file("./etc/conf", "c", 0o644)
	file("./usr/share/doc/tool/copyright", "GPL", 0o644)
	file("./usr/share/doc/tool/changelog.gz", "x", 0o644)
	file("./usr/share/man/man1/tool.1.gz", "x", 0o644)
	link("./usr/share/doc/other", "tool", tar.TypeSymlink)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "tree")
	if err := unpackTar(&buf, dst); err != nil {
		t.Fatal(err)
	}
	for link, want := range map[string]string{
		"lib64/ld.so.2":   "../lib/x86_64-linux-gnu/ld.so.2",
		"bin/tool2":       "tool",
		"bin/conf":        "../etc/conf",
		"share/doc/other": "tool",
	} {
		got, err := os.Readlink(filepath.Join(dst, link))
		if err != nil || got != want {
			t.Errorf("%s → %q (%v), want %q", link, got, err, want)
		}
		if _, err := os.Stat(filepath.Join(dst, link)); err != nil {
			t.Errorf("%s dangles: %v", link, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "bin/tool")); err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("bin/tool: %v %v, want an executable", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "share/doc/tool/copyright")); err != nil || string(b) != "GPL" {
		t.Errorf("the copyright file: %q %v", b, err)
	}
	for _, gone := range []string{"usr", "share/man", "share/doc/tool/changelog.gz"} {
		if _, err := os.Lstat(filepath.Join(dst, gone)); err == nil {
			t.Errorf("%s is still there", gone)
		}
	}
}

// The same file under /X and /usr/X is an error, not a silent overwrite.
func TestUnpackTarUsrClash(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range []string{"./bin/sh", "./usr/bin/sh"} {
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	err := unpackTar(&buf, filepath.Join(t.TempDir(), "tree"))
	if err == nil || !strings.Contains(err.Error(), "are both in the package") {
		t.Fatalf("error %v, want a clash of /bin/sh and /usr/bin/sh", err)
	}
}

// A .deb whose SHA256 is not the Packages list's is refused and removed,
// and nothing is unpacked: the next run downloads it anew.
func TestChecksumMismatch(t *testing.T) {
	c := config{out: t.TempDir()}
	p := &pkg{Name: "app", Version: "1.0", Arch: "amd64", Filename: "pool/main/a/app/app_1.0_amd64.deb",
		SHA256: strings.Repeat("ab", 32)}
	if err := os.MkdirAll(filepath.Join(c.out, "debs"), 0o755); err != nil {
		t.Fatal(err)
	}
	deb := debPath(c, p)
	if err := os.WriteFile(deb, []byte("not the package"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := unpack(c, p)
	if err == nil || !strings.Contains(err.Error(), "SHA256") || !strings.Contains(err.Error(), "the Packages list says "+p.SHA256) {
		t.Fatalf("error %v, want a checksum mismatch", err)
	}
	if _, err := os.Stat(deb); !os.IsNotExist(err) {
		t.Errorf("the bad .deb is still there: %v", err)
	}
	if _, err := os.Stat(treeDir(c, p)); !os.IsNotExist(err) {
		t.Errorf("a tree was unpacked: %v", err)
	}
}

// A download whose SHA256 is not the Packages list's is refused at once
// (no retry), and neither the .deb nor a partial file is left.
func TestFetchChecksumMismatch(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		io.WriteString(w, "not the package")
	}))
	defer srv.Close()
	c := config{out: t.TempDir()}
	p := &pkg{Name: "app", Version: "1.0", Arch: "amd64", Filename: "pool/main/a/app/app_1.0_amd64.deb",
		SHA256: strings.Repeat("ab", 32)}
	partial := filepath.Join(c.out, "debs", ".partial")
	if err := os.MkdirAll(partial, 0o755); err != nil {
		t.Fatal(err)
	}
	err := fetchDeb(c, partial, srv.URL+"/app.deb", p)
	if err == nil || !strings.Contains(err.Error(), "the Packages list says "+p.SHA256) {
		t.Fatalf("error %v, want a checksum mismatch", err)
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("%d GETs, want 1: a mismatch is not retried", n)
	}
	for _, d := range []string{partial, filepath.Join(c.out, "debs")} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if !e.IsDir() {
				t.Errorf("%s left in %s", e.Name(), d)
			}
		}
	}
}

// A kept tree of another treeFormat is not used: the package is unpacked
// again (here its .deb is missing, so that fails), so the store paths of
// a kept set are those of a fresh one.
func TestStaleTreeFormat(t *testing.T) {
	c := config{out: t.TempDir()}
	p := &pkg{Name: "app", Version: "1.0", Arch: "amd64", Filename: "pool/main/a/app/app_1.0_amd64.deb",
		SHA256: strings.Repeat("cd", 32)}
	dir := treeDir(c, p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(format int) {
		t.Helper()
		b := []byte(`{"format": ` + strconv.Itoa(format) + `, "narHash": "00"}`)
		if err := os.WriteFile(filepath.Join(dir, "info.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(treeFormat - 1)
	if readTree(c, p) != nil {
		t.Fatal("a tree of an older format was kept")
	}
	if _, err := unpack(c, p); err == nil {
		t.Fatal("unpack used the stale tree")
	}
	write(treeFormat)
	if got, err := unpack(c, p); err != nil || got.info.NarHash != "00" {
		t.Fatalf("unpack of a current tree: %v %v, want the kept one", got, err)
	}
}
