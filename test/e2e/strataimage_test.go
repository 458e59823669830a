package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// strata's own image, built by strata build from examples/strata-image,
// runs strata in podman as its unprivileged user.
func TestStrataImage(t *testing.T) {
	root := t.TempDir()
	// The example takes the binary from ../../bin/strata, relative to itself.
	ex := filepath.Join(root, "examples", "strata-image")
	if err := os.MkdirAll(ex, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(repoRoot, "examples", "strata-image", "image.nix"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ex, "image.nix"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	static := filepath.Join(root, "bin", "strata")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X strata/internal/cli.Version=e2e-image", "-o", static, "./cmd/strata")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	archive := filepath.Join(root, "strata.tar")
	mustRun(t, 5*time.Minute, strataBin, "build", "--pkgs-path", filepath.Join(repoRoot, "testdata", "pkgs"),
		"--cache-dir", filepath.Join(root, "cache"), "-f", filepath.Join(ex, "image.nix"),
		"--output", "docker-archive:"+archive+":e2e")

	p := newPodman(t)
	p.must(2*time.Minute, "load", "-i", archive)
	out := p.must(time.Minute, "run", "--rm", "localhost/strata:e2e", "version")
	if strings.TrimSpace(out) != "strata e2e-image" {
		t.Fatalf("strata version in its image: %q", out)
	}
	out = p.must(time.Minute, "run", "--rm", "--entrypoint", "/bin/sh", "localhost/strata:e2e", "-c", "id -u; test -f /etc/ssl/certs/ca-bundle.crt && echo certs")
	if f := strings.Fields(out); len(f) != 2 || f[0] != "65532" || f[1] != "certs" {
		t.Fatalf("user and certificates in strata's image: %q", out)
	}
	title := p.must(time.Minute, "inspect", "--format", `{{index .Labels "org.opencontainers.image.title"}}`, "localhost/strata:e2e")
	if strings.TrimSpace(title) != "strata" {
		t.Fatalf("title label %q", title)
	}
}
