package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	sHello   = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12"
	sBusybox = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-busybox-1.36"
	sCacert  = "/nix/store/cccccccccccccccccccccccccccccccc-nss-cacert-3.98"
	sGlibc   = "/nix/store/dddddddddddddddddddddddddddddddd-glibc-2.39"
	sOutside = "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-not-in-closure"
)

// customTree is a fake store: hello (bin/hello, share, etc, lib linking
// into glibc, a link leaving the closure), busybox (bin/env, bin/sh, a
// dangling lib link), a CA bundle package, glibc, and a path outside the
// closure.
var customTree = []fsEntry{
	{path: "nix/store", dir: true},
	{path: sHello[1:] + "/bin", dir: true},
	{path: sHello[1:] + "/bin/hello", content: "hello", mode: 0o555},
	{path: sHello[1:] + "/share/man/man1", dir: true},
	{path: sHello[1:] + "/share/man/man1/hello.1", content: "man"},
	{path: sHello[1:] + "/share/outside", symlink: sOutside + "/x"},
	{path: sHello[1:] + "/etc", dir: true},
	{path: sHello[1:] + "/etc/passwd", content: "evil:x:0:0::/:/bin/sh\n"},
	{path: sHello[1:] + "/etc/hello.conf", content: "greeting=hi"},
	{path: sHello[1:] + "/lib", dir: true},
	{path: sHello[1:] + "/lib/libc.so.6", symlink: "../../" + sGlibc[len("/nix/store/"):] + "/lib/libc.so.6"},
	{path: sHello[1:] + "/nix-support", dir: true},
	{path: sHello[1:] + "/nix-support/propagated-build-inputs", content: ""},
	{path: sBusybox[1:] + "/bin", dir: true},
	{path: sBusybox[1:] + "/bin/busybox", content: "busybox", mode: 0o555},
	{path: sBusybox[1:] + "/bin/env", symlink: "busybox"},
	{path: sBusybox[1:] + "/bin/sh", symlink: "busybox"},
	{path: sBusybox[1:] + "/bin/hello", symlink: "busybox"}, // loses to hello's
	{path: sBusybox[1:] + "/share/man/man1", dir: true},
	{path: sBusybox[1:] + "/share/man/man1/busybox.1", content: "man"},
	{path: sBusybox[1:] + "/lib", dir: true},
	{path: sBusybox[1:] + "/lib/dangling", symlink: "/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-gone/lib"},
	{path: sCacert[1:] + "/etc/ssl/certs", dir: true},
	{path: sCacert[1:] + "/etc/ssl/certs/ca-bundle.crt", content: "-----BEGIN CERTIFICATE-----\n"},
	{path: sGlibc[1:] + "/lib", dir: true},
	{path: sGlibc[1:] + "/lib/libc.so.6", content: "libc", mode: 0o555},
	{path: sOutside[1:], dir: true},
	{path: sOutside[1:] + "/x", content: "x"},
}

func customRoot(t testing.TB) string {
	root := t.TempDir()
	makeTree(t, root, customTree, time.Unix(1234, 0))
	return root
}

func writeCustom(t testing.TB, c Custom) (CustomResult, []byte, map[string]tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	res, err := WriteCustomisation(context.Background(), &buf, c)
	if err != nil {
		t.Fatal(err)
	}
	ents := make(map[string]tarEntry)
	for _, e := range readTar(t, buf.Bytes()) {
		name := strings.TrimSuffix(e.hdr.Name, "/")
		if _, dup := ents[name]; dup {
			t.Errorf("duplicate entry %s", e.hdr.Name)
		}
		ents[name] = e
	}
	return res, buf.Bytes(), ents
}

// checkNoDangling asserts that every symlink into the store resolves, in
// the fake store, to something inside the closure.
func checkNoDangling(t *testing.T, root string, closure []string, ents map[string]tarEntry) {
	t.Helper()
	in := make(map[string]bool)
	for _, p := range closure {
		in[p] = true
	}
	r := newResolver(root)
	for name, e := range ents {
		if e.hdr.Typeflag != tar.TypeSymlink {
			continue
		}
		target := e.hdr.Linkname
		if !strings.HasPrefix(target, StoreDir+"/") {
			t.Errorf("%s -> %s: not absolute into the store", name, target)
			continue
		}
		if !in[storePathOf(target)] {
			t.Errorf("%s -> %s: target outside the closure", name, target)
		}
		res, err := r.resolve(target)
		if err != nil {
			t.Errorf("%s -> %s dangles: %v", name, target, err)
			continue
		}
		if !in[storePathOf(res.final)] {
			t.Errorf("%s -> %s resolves to %s, outside the closure", name, target, res.final)
		}
	}
}

func checkOrder(t *testing.T, b []byte) {
	t.Helper()
	var prev []string
	for _, e := range readTar(t, b) {
		h := e.hdr
		if h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(time.Unix(1, 0)) || strings.HasPrefix(h.Name, "/") {
			t.Errorf("%s: uname %q gname %q mtime %v", h.Name, h.Uname, h.Gname, h.ModTime)
		}
		// Depth first, byte order within a directory: compare component
		// lists lexicographically.
		comps := strings.Split(strings.TrimSuffix(h.Name, "/"), "/")
		if prev != nil && slices.Compare(prev, comps) >= 0 {
			t.Errorf("%s after %s: not in order", h.Name, strings.Join(prev, "/"))
		}
		prev = comps
	}
}

func TestCustomisation(t *testing.T) {
	root := customRoot(t)
	closure := []string{sHello, sBusybox, sCacert, sGlibc}
	res, raw, ents := writeCustom(t, Custom{
		Packages: []string{sHello, sBusybox, sHello},
		Closure:  closure,
		Users:    []User{{Name: "cnb", UID: 1000, GID: 1000, Home: "/home/cnb"}},
		Files: []File{
			{Path: "/etc/nix/nix.conf", Content: []byte("sandbox = false\n")},
			{Path: "/nix/var/nix/profiles", Dir: true, Mode: 0o755},
		},
		Root: root,
	})
	checkOrder(t, raw)
	checkNoDangling(t, root, closure, ents)

	link := func(name, target string) {
		t.Helper()
		e, ok := ents[name]
		if !ok {
			t.Errorf("no %s", name)
			return
		}
		if e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != target {
			t.Errorf("%s: type %c -> %q, want symlink -> %s", name, e.hdr.Typeflag, e.hdr.Linkname, target)
		}
	}
	dir := func(name string, mode int64, uid int) {
		t.Helper()
		e, ok := ents[name]
		if !ok {
			t.Errorf("no %s", name)
			return
		}
		if e.hdr.Typeflag != tar.TypeDir || e.hdr.Mode != mode || e.hdr.Uid != uid || e.hdr.Gid != uid {
			t.Errorf("%s: type %c mode %o owner %d:%d, want dir %o %d", name, e.hdr.Typeflag, e.hdr.Mode, e.hdr.Uid, e.hdr.Gid, mode, uid)
		}
	}
	absent := func(name string) {
		t.Helper()
		if _, ok := ents[name]; ok {
			t.Errorf("unexpected %s", name)
		}
	}

	// bin is in both packages: a real directory of links; hello's
	// bin/hello wins over busybox's.
	dir("bin", 0o755, 0)
	link("bin/hello", sHello+"/bin/hello")
	link("bin/env", sBusybox+"/bin/env")
	link("bin/sh", sBusybox+"/bin/sh")
	link("bin/busybox", sBusybox+"/bin/busybox")
	link("usr/bin/env", sBusybox+"/bin/env")
	// share/man/man1 merged two levels deep.
	dir("share/man/man1", 0o755, 0)
	link("share/man/man1/hello.1", sHello+"/share/man/man1/hello.1")
	link("share/man/man1/busybox.1", sBusybox+"/share/man/man1/busybox.1")
	// lib: hello's link into glibc is fine; busybox's dangling one is not.
	link("lib/libc.so.6", sHello+"/lib/libc.so.6")
	absent("lib/dangling")
	absent("share/outside")
	absent("nix-support")
	// etc: ours, with the package's entries linked, but not its passwd.
	dir("etc", 0o755, 0)
	link("etc/hello.conf", sHello+"/etc/hello.conf")
	link("etc/ssl/certs/ca-bundle.crt", sCacert+"/etc/ssl/certs/ca-bundle.crt")
	link("etc/ssl/certs/ca-certificates.crt", sCacert+"/etc/ssl/certs/ca-bundle.crt")
	if e := ents["etc/nix/nix.conf"]; string(e.content) != "sandbox = false\n" || e.hdr.Mode != 0o644 {
		t.Errorf("etc/nix/nix.conf: %q mode %o", e.content, e.hdr.Mode)
	}
	dir("nix/var/nix/profiles", 0o755, 0)
	dir("nix", 0o755, 0)
	absent("nix/store")
	// /tmp and /var/tmp are sticky and world-writable.
	dir("tmp", 0o1777, 0)
	dir("var/tmp", 0o1777, 0)
	dir("root", 0o700, 0)
	dir("home/cnb", 0o755, 1000)

	passwd := string(ents["etc/passwd"].content)
	for _, line := range []string{"root:x:0:0:root:/root:/bin/sh\n", "nobody:x:65534:65534:nobody:/var/empty:/sbin/nologin\n", "cnb:x:1000:1000::/home/cnb:/bin/sh\n"} {
		if !strings.Contains(passwd, line) {
			t.Errorf("passwd lacks %q:\n%s", line, passwd)
		}
	}
	if !strings.HasPrefix(passwd, "root:") || strings.Contains(passwd, "evil") {
		t.Errorf("passwd:\n%s", passwd)
	}
	group := string(ents["etc/group"].content)
	if group != "root:x:0:\ncnb:x:1000:\nnobody:x:65534:\n" {
		t.Errorf("group:\n%s", group)
	}
	shadow := ents["etc/shadow"]
	if !strings.HasPrefix(string(shadow.content), "root:!:1::::::\n") || shadow.hdr.Mode != 0o640 {
		t.Errorf("shadow: mode %o\n%s", shadow.hdr.Mode, shadow.content)
	}
	if want := []string{"PATH=" + DefaultPath, "SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt"}; !slices.Equal(res.Env, want) {
		t.Errorf("Env = %q, want %q", res.Env, want)
	}
	if want := []string{"/lib/dangling", "/share/outside"}; !slices.Equal(res.Skipped, want) {
		t.Errorf("Skipped = %q, want %q", res.Skipped, want)
	}
	if want := []string{"/bin/hello", "/etc/passwd"}; !slices.Equal(res.Collisions, want) {
		t.Errorf("Collisions = %q, want %q", res.Collisions, want)
	}

	// Deterministic.
	_, raw2, _ := writeCustom(t, Custom{
		Packages: []string{sHello, sBusybox, sHello},
		Closure:  []string{sGlibc, sCacert, sBusybox, sHello},
		Users:    []User{{Name: "cnb", UID: 1000, GID: 1000, Home: "/home/cnb"}},
		Files: []File{
			{Path: "/etc/nix/nix.conf", Content: []byte("sandbox = false\n")},
			{Path: "/nix/var/nix/profiles", Dir: true, Mode: 0o755},
		},
		Root: root,
	})
	if !bytes.Equal(raw, raw2) {
		t.Error("customisation layer differs between two runs")
	}
}

func TestCustomisationWithoutEnvOrCerts(t *testing.T) {
	root := customRoot(t)
	closure := []string{sHello, sGlibc}
	res, raw, ents := writeCustom(t, Custom{Packages: []string{sHello}, Closure: closure, Root: root})
	checkOrder(t, raw)
	checkNoDangling(t, root, closure, ents)
	for _, name := range []string{"usr/bin/env", "usr", "etc/ssl", "etc/ssl/certs/ca-bundle.crt"} {
		if _, ok := ents[name]; ok {
			t.Errorf("unexpected %s", name)
		}
	}
	if want := []string{"PATH=" + DefaultPath}; !slices.Equal(res.Env, want) {
		t.Errorf("Env = %q, want %q", res.Env, want)
	}
	// A single package: its bin is one link, not a directory.
	if e := ents["bin"]; e.hdr == nil || e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != sHello+"/bin" {
		t.Errorf("bin: %+v", e.hdr)
	}
	if e := ents["tmp"]; e.hdr == nil || e.hdr.Mode != 0o1777 {
		t.Errorf("tmp: %+v", e.hdr)
	}
}

// The CA bundle of a requested package is used where it is merged, and
// env is found even when /bin is a single package link.
func TestCustomisationCertsFromPackage(t *testing.T) {
	root := customRoot(t)
	closure := []string{sBusybox, sCacert}
	res, _, ents := writeCustom(t, Custom{Packages: []string{sBusybox, sCacert}, Closure: closure, Root: root})
	checkNoDangling(t, root, closure, ents)
	if e := ents["bin"]; e.hdr == nil || e.hdr.Typeflag != tar.TypeSymlink {
		t.Errorf("bin: %+v", e.hdr)
	}
	if e := ents["usr/bin/env"]; e.hdr == nil || e.hdr.Linkname != sBusybox+"/bin/env" {
		t.Errorf("usr/bin/env: %+v", e.hdr)
	}
	// The alias needs etc/ssl/certs to be a real directory: the package's
	// links are expanded, its bundle is linked as it was.
	for _, name := range []string{"etc/ssl/certs/ca-bundle.crt", "etc/ssl/certs/ca-certificates.crt"} {
		if e := ents[name]; e.hdr == nil || e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != sCacert+"/etc/ssl/certs/ca-bundle.crt" {
			t.Errorf("%s: %+v", name, e.hdr)
		}
	}
	if !slices.Contains(res.Env, "SSL_CERT_FILE="+CABundle) {
		t.Errorf("Env = %q", res.Env)
	}
}

func TestCustomisationAccounts(t *testing.T) {
	root := customRoot(t)
	_, _, ents := writeCustom(t, Custom{
		Packages: []string{sHello},
		Closure:  []string{sHello, sGlibc},
		Users: []User{
			{Name: "root", Home: "/root", Shell: "/bin/bash", Gecos: "System administrator"},
			{Name: "nixbld1", UID: 30001, GID: 30000, Gecos: "Nix build user 1", Shell: "/sbin/nologin"},
		},
		Groups: []Group{{Name: "nixbld", GID: 30000, Members: []string{"nixbld1"}}},
		Files:  []File{{Path: "/etc/group", Content: []byte("mine\n"), Mode: 0o600}},
		Root:   root,
	})
	if got, want := string(ents["etc/passwd"].content), "root:x:0:0:System administrator:/root:/bin/bash\nnixbld1:x:30001:30000:Nix build user 1:/var/empty:/sbin/nologin\nnobody:x:65534:65534:nobody:/var/empty:/sbin/nologin\n"; got != want {
		t.Errorf("passwd:\n%s\nwant:\n%s", got, want)
	}
	if e := ents["etc/group"]; string(e.content) != "mine\n" || e.hdr.Mode != 0o600 {
		t.Errorf("group not replaced by Files: %q %o", e.content, e.hdr.Mode)
	}
	for _, c := range []Custom{
		{Users: []User{{Name: "a:b"}}},
		{Users: []User{{Name: ""}}},
		{Groups: []Group{{Name: "g", Members: []string{"x\ny"}}}},
		{Files: []File{{Path: "relative"}}},
		{Files: []File{{Path: "/nix/store/x"}}},
		{Files: []File{{Path: "/a"}, {Path: "/a"}}},
		{Files: []File{{Path: "/a"}, {Path: "/a/b"}}},
		{Packages: []string{sHello}, Closure: []string{sGlibc}},
		{Packages: []string{"/usr"}},
	} {
		c.Root = root
		if _, err := WriteCustomisation(context.Background(), &bytes.Buffer{}, c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// Store paths declare environment in nix-support/strata-env: requested
// packages first, then the closure in byte order; the first declaration of
// a name wins and the layer's own PATH and SSL_CERT_FILE stay.
func TestCustomisationPackageEnv(t *testing.T) {
	const (
		sGit  = "/nix/store/gggggggggggggggggggggggggggggggg-git-2.39"
		sCA   = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-ca-certificates-2023"
		sLib  = "/nix/store/llllllllllllllllllllllllllllllll-libcurl-7.88"
		sAway = "/nix/store/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-away-1"
	)
	root := t.TempDir()
	makeTree(t, root, []fsEntry{
		{path: "nix/store", dir: true},
		{path: sGit[1:] + "/bin", dir: true},
		{path: sGit[1:] + "/bin/git", content: "git", mode: 0o555},
		{path: sGit[1:] + "/nix-support", dir: true},
		{path: sGit[1:] + "/" + EnvFile, content: "# git's compiled-in paths\nGIT_EXEC_PATH=" + sGit + "/lib/git-core\n\nSHARED=from-git\n"},
		{path: sCA[1:] + "/etc/ssl/certs", dir: true},
		{path: sCA[1:] + "/etc/ssl/certs/ca-bundle.crt", content: "-----BEGIN CERTIFICATE-----\n"},
		{path: sCA[1:] + "/nix-support", dir: true},
		{path: sCA[1:] + "/" + EnvFile, content: "SSL_CERT_FILE=" + sCA + "/etc/ssl/certs/ca-bundle.crt\nCURL_CA_BUNDLE=" + sCA + "/etc/ssl/certs/ca-bundle.crt\nSHARED=from-ca\nEMPTY=\n"},
		{path: sLib[1:] + "/nix-support", dir: true},
		{path: sLib[1:] + "/nix-support/strata-env", symlink: sAway + "/env"},
		{path: sAway[1:], dir: true},
		{path: sAway[1:] + "/env", content: "AWAY=1\n"},
	}, time.Unix(1234, 0))
	res, _, _ := writeCustom(t, Custom{Packages: []string{sGit}, Closure: []string{sCA, sGit}, Root: root})
	want := []string{
		"PATH=" + DefaultPath,
		"SSL_CERT_FILE=" + CABundle,
		"CURL_CA_BUNDLE=" + sCA + "/etc/ssl/certs/ca-bundle.crt",
		"EMPTY=",
		"GIT_EXEC_PATH=" + sGit + "/lib/git-core",
		"SHARED=from-git",
	}
	if !slices.Equal(res.Env, want) {
		t.Errorf("Env =\n%q\nwant\n%q", res.Env, want)
	}

	// A declaration that resolves outside the closure is refused.
	_, err := WriteCustomisation(context.Background(), &bytes.Buffer{}, Custom{Packages: []string{sLib}, Root: root})
	if err == nil || !strings.Contains(err.Error(), sLib+"/"+EnvFile) {
		t.Errorf("env file leaving the closure: error %v", err)
	}

	for _, c := range []struct{ content, want string }{
		{"not a declaration\n", "line 1: want NAME=VALUE"},
		{"OK=1\n1BAD=x\n", "line 2: want NAME=VALUE"},
		{"PATH=/opt/bin\n", "line 1: PATH is the image's"},
	} {
		bad := t.TempDir()
		makeTree(t, bad, []fsEntry{
			{path: "nix/store", dir: true},
			{path: sGit[1:] + "/nix-support", dir: true},
			{path: sGit[1:] + "/" + EnvFile, content: c.content},
		}, time.Unix(1234, 0))
		_, err := WriteCustomisation(context.Background(), &bytes.Buffer{}, Custom{Packages: []string{sGit}, Root: bad})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), EnvFile) {
			t.Errorf("%q: error %v, want %q and the file", c.content, err, c.want)
		}
	}
}
