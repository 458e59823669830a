package nix

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var native = Target{System: "x86_64-linux"}
var cross = Target{System: "x86_64-linux", CrossSystem: "aarch64-linux"}

func TestResolve(t *testing.T) {
	requireNix(t)
	t.Parallel()
	d, _ := newDriver(t, Config{})
	ctx := context.Background()
	cases := []struct {
		name, attr string
	}{
		{"hello", "hello"}, // exact
		{"python3Packages.numpy", "python3Packages.numpy"}, // dotted
		{"python3packages.numpy", "python3Packages.numpy"}, // case-insensitive, nested
		{"sdl2", "SDL2"}, // case-insensitive
		{"GNUMAKE", "gnuMake"},
		{"ImageMagick", "ImageMagick"}, // exact wins over the case-insensitive pair
		{"iana-etc", "iana-etc"},
		{"coreutils", "coreutils"},
	}
	for _, c := range cases {
		pkgs, err := d.Resolve(ctx, "", native, []string{c.name})
		if err != nil {
			t.Errorf("Resolve(%s): %v", c.name, err)
			continue
		}
		if len(pkgs) != 1 || pkgs[0].Attr != c.attr {
			t.Errorf("Resolve(%s) = %+v, want attr %s", c.name, pkgs, c.attr)
		}
	}

	// One call for many names; duplicates (also via case) collapse; order
	// is kept; metadata is filled in.
	pl := &procLog{}
	d.testHookStarted = pl.add
	pkgs, err := d.Resolve(ctx, "latest", native, []string{"hello", "python3Packages.numpy", "HELLO", "cacert", "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(pl.named("nix-instantiate")); n != 1 {
		t.Errorf("Resolve ran nix-instantiate %d times, want 1", n)
	}
	var attrs []string
	for _, p := range pkgs {
		attrs = append(attrs, p.Attr)
	}
	if got := strings.Join(attrs, " "); got != "hello python3Packages.numpy cacert" {
		t.Errorf("attrs = %s", got)
	}
	h := pkgs[0]
	if h.Name != "hello-2.12.1" || h.Pname != "hello" || h.Version != "2.12.1" || h.License != "GPL-3.0-or-later" ||
		h.Description == "" || !strings.HasPrefix(h.Homepage, "https://") || h.OutPath != "" {
		t.Errorf("hello = %+v", h)
	}
	if pkgs[2].Name != "nss-cacert-3.95" || pkgs[2].License != "MPL-2.0" {
		t.Errorf("cacert = %+v", pkgs[2])
	}
}

func TestResolveUnknown(t *testing.T) {
	requireNix(t)
	t.Parallel()
	d, _ := newDriver(t, Config{})
	_, err := d.Resolve(context.Background(), "", native, []string{"hello", "helo", "doesnotexist", "python3Packages.nunpy", "python3packages", "strata", "hello.out"})
	var ue *UnknownPackagesError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UnknownPackagesError", err)
	}
	want := []UnknownPackage{
		{Name: "helo", Suggestion: "hello"},
		{Name: "doesnotexist"},
		{Name: "python3Packages.nunpy", Suggestion: "python3Packages.numpy"},
		{Name: "python3packages", Reason: "python3Packages is a set of packages, not a package", Suggestion: "python3Packages.certifi"},
		{Name: "strata", Reason: "strata is not a package"},
		{Name: "hello.out"},
	}
	if fmt.Sprint(ue.Packages) != fmt.Sprint(want) {
		t.Errorf("unknown = %+v\nwant      %+v", ue.Packages, want)
	}
	msg := err.Error()
	for _, s := range []string{`unknown package(s): helo (did you mean "hello"?), doesnotexist, `, `python3Packages.nunpy (did you mean "python3Packages.numpy"?)`} {
		if !strings.Contains(msg, s) {
			t.Errorf("message %q lacks %q", msg, s)
		}
	}
	if ue.ErrorCode() != "MANIFEST_UNKNOWN" || ue.HTTPStatus() != 404 {
		t.Errorf("code %s status %d", ue.ErrorCode(), ue.HTTPStatus())
	}
}

func TestResolveAmbiguous(t *testing.T) {
	requireNix(t)
	t.Parallel()
	d, _ := newDriver(t, Config{})
	_, err := d.Resolve(context.Background(), "", native, []string{"hello", "imagemagick"})
	var ae *AmbiguousPackageError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *AmbiguousPackageError", err)
	}
	if ae.Name != "imagemagick" || strings.Join(ae.Candidates, ",") != "ImageMagick,imageMagick" {
		t.Errorf("ambiguous = %+v", ae)
	}
	if ae.ErrorCode() != "MANIFEST_UNKNOWN" || !strings.Contains(err.Error(), "ImageMagick, imageMagick") {
		t.Errorf("code %s, message %q", ae.ErrorCode(), err)
	}
}

func TestResolveUnbuildable(t *testing.T) {
	requireNix(t)
	t.Parallel()
	d, _ := newDriver(t, Config{})
	for _, c := range []struct{ name, kind, msg string }{
		{"unfreeThing", KindUnfree, "unfree license"},
		{"brokenthing", KindBroken, "marked broken"},
	} {
		_, err := d.Resolve(context.Background(), "", native, []string{"hello", c.name})
		var pe *PackageError
		if !errors.As(err, &pe) {
			t.Errorf("%s: err = %v, want *PackageError", c.name, err)
			continue
		}
		if pe.Kind != c.kind || !strings.Contains(err.Error(), c.msg) || pe.ErrorCode() != "UNKNOWN" {
			t.Errorf("%s: %+v: %v", c.name, pe, err)
		}
	}
	// Unknown names are reported before unbuildable ones.
	_, err := d.Resolve(context.Background(), "", native, []string{"unfreeThing", "nope"})
	var ue *UnknownPackagesError
	if !errors.As(err, &ue) {
		t.Errorf("err = %v, want *UnknownPackagesError", err)
	}
}

func TestResolveInvalidNames(t *testing.T) {
	// No Nix needed: invalid names never reach it.
	d, pl := newDriver(t, Config{})
	for _, n := range []string{"", "a b", "he\"llo", "x${builtins.abort}", "a..b", ".a", "a.", "a/b", "a;b", strings.Repeat("a", 300), "ünï"} {
		_, err := d.Resolve(context.Background(), "", native, []string{"hello", n})
		var ie *InvalidNameError
		if !errors.As(err, &ie) || len(ie.Names) != 1 || ie.Names[0] != n || ie.ErrorCode() != "NAME_INVALID" {
			t.Errorf("Resolve(%q) err = %v, want *InvalidNameError", n, err)
		}
		_, err = d.Build(context.Background(), "", native, []string{n})
		if !errors.As(err, &ie) {
			t.Errorf("Build(%q) err = %v, want *InvalidNameError", n, err)
		}
	}
	if pl.count() != 0 {
		t.Errorf("%d processes started for invalid names", pl.count())
	}
	if _, err := d.Resolve(context.Background(), "", Target{System: "x86_64-linux; rm"}, []string{"hello"}); err == nil {
		t.Error("bad system accepted")
	}
}

func TestShellPackages(t *testing.T) {
	requireNix(t)
	t.Parallel()
	d, _ := newDriver(t, Config{})
	sh, err := d.ShellPackages(context.Background(), "")
	if err != nil || strings.Join(sh, ",") != "busybox" {
		t.Errorf("ShellPackages = %v, %v; want [busybox]", sh, err)
	}
	// A set without strata.shell gets Nixery's default; a plain attribute
	// set (not a function) works too.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "default.nix"), []byte("{ hello = 1; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d2, _ := newDriver(t, Config{PkgsPath: dir})
	sh, err = d2.ShellPackages(context.Background(), "")
	if err != nil || strings.Join(sh, ",") != "bashInteractive,coreutils,moreutils,nano" {
		t.Errorf("ShellPackages = %v, %v; want Nixery's default", sh, err)
	}
}

func TestEvalError(t *testing.T) {
	requireNix(t)
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "default.nix"), []byte("{ system ? null, ... }: { hello = ; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := newDriver(t, Config{PkgsPath: dir})
	_, err := d.Resolve(context.Background(), "", native, []string{"hello"})
	var ee *EvalError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "syntax error") {
		t.Errorf("err = %v, want *EvalError about a syntax error", err)
	}
}

func TestBuildHello(t *testing.T) {
	requireNix(t)
	t.Parallel()
	d, _ := newDriver(t, Config{})
	before := d.Builds()
	res, err := d.Build(context.Background(), "", native, []string{"hello", "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if n := d.Builds() - before; n != 1 {
		t.Errorf("Builds() grew by %d, want 1", n)
	}
	if len(res.Packages) != 1 {
		t.Fatalf("packages = %+v", res.Packages)
	}
	hello := res.Packages[0]
	if hello.Attr != "hello" || hello.Name != "hello-2.12.1" || !strings.HasPrefix(hello.OutPath, "/nix/store/") || !strings.HasSuffix(hello.OutPath, "-hello-2.12.1") {
		t.Errorf("hello = %+v", hello)
	}
	g := res.Graph
	if len(g.Paths) != 2 || strings.Join(g.Roots, " ") != hello.OutPath {
		t.Fatalf("closure = %v (roots %v), want hello and busybox", g.Sorted(), g.Roots)
	}
	h := g.Paths[hello.OutPath]
	if len(h.References) != 1 || !strings.HasSuffix(h.References[0], "-busybox-1.35.0") {
		t.Fatalf("hello references %v, want busybox", h.References)
	}
	bb := g.Paths[h.References[0]]
	for _, p := range []string{hello.OutPath, bb.Path} {
		n := g.Paths[p]
		if n.NarSize <= 0 || !strings.HasPrefix(n.NarHash, "sha256:") || len(n.NarHash) != len("sha256:")+52 {
			t.Errorf("%s: narSize %d narHash %q", p, n.NarSize, n.NarHash)
		}
	}
	if bb.NarSize < 1<<20 {
		t.Errorf("busybox narSize %d, want the whole binary", bb.NarSize)
	}
	// The NAR hash agrees with nix-store's.
	out, err := exec.Command("nix-store", "--query", "--hash", hello.OutPath).Output()
	if err != nil || strings.TrimSpace(string(out)) != h.NarHash {
		t.Errorf("nix-store --query --hash = %q, %v; graph has %q", out, err, h.NarHash)
	}
	// It runs.
	out, err = exec.Command(filepath.Join(hello.OutPath, "bin", "hello")).Output()
	if err != nil || string(out) != "Hello, world!\n" {
		t.Errorf("hello printed %q, %v", out, err)
	}
}

func TestBuildCross(t *testing.T) {
	requireNix(t)
	t.Parallel()
	d, _ := newDriver(t, Config{})
	res, err := d.Build(context.Background(), "", cross, []string{"hello", "armOnlyFail"})
	if err == nil {
		t.Fatalf("armOnlyFail built for aarch64: %+v", res.Packages)
	}
	var be *BuildError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "aarch64-linux is not supported by this package") || be.Target != cross {
		t.Errorf("err = %v, want a BuildError naming the aarch64 failure", err)
	}
	res, err = d.Build(context.Background(), "", cross, []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Graph.Paths) != 2 {
		t.Fatalf("closure = %v", res.Graph.Sorted())
	}
	var bb string
	for p := range res.Graph.Paths {
		if strings.HasSuffix(p, "-busybox-1.35.0") {
			bb = p
		}
	}
	f, err := elf.Open(filepath.Join(bb, "bin", "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 || uint16(f.Machine) != 183 {
		t.Errorf("busybox of the aarch64 closure is for machine %v, want EM_AARCH64 (183)", f.Machine)
	}
	// armOnlyFail builds natively.
	if _, err := d.Build(context.Background(), "", native, []string{"armOnlyFail"}); err != nil {
		t.Errorf("armOnlyFail native: %v", err)
	}
	// Native and cross outputs differ.
	nat, err := d.Build(context.Background(), "", native, []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if nat.Packages[0].OutPath == res.Packages[0].OutPath {
		t.Error("native and cross hello share an out path")
	}
}

func TestBuildFailing(t *testing.T) {
	requireNix(t)
	t.Parallel()
	d, _ := newDriver(t, Config{})
	_, err := d.Build(context.Background(), "", native, []string{"failingBuild"})
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want *BuildError", err)
	}
	if be.Timeout || strings.Join(be.Attrs, ",") != "failingBuild" {
		t.Errorf("BuildError = %+v", be)
	}
	for _, s := range []string{"configuring failing-build 1.0", "checking for a working compiler... no", "error: this build always fails"} {
		if !strings.Contains(be.Log, s) {
			t.Errorf("log lacks %q:\n%s", s, be.Log)
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "nix build of failingBuild for x86_64-linux failed: ") || !strings.Contains(msg, "this build always fails") {
		t.Errorf("message %q", msg)
	}
	if be.ErrorCode() != "UNKNOWN" || be.HTTPStatus() != 500 {
		t.Errorf("code %s status %d", be.ErrorCode(), be.HTTPStatus())
	}
	// A missing attribute fails the build too.
	if _, err := d.Build(context.Background(), "", native, []string{"noSuchThing"}); !errors.As(err, &be) || !strings.Contains(err.Error(), "noSuchThing") {
		t.Errorf("err = %v", err)
	}
}

func TestBuildTimeout(t *testing.T) {
	requireNix(t)
	t.Parallel()
	salt := fmt.Sprintf("-timeout-%d-%d", os.Getpid(), time.Now().UnixNano())
	d, pl := newDriver(t, Config{Timeout: 3 * time.Second, Args: map[string]string{"salt": salt}})
	start := time.Now()
	_, err := d.Build(context.Background(), "", native, []string{"slowBuild"})
	elapsed := time.Since(start)
	var be *BuildError
	if !errors.As(err, &be) || !be.Timeout || be.Limit != 3*time.Second {
		t.Fatalf("err = %v, want a BuildError with Timeout", err)
	}
	if elapsed > 10*time.Second {
		t.Errorf("Build returned after %s, want about 3s", elapsed)
	}
	if !strings.Contains(err.Error(), "timed out after 3s") || be.HTTPStatus() != 504 {
		t.Errorf("message %q status %d", err, be.HTTPStatus())
	}
	pids := pl.named("nix-build")
	if len(pids) != 1 {
		t.Fatalf("nix-build started %d times", len(pids))
	}
	// Nothing of the build is left: not in nix-build's process group, and
	// not the sandboxed builder (in a session of its own).
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := append(procsInGroup(t, pids[0]), procsMatching(t, "slow-build: starting"+salt)...)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left after the timeout: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The caller's cancellation stops a build the same way.
	salt2 := salt + "-cancel"
	d2, pl2 := newDriver(t, Config{Args: map[string]string{"salt": salt2}})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(2*time.Second, cancel)
	start = time.Now()
	_, err = d2.Build(ctx, "", native, []string{"slowBuild"})
	if !errors.As(err, &be) || !be.Canceled || be.Timeout || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want a cancelled BuildError", err)
	}
	if time.Since(start) > 9*time.Second {
		t.Errorf("cancelled Build returned after %s", time.Since(start))
	}
	for _, pid := range pl2.named("nix-build") {
		if left := procsInGroup(t, pid); len(left) > 0 {
			t.Errorf("processes left after cancel: %v", left)
		}
	}
}

func TestRevisionPath(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, pkgsDir(t), dir)
	d, _ := newDriver(t, Config{PkgsPath: dir})
	ctx := context.Background()
	r1, err := d.Revision(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r1, "sha256:") || len(r1) != len("sha256:")+64 {
		t.Errorf("revision %q", r1)
	}
	if r2, _ := d.Revision(ctx, "latest"); r2 != r1 {
		t.Errorf("revision changed without a change: %s, %s", r1, r2)
	}
	// Another copy of the same tree (other mtimes, other driver) has the
	// same revision.
	dir2 := t.TempDir()
	copyTree(t, pkgsDir(t), dir2)
	d2, _ := newDriver(t, Config{PkgsPath: dir2})
	if r, _ := d2.Revision(ctx, ""); r != r1 {
		t.Errorf("same content, other revision: %s, %s", r, r1)
	}
	// A content change changes it, even with the mtime and size kept.
	f := filepath.Join(dir, "default.nix")
	st, _ := os.Stat(f)
	b, _ := os.ReadFile(f)
	changed := strings.Replace(string(b), "Hello, world!", "Hello, World!", 1)
	if changed == string(b) {
		t.Fatal("no greeting to change")
	}
	if err := os.WriteFile(f, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(f, st.ModTime(), st.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	r3, err := d.Revision(ctx, "")
	if err != nil || r3 == r1 {
		t.Errorf("revision after a change = %s, %v (was %s)", r3, err, r1)
	}
	// A new file and a mode change change it too.
	if err := os.WriteFile(filepath.Join(dir, "extra.nix"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	r4, _ := d.Revision(ctx, "")
	if err := os.Chmod(filepath.Join(dir, "extra.nix"), 0o755); err != nil {
		t.Fatal(err)
	}
	r5, _ := d.Revision(ctx, "")
	if r4 == r3 || r5 == r4 {
		t.Errorf("revisions %s %s %s", r3, r4, r5)
	}
	// Restoring the content restores the revision.
	os.Remove(filepath.Join(dir, "extra.nix"))
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if r, _ := d.Revision(ctx, ""); r != r1 {
		t.Errorf("restored tree has revision %s, want %s", r, r1)
	}
}

// gitRepo makes a repository holding a copy of the offline set: commit c1
// (tagged v1) on main, then c2 on branch feature with another greeting.
func gitRepo(t *testing.T) (dir, c1, c2 string) {
	t.Helper()
	dir = t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=strata", "-c", "user.email=strata@example.org", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	copyTree(t, pkgsDir(t), dir)
	git("add", ".")
	git("commit", "-q", "-m", "package set")
	git("tag", "-a", "v1", "-m", "v1")
	c1 = git("rev-parse", "HEAD")
	git("checkout", "-q", "-b", "feature")
	f := filepath.Join(dir, "default.nix")
	b, _ := os.ReadFile(f)
	if err := os.WriteFile(f, []byte(strings.Replace(string(b), "Hello, world!", "Hello, feature!", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	git("commit", "-q", "-am", "feature greeting")
	c2 = git("rev-parse", "HEAD")
	git("checkout", "-q", "main")
	return dir, c1, c2
}

func TestGitSource(t *testing.T) {
	requireNix(t)
	t.Parallel()
	dir, c1, c2 := gitRepo(t)
	d, _ := newDriver(t, Config{PkgsRepo: dir})
	ctx := context.Background()
	for ref, want := range map[string]string{
		"": c1, "latest": c1, "main": c1, "v1": c1, "feature": c2, c2: c2, c2[:10]: c2,
	} {
		got, err := d.Revision(ctx, ref)
		if err != nil || got != want {
			t.Errorf("Revision(%q) = %s, %v; want %s", ref, got, err, want)
		}
	}
	for _, ref := range []string{"nope", "-x", "a..b", "refs/../x"} {
		_, err := d.Revision(ctx, ref)
		var ue *UnknownRefError
		if !errors.As(err, &ue) || ue.ErrorCode() != "MANIFEST_UNKNOWN" {
			t.Errorf("Revision(%q) err = %v, want *UnknownRefError", ref, err)
		}
	}

	pkgs, err := d.Resolve(ctx, "feature", native, []string{"hello", "python3packages.numpy"})
	if err != nil || len(pkgs) != 2 || pkgs[1].Attr != "python3Packages.numpy" {
		t.Fatalf("Resolve at feature = %+v, %v", pkgs, err)
	}
	greeting := func(ref string) string {
		t.Helper()
		res, err := d.Build(ctx, ref, native, []string{"hello"})
		if err != nil {
			t.Fatalf("Build at %s: %v", ref, err)
		}
		out, err := exec.Command(filepath.Join(res.Packages[0].OutPath, "bin", "hello")).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	if g := greeting("feature"); g != "Hello, feature!" {
		t.Errorf("hello at feature says %q", g)
	}
	if g := greeting("v1"); g != "Hello, world!" {
		t.Errorf("hello at v1 says %q", g)
	}
	if g := greeting(c2); g != "Hello, feature!" {
		t.Errorf("hello at %s says %q", c2, g)
	}
}

func TestNixStringRoundTrip(t *testing.T) {
	requireNix(t)
	t.Parallel()
	d, _ := newDriver(t, Config{})
	in := []string{"plain", `quote " back \ slash`, "${builtins.abort \"x\"}", "$${x}", "''${y}", "new\nline\ttab\r", "é ünï €", "\\${z}", "$"}
	var b strings.Builder
	b.WriteString("[ ")
	for _, s := range in {
		b.WriteString(nixString(s))
		b.WriteString(" ")
	}
	b.WriteString("]")
	var out []string
	if err := d.eval(context.Background(), "round trip", b.String(), &out); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%q", out) != fmt.Sprintf("%q", in) {
		t.Errorf("round trip:\n got %q\nwant %q", out, in)
	}
}

func TestChannelTarball(t *testing.T) {
	requireNix(t)
	t.Parallel()
	// A channel is a tarball with one top-level directory; a file:// URL
	// works offline.
	tmp := t.TempDir()
	copyTree(t, pkgsDir(t), filepath.Join(tmp, "nixexprs"))
	tarball := filepath.Join(tmp, "nixexprs.tar.gz")
	if out, err := exec.Command("tar", "-C", tmp, "-czf", tarball, "nixexprs").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	url := "file://" + tarball
	d, _ := newDriver(t, Config{Channel: url})
	if rev, err := d.Revision(context.Background(), "latest"); err != nil || rev != url {
		t.Errorf("Revision = %q, %v; want the channel", rev, err)
	}
	pkgs, err := d.Resolve(context.Background(), "", native, []string{"hello", "sdl2"})
	if err != nil || len(pkgs) != 2 || pkgs[1].Attr != "SDL2" {
		t.Fatalf("Resolve = %+v, %v", pkgs, err)
	}
	res, err := d.Build(context.Background(), "", native, []string{"hello"})
	if err != nil || len(res.Graph.Paths) != 2 {
		t.Fatalf("Build = %+v, %v", res, err)
	}
	// Same package set, same store path as the local path source.
	local, _ := newDriver(t, Config{})
	lres, err := local.Build(context.Background(), "", native, []string{"hello"})
	if err != nil || lres.Packages[0].OutPath != res.Packages[0].OutPath {
		t.Errorf("channel built %s, local path %+v, %v", res.Packages[0].OutPath, lres, err)
	}

	// Channel names and commits become nixpkgs tarball URLs.
	for ch, want := range map[string]string{
		"nixos-unstable": "https://nixos.org/channels/nixos-unstable/nixexprs.tar.xz",
		"0123456789abcdef0123456789abcdef01234567": "https://github.com/NixOS/nixpkgs/archive/0123456789abcdef0123456789abcdef01234567.tar.gz",
		url: url,
	} {
		if got := channelURL(ch); got != want {
			t.Errorf("channelURL(%s) = %s", ch, got)
		}
	}
}

func TestClosureFallback(t *testing.T) {
	requireNix(t)
	t.Parallel()
	d, _ := newDriver(t, Config{})
	res, err := d.Build(context.Background(), "", native, []string{"bigapp", "python3Packages.requests"})
	if err != nil {
		t.Fatal(err)
	}
	// nix-store --dump-db gives the same graph as nix path-info.
	nodes, err := d.closureDumpDB(context.Background(), res.Graph.Roots)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != len(res.Graph.Paths) {
		t.Fatalf("dump-db has %d paths, path-info %d", len(nodes), len(res.Graph.Paths))
	}
	for _, n := range nodes {
		p := res.Graph.Paths[n.Path]
		var refs []string
		for _, r := range n.References {
			if r != n.Path {
				refs = append(refs, r)
			}
		}
		if p == nil || p.NarSize != n.NarSize || p.NarHash != n.NarHash || fmt.Sprint(p.References) != fmt.Sprint(refs) {
			t.Errorf("dump-db %+v\npath-info %+v", n, p)
		}
	}
	// The library stack is a real graph.
	app := res.Packages[0].OutPath
	if refs := fmt.Sprint(res.Graph.Paths[app].References); !strings.Contains(refs, "-libfoo-") || !strings.Contains(refs, "-glibc-") {
		t.Errorf("bigapp references %s", refs)
	}
	if res.Graph.TotalSize() < 10<<20 {
		t.Errorf("closure of bigapp and requests is %d bytes, want > 10 MiB", res.Graph.TotalSize())
	}
}

func TestNewConfig(t *testing.T) {
	for _, c := range []Config{
		{},
		{PkgsPath: "/nonexistent/pkgs"},
		{PkgsPath: pkgsDir(t), Channel: "nixos-unstable"},
		{Channel: "bad channel"},
		{PkgsRepo: "--upload-pack=x"},
		{PkgsPath: pkgsDir(t), Args: map[string]string{"not an ident": "x"}},
		{PkgsPath: pkgsDir(t), Timeout: -time.Second},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	t.Setenv("STRATA_TEST_SECRET", "hunter2")
	t.Setenv("NIX_PATH", "nixpkgs=/somewhere")
	d, err := New(Config{PkgsPath: pkgsDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Join(d.env(), "\n")
	if strings.Contains(env, "hunter2") || strings.Contains(env, "NIX_PATH") || !strings.Contains(env, "NIX_CONFIG=substituters =") {
		t.Errorf("environment of Nix processes:\n%s", env)
	}
}

func TestFlakeSource(t *testing.T) {
	requireNix(t)
	t.Parallel()
	dir := t.TempDir()
	flake := `{
  outputs = { self }: {
    legacyPackages.x86_64-linux = import ` + pkgsDir(t) + ` { system = "x86_64-linux"; };
    legacyPackages.aarch64-linux = import ` + pkgsDir(t) + ` { system = "aarch64-linux"; };
  };
}
`
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(flake), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := newDriver(t, Config{Flake: "path:" + dir})
	ctx := context.Background()
	rev, err := d.Revision(ctx, "latest")
	if err != nil || !strings.HasPrefix(rev, "sha256-") {
		t.Fatalf("Revision = %q, %v; want the locked NAR hash", rev, err)
	}
	pkgs, err := d.Resolve(ctx, "", native, []string{"hello", "python3packages.numpy"})
	if err != nil || len(pkgs) != 2 || pkgs[1].Attr != "python3Packages.numpy" {
		t.Fatalf("Resolve = %+v, %v", pkgs, err)
	}
	res, err := d.Build(ctx, "", native, []string{"hello"})
	if err != nil || len(res.Graph.Paths) != 2 {
		t.Fatalf("Build = %+v, %v", res, err)
	}
	// Cross targets use the set's pkgsCross.
	cres, err := d.Build(ctx, "", cross, []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	for p := range cres.Graph.Paths {
		if strings.HasSuffix(p, "-busybox-1.35.0") {
			if f, err := elf.Open(filepath.Join(p, "bin", "busybox")); err != nil || f.Machine != elf.EM_AARCH64 {
				t.Errorf("cross busybox %s: %v", p, err)
			}
		}
	}
	// Without pkgsCross, cross targets fail with a clear message.
	if _, err := d.Resolve(ctx, "", Target{System: "x86_64-linux", CrossSystem: "riscv64-linux"}, []string{"hello"}); err == nil || !strings.Contains(err.Error(), "pkgsCross") {
		t.Errorf("cross Resolve err = %v", err)
	}
	// A change of the flake changes the revision.
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(flake+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rev2, err := d.Revision(ctx, ""); err != nil || rev2 == rev {
		t.Errorf("revision after a change = %q, %v", rev2, err)
	}
}

func TestRealiseAndDatabase(t *testing.T) {
	requireNix(t)
	t.Parallel()
	d, _ := newDriver(t, Config{})
	ctx := context.Background()
	// A .drv to realise: iana-etc cross-compiled for aarch64.
	drv, err := exec.Command("nix-instantiate", "--option", "substituters", "", pkgsDir(t), "-A", "iana-etc", "--argstr", "crossSystem", "aarch64-linux").Output()
	if err != nil {
		t.Fatal(err)
	}
	drvPath := strings.TrimSpace(string(drv))
	out, err := exec.Command("nix-store", "--query", "--outputs", drvPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	outPath := strings.TrimSpace(string(out))
	res, err := d.Realise(ctx, []string{drvPath}, []string{outPath + "/etc/services"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Graph.Roots) != 1 || res.Graph.Roots[0] != outPath || len(res.Packages) != 1 || res.Packages[0].OutPath != outPath {
		t.Errorf("Realise = %+v, roots %v", res.Packages, res.Graph.Roots)
	}
	if _, err := d.Realise(ctx, nil, []string{"/etc/passwd"}); err == nil {
		t.Error("Realise accepted a path outside the store")
	}

	hello, err := d.Build(ctx, "", native, []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	paths := hello.Graph.Sorted()
	mtime := time.Unix(1700000000, 0)
	db1, err := d.Database(ctx, paths, mtime)
	if err != nil {
		t.Fatal(err)
	}
	db2, err := d.Database(ctx, paths, mtime)
	if err != nil {
		t.Fatal(err)
	}
	if string(db1.SQLite) != string(db2.SQLite) || len(db1.SQLite) == 0 || strings.TrimSpace(string(db1.Schema)) == "" {
		t.Fatalf("databases differ or are empty (%d, %d bytes, schema %q)", len(db1.SQLite), len(db2.SQLite), db1.Schema)
	}
	f := filepath.Join(t.TempDir(), "db.sqlite")
	if err := os.WriteFile(f, db1.SQLite, 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := exec.Command("sqlite3", f, "SELECT path, registrationTime FROM ValidPaths ORDER BY path").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := paths[0] + "|1700000000\n" + paths[1] + "|1700000000\n"
	if string(rows) != want {
		t.Errorf("ValidPaths:\n%s\nwant\n%s", rows, want)
	}
}

func TestStorePathOf(t *testing.T) {
	for in, want := range map[string]string{
		"/nix/store/q835aamvd11sd6cjlvd0hx6sc6y0d3fy-hello-2.12.1":           "/nix/store/q835aamvd11sd6cjlvd0hx6sc6y0d3fy-hello-2.12.1",
		"/nix/store/q835aamvd11sd6cjlvd0hx6sc6y0d3fy-hello-2.12.1/bin/hello": "/nix/store/q835aamvd11sd6cjlvd0hx6sc6y0d3fy-hello-2.12.1",
		"/nix/store/short-x": "",
		"/etc/passwd":        "",
		"/nix/store/":        "",
	} {
		got, err := StorePathOf(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("StorePathOf(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
