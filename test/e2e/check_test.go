package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// A pull of a package that the package set renamed (an alias that throws,
// as nixpkgs keeps them) answers 404 MANIFEST_UNKNOWN naming the
// replacement, with the pull command for this host; so do the page, the
// metrics and strata build. The replacement is never served silently.
func TestPullRenamedPackage(t *testing.T) {
	s := startServer(t, serverOpts{})
	p := newPodman(t)
	out, err := p.run(5*time.Minute, "pull", "--tls-verify=false", s.Addr+"/shell/mysql")
	if err == nil {
		t.Fatalf("podman pull shell/mysql succeeded:\n%s", out)
	}
	want := "mysql was renamed to mariadb: pull " + s.Addr + "/shell/mariadb"
	if !strings.Contains(out, want) || !strings.Contains(out, "manifest unknown") {
		t.Fatalf("podman pull shell/mysql: output lacks %q and manifest unknown:\n%s", want, out)
	}
	resp, body := rawGet(t, s.Addr, "/v2/shell/mysql/manifests/latest")
	if resp.StatusCode != 404 || !strings.Contains(string(body), `"code":"MANIFEST_UNKNOWN"`) ||
		!strings.Contains(string(body), `"replacement":"mariadb"`) {
		t.Fatalf("GET shell/mysql: %d %s", resp.StatusCode, body)
	}
	// The removal's own text.
	resp, body = rawGet(t, s.Addr, "/v2/oldtool/manifests/latest")
	if resp.StatusCode != 404 || !strings.Contains(string(body), `'oldtool' has been removed from nixpkgs, as it was unmaintained`) {
		t.Fatalf("GET oldtool: %d %s", resp.StatusCode, body)
	}
	// The command in the message works.
	p.must(5*time.Minute, "pull", "--tls-verify=false", s.Addr+"/shell/mariadb")

	code, page := httpGet(t, "http://"+s.Addr+"/")
	if code != 200 || !strings.Contains(page, want) {
		t.Errorf("the page lacks %q", want)
	}
	code, m := httpGet(t, "http://"+s.Addr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for series, want := range map[string]float64{
		`strata_builds_failed_total{kind="renamed"}`:         1,
		`strata_builds_failed_total{kind="removed"}`:         1,
		`strata_builds_failed_total{kind="unknown_package"}`: 0,
	} {
		if got := metricValue(m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	// strata build says the same.
	_, stderr, err := strataBuild(t, 5*time.Minute, "--cache-dir", t.TempDir(), "busybox", "mysql")
	if err == nil || !strings.Contains(stderr, `mysql was renamed to mariadb: use "mariadb" instead`) {
		t.Fatalf("strata build mysql: %v\n%s", err, stderr)
	}
	// From a description: with its file and line.
	desc := filepath.Join(t.TempDir(), "image.yaml")
	if err := os.WriteFile(desc, []byte("name: db\npackages:\n  - busybox\n  - mysql\n  - oldtool\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = strataBuild(t, 5*time.Minute, "--cache-dir", t.TempDir(), "-f", desc)
	for _, want := range []string{
		desc + `: line 4: mysql was renamed to mariadb: use "mariadb" instead`,
		desc + `: line 5: 'oldtool' has been removed from nixpkgs, as it was unmaintained`,
	} {
		if err == nil || !strings.Contains(stderr, want) {
			t.Errorf("strata build -f: %v: stderr lacks %q:\n%s", err, want, stderr)
		}
	}
}

// strataCheck runs strata check in the repository root; it returns
// stdout, stderr and the exit code.
func strataCheck(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, strataBin, append([]string{"check"}, args...)...)
	cmd.Dir = repoRoot
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("strata check: %v", err)
	}
	return stdout.String(), stderr.String(), code
}

const bumpImage = "shell/exa/htop/jq/curl/telnet"

// strata check between the offline set and its next version (docs/check.md).
func TestCheckBumpText(t *testing.T) {
	out, stderr, code := strataCheck(t, "--from", "testdata/pkgs", "--to", "testdata/pkgs-next", bumpImage, "hello")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (something breaks)\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{
		"from testdata/pkgs (sha256:",
		"to   testdata/pkgs-next (sha256:",
		bumpImage + " (name, linux/amd64): BREAKS",
		"  renamed           exa → eza 0.10.1\n",
		"  removed           telnet: 'telnet' has been removed from nixpkgs, as it was unmaintained\n",
		"  fails to evaluate curl: assertion '((base).lib.version == \"openssl-3.2\")' failed\n",
		"  version           htop 3.2.2 → 3.3.0\n",
		"  use shell/eza/htop/jq/curl/telnet\n",
		"hello (name, linux/amd64): unchanged\n",
		"2 image(s), 7 package(s): 1 renamed, 1 removed, 1 newly failing to evaluate, 0 newly failing to build, 1 version change(s), 0 deprecated, 0 fixed, 0 still failing\n",
		"the bump would break 1 image(s)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// jq still evaluates: only --build finds that it no longer builds.
	if strings.Contains(out, "jq:") {
		t.Errorf("jq reported without --build:\n%s", out)
	}
	if !strings.Contains(stderr, "strata: the bump would break 1 of 2 image(s)") {
		t.Errorf("stderr %q", stderr)
	}

	// Nothing breaks: exit 0.
	out, stderr, code = strataCheck(t, "--from", "testdata/pkgs", "--to", "testdata/pkgs-next", "hello/htop", "pkgconfig")
	if code != 0 || !strings.Contains(out, "nothing would break") || !strings.Contains(out, "version           htop 3.2.2 → 3.3.0") ||
		!strings.Contains(out, "deprecated        pkgconfig → pkg-config 0.29.2") {
		t.Errorf("exit %d:\n%s\n%s", code, out, stderr)
	}

	// Bad input: exit 2 with what to do.
	_, stderr, code = strataCheck(t, "--from", "testdata/pkgs", "--to", "nosuchdir", "hello")
	if code != 2 || !strings.Contains(stderr, `--to "nosuchdir": use a package-set directory`) {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

func TestCheckBumpJSON(t *testing.T) {
	desc := filepath.Join(t.TempDir(), "image.yaml")
	if err := os.WriteFile(desc, []byte("name: tools\npackages: [exa, hello]\nlayers:\n  - packages: [telnet]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := strataCheck(t, "--from", "testdata/pkgs", "--to", "testdata/pkgs-next", "--build", "--json",
		bumpImage, "-f", desc, "--publish-config", "examples/publish/publish.yaml")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, stderr)
	}
	validateCheckJSON(t, []byte(out))
	var rep struct {
		From, To struct{ Source, Revision string }
		Images   []struct {
			Image, Kind, Platform, Suggestion string
			Breaks                            bool
			Packages                          []struct {
				Name, Change, Replacement, Message string
				Breaks                             bool
				From                               *struct{ State, Version, OutPath string }
				To                                 struct{ State, Version string }
			}
		}
		Summary map[string]int
		Breaks  bool
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.From.Source != "testdata/pkgs" || rep.To.Source != "testdata/pkgs-next" || !strings.HasPrefix(rep.To.Revision, "sha256:") || !rep.Breaks {
		t.Errorf("report %+v", rep)
	}
	if len(rep.Images) != 3 {
		t.Fatalf("%d images, want 3", len(rep.Images))
	}
	changes := map[string]string{}
	for _, p := range rep.Images[0].Packages {
		changes[p.Name] = p.Change
		if p.Breaks != (p.Change == "renamed" || p.Change == "removed" || p.Change == "eval_failed" || p.Change == "build_failed") {
			t.Errorf("%s: change %s, breaks %v", p.Name, p.Change, p.Breaks)
		}
		switch p.Name {
		case "exa":
			if p.Replacement != "eza" || p.From == nil || p.From.State != "ok" || p.To.State != "renamed" {
				t.Errorf("exa: %+v", p)
			}
		case "htop":
			if p.From == nil || p.From.Version != "3.2.2" || p.To.Version != "3.3.0" {
				t.Errorf("htop: %+v", p)
			}
		case "jq":
			if !strings.Contains(p.Message, "jq: tests fail with the new oniguruma") {
				t.Errorf("jq: message %q", p.Message)
			}
		}
	}
	want := map[string]string{"busybox": "unchanged", "curl": "eval_failed", "exa": "renamed", "htop": "version", "jq": "build_failed", "telnet": "removed"}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Errorf("changes %v\nwant    %v", changes, want)
	}
	if im := rep.Images[0]; im.Image != bumpImage || im.Kind != "name" || im.Platform != "linux/amd64" || !im.Breaks || im.Suggestion != "shell/eza/htop/jq/curl/telnet" {
		t.Errorf("image %+v", im)
	}
	if im := rep.Images[1]; im.Image != desc || im.Kind != "description" || !im.Breaks || len(im.Packages) != 3 {
		t.Errorf("description %+v", im)
	}
	// The publish example (hello, busybox) does not break; its first
	// platform is linux/amd64.
	if im := rep.Images[2]; im.Kind != "publish" || im.Breaks || im.Platform != "linux/amd64" || len(im.Packages) != 2 {
		t.Errorf("publish config %+v", im)
	}
	for k, v := range map[string]int{"images": 3, "brokenImages": 2, "packages": 7, "renamed": 1, "removed": 1, "evalFailed": 1, "buildFailed": 1, "version": 1, "unchanged": 2} {
		if rep.Summary[k] != v {
			t.Errorf("summary %s = %d, want %d", k, rep.Summary[k], v)
		}
	}
	// htop and jq changed their outputs: built; the rest did not or fails.
	if rep.Summary["buildsChecked"] != 2 {
		t.Errorf("%d builds, want 2 (htop, jq)", rep.Summary["buildsChecked"])
	}
}

// validateCheckJSON validates a report against docs/check.schema.json.
func validateCheckJSON(t *testing.T, out []byte) {
	t.Helper()
	c := jsonschema.NewCompiler()
	sch, err := c.Compile(filepath.Join(repoRoot, "docs", "check.schema.json"))
	if err != nil {
		t.Fatalf("docs/check.schema.json: %v", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("check --json output: %v\n%s", err, out)
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("check --json output does not match docs/check.schema.json: %v", err)
	}
}

// Git refs as sources: one repository, two tags.
func TestCheckGitRefs(t *testing.T) {
	repo := t.TempDir()
	gitc := gitIn(t, repo)
	mustRun(t, time.Minute, "cp", "-r", filepath.Join(repoRoot, "testdata", "pkgs"), filepath.Join(repoRoot, "testdata", "pkgs-next"), repo)
	write := func(set string) {
		if err := os.WriteFile(filepath.Join(repo, "default.nix"), []byte("args: import ./"+set+" args\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitc("init", "-q", "-b", "main")
	write("pkgs")
	gitc("add", ".")
	gitc("commit", "-q", "-m", "v1")
	gitc("tag", "v1")
	write("pkgs-next")
	gitc("commit", "-q", "-am", "v2")
	gitc("tag", "v2")
	out, stderr, code := strataCheck(t, "--from", "git:"+repo+"#v1", "--to", repo+"#v2", "exa/htop")
	if code != 1 || !strings.Contains(out, "renamed           exa → eza") || !strings.Contains(out, "use eza/htop") {
		t.Errorf("exit %d:\n%s\n%s", code, out, stderr)
	}
	// Revisions are the tags' commits.
	v1 := gitc("rev-parse", "v1")
	if !strings.Contains(out, "from git:"+repo+"#v1 ("+v1[:12]+")") {
		t.Errorf("output lacks the v1 commit %s:\n%s", v1[:12], out)
	}
}

// serve --check-on-start logs the images built before whose packages the
// package source renamed or removed.
func TestServeCheckOnStart(t *testing.T) {
	store := t.TempDir()
	s := startServer(t, serverOpts{storage: store})
	if resp, body := rawGet(t, s.Addr, "/v2/exa/htop/manifests/latest"); resp.StatusCode != 200 {
		t.Fatalf("exa/htop: %d %s", resp.StatusCode, body)
	}
	next := startServer(t, serverOpts{storage: store, source: []string{"--pkgs-path", filepath.Join(repoRoot, "testdata", "pkgs-next")},
		args: []string{"--check-on-start"}})
	deadline := time.Now().Add(2 * time.Minute)
	for len(next.logRecords("check on start")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no check on start summary:\n%s", next.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	recs := next.logRecords("check on start: a built image's package no longer builds")
	if len(recs) != 1 || recs[0]["image"] != "exa/htop" || recs[0]["package"] != "exa" || recs[0]["change"] != "renamed" ||
		recs[0]["replacement"] != "eza" || recs[0]["suggestion"] != "eza/htop" {
		t.Errorf("records %v", recs)
	}
	sum := next.logRecords("check on start")[0]
	if sum["images"] != float64(1) || sum["brokenImages"] != float64(1) || sum["renamed"] != float64(1) {
		t.Errorf("summary %v", sum)
	}
}

// A flake as the source to bump to.
func TestCheckFlake(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, time.Minute, "cp", "-r", filepath.Join(repoRoot, "testdata", "pkgs"), filepath.Join(repoRoot, "testdata", "pkgs-next"), dir)
	flake := `{
  description = "the next offline package set as a flake";
  outputs = { self }: {
    legacyPackages.x86_64-linux = import ./pkgs-next { system = "x86_64-linux"; };
  };
}
`
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(flake), 0o644); err != nil {
		t.Fatal(err)
	}
	gitc := gitIn(t, dir)
	gitc("init", "-q", "-b", "main")
	gitc("add", ".")
	gitc("commit", "-q", "-m", "flake")
	out, stderr, code := strataCheck(t, "--from", "testdata/pkgs", "--to", "git+file://"+dir, "exa/htop/telnet")
	for _, want := range []string{
		"to   git+file://" + dir + " (" + gitc("rev-parse", "HEAD")[:12] + ")",
		"renamed           exa → eza 0.10.1",
		"removed           telnet: 'telnet' has been removed from nixpkgs, as it was unmaintained",
		"version           htop 3.2.2 → 3.3.0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code != 1 {
		t.Errorf("exit %d, want 1\n%s\n%s", code, out, stderr)
	}
}

// A channel tarball (channel:URL; a file:// URL here, as there is no
// network) as the source to bump to.
func TestCheckChannelTarball(t *testing.T) {
	dir := t.TempDir()
	top := filepath.Join(dir, "nixexprs")
	if err := os.MkdirAll(top, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, time.Minute, "cp", "-r", filepath.Join(repoRoot, "testdata", "pkgs"), filepath.Join(repoRoot, "testdata", "pkgs-next"), top)
	if err := os.WriteFile(filepath.Join(top, "default.nix"), []byte("args: import ./pkgs-next args\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(dir, "nixexprs.tar.gz")
	mustRun(t, time.Minute, "tar", "-C", dir, "-czf", tarball, "nixexprs")
	out, stderr, code := strataCheck(t, "--from", "testdata/pkgs", "--to", "channel:file://"+tarball, "exa")
	if code != 1 || !strings.Contains(out, "renamed           exa → eza 0.10.1") || !strings.Contains(out, "to   channel:file://"+tarball) {
		t.Errorf("exit %d:\n%s\n%s", code, out, stderr)
	}
}
