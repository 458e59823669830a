package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildpacks: a run image with a non-root user 1000:1000 and the stack label.
func TestBuildpacksRunImage(t *testing.T) {
	s := sharedServer(t)
	p := newPodman(t)
	ref := s.Addr + "/buildpacks/shell"
	p.must(5*time.Minute, "pull", "--tls-verify=false", ref)
	out := p.must(2*time.Minute, "run", "--rm", ref, "sh", "-c", "id -u; id -g; grep :1000: /etc/passwd; grep :1000: /etc/group")
	lines := strings.Fields(out)
	if len(lines) < 4 || lines[0] != "1000" || lines[1] != "1000" {
		t.Fatalf("buildpacks image runs as %q, want uid and gid 1000", out)
	}
	label := p.must(time.Minute, "inspect", "--format", `{{index .Labels "io.buildpacks.stack.id"}}`, ref)
	if strings.TrimSpace(label) == "" || strings.Contains(label, "no value") {
		t.Fatalf("no io.buildpacks.stack.id label: %q", label)
	}
}

// With a git repository as the source, the tag selects a ref.
func TestGitSourceTagSelectsRef(t *testing.T) {
	repo := t.TempDir()
	gitc := gitIn(t, repo)
	mustRun(t, time.Minute, "cp", "-rT", filepath.Join(repoRoot, "testdata", "pkgs"), repo)
	gitc("init", "-q", "-b", "main")
	gitc("add", ".")
	gitc("commit", "-q", "-m", "v1")
	gitc("tag", "v1")
	first := gitc("rev-parse", "HEAD")
	// The second revision changes hello's greeting.
	nixFile := filepath.Join(repo, "default.nix")
	src, err := os.ReadFile(nixFile)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(src), "Hello, world!", "Hello from v2!", 1)
	if changed == string(src) {
		t.Fatal("the package set has no greeting to change")
	}
	if err := os.WriteFile(nixFile, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	gitc("commit", "-q", "-am", "v2")

	s := startServer(t, serverOpts{source: []string{"--pkgs-repo", repo}})
	latest, _, _ := manifestDigest(t, s.Addr, "hello", "latest")
	v1, _, _ := manifestDigest(t, s.Addr, "hello", "v1")
	byCommit, _, _ := manifestDigest(t, s.Addr, "hello", first)
	if latest == v1 {
		t.Fatal("latest and v1 give the same image, though hello changed in between")
	}
	if v1 != byCommit {
		t.Fatalf("tag v1 (%s) and its commit (%s) give different images", v1, byCommit)
	}
	p := newPodman(t)
	if out := p.must(5*time.Minute, "run", "--rm", "--tls-verify=false", s.Addr+"/hello:v1", "hello"); !strings.Contains(out, greeting) {
		t.Fatalf("hello:v1 says %q", out)
	}
	if out := p.must(5*time.Minute, "run", "--rm", "--tls-verify=false", s.Addr+"/hello:latest", "hello"); !strings.Contains(out, "Hello from v2!") {
		t.Fatalf("hello:latest says %q", out)
	}
	resp, body := rawGet(t, s.Addr, "/v2/hello/manifests/nosuchref")
	if resp.StatusCode != 404 || !strings.Contains(string(body), "nosuchref") {
		t.Fatalf("unknown ref: %d %s", resp.StatusCode, body)
	}
}

// gitIn returns a function that runs git in dir with a fixed identity and
// dates.
func gitIn(t *testing.T, dir string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t",
			"GIT_AUTHOR_DATE=2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2000-01-01T00:00:00Z")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
}

// A flake reference as the package source: its legacyPackages are the set.
func TestFlakeSource(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, time.Minute, "cp", "-rT", filepath.Join(repoRoot, "testdata", "pkgs"), filepath.Join(dir, "pkgs"))
	flake := `{
  description = "the offline package set as a flake";
  outputs = { self }: {
    legacyPackages.x86_64-linux = import ./pkgs { system = "x86_64-linux"; };
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

	s := startServer(t, serverOpts{source: []string{"--flake", "git+file://" + dir}})
	fromFlake, _, _ := manifestDigest(t, s.Addr, "shell/hello", "latest")
	// The same package set through a flake and through a path is the same
	// image: the source changes how Nix is asked, not what is built.
	fromPath, _, _ := manifestDigest(t, sharedServer(t).Addr, "shell/hello", "latest")
	if fromFlake != fromPath {
		t.Fatalf("shell/hello from the flake is %s, from the path %s", fromFlake, fromPath)
	}
	p := newPodman(t)
	if out := p.must(5*time.Minute, "run", "--rm", "--tls-verify=false", s.Addr+"/shell/hello", "hello"); !strings.Contains(out, greeting) {
		t.Fatalf("hello from the flake says %q", out)
	}
	resp, body := rawGet(t, s.Addr, "/v2/doesnotexist/manifests/latest")
	if resp.StatusCode != 404 || !strings.Contains(string(body), "doesnotexist") {
		t.Fatalf("unknown package in the flake: %d %s", resp.StatusCode, body)
	}
}
