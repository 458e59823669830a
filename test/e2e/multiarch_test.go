package e2e

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var multiArgs = []string{"--platforms", "linux/amd64,linux/arm64"}

type indexManifest struct {
	MediaType string `json:"mediaType"`
	Manifests []struct {
		Digest   string `json:"digest"`
		Platform struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
		} `json:"platform"`
	} `json:"manifests"`
	Config struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Annotations map[string]string `json:"annotations"`
}

func craneJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	crane := need(t, "crane")
	out := mustRun(t, 5*time.Minute, crane, append(args, "--insecure")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("crane %v: %v\n%s", args, err, out)
	}
}

func TestMultiArchIndex(t *testing.T) {
	a := startServer(t, serverOpts{args: multiArgs})
	var idx indexManifest
	craneJSON(t, &idx, "manifest", a.Addr+"/shell/hello")
	if idx.MediaType != "application/vnd.oci.image.index.v1+json" || len(idx.Manifests) != 2 {
		t.Fatalf("want an OCI index of two images, got %+v", idx)
	}
	if idx.Annotations["org.opencontainers.image.title"] == "" {
		t.Fatalf("index without annotations: %+v", idx.Annotations)
	}
	for i, want := range []string{"amd64", "arm64"} {
		m := idx.Manifests[i]
		if m.Platform.OS != "linux" || m.Platform.Architecture != want {
			t.Fatalf("entry %d: platform %+v, want linux/%s", i, m.Platform, want)
		}
		var cfg struct {
			Architecture string `json:"architecture"`
			OS           string `json:"os"`
		}
		craneJSON(t, &cfg, "config", a.Addr+"/shell/hello@"+m.Digest)
		if cfg.Architecture != want || cfg.OS != "linux" {
			t.Fatalf("child %s config: %+v, want %s", m.Digest, cfg, want)
		}
	}
	// A second, fresh server gives the same digests.
	b := startServer(t, serverOpts{args: multiArgs})
	var idx2 indexManifest
	craneJSON(t, &idx2, "manifest", b.Addr+"/shell/hello")
	d1, _, _ := manifestDigest(t, a.Addr, "shell/hello", "latest")
	d2, _, _ := manifestDigest(t, b.Addr, "shell/hello", "latest")
	if d1 != d2 || idx.Manifests[1].Digest != idx2.Manifests[1].Digest {
		t.Fatalf("index digests differ across servers: %s %s", d1, d2)
	}

	// A client that accepts only Docker schema 2 gets a Docker manifest list.
	if _, ct, body := manifestDigest(t, a.Addr, "shell/hello", "latest",
		"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json"); ct != "application/vnd.docker.distribution.manifest.list.v2+json" || !strings.Contains(string(body), `"arm64"`) {
		t.Fatalf("docker-only client got %s: %s", ct, body)
	}

	// podman on this x86_64 machine picks and runs the amd64 image.
	p := newPodman(t)
	out := p.must(5*time.Minute, "run", "--rm", "--tls-verify=false", a.Addr+"/shell/hello", "hello")
	if !strings.Contains(out, greeting) {
		t.Fatalf("podman run: %q", out)
	}

	// arm64/NAME is a single arm64 manifest.
	var single indexManifest
	craneJSON(t, &single, "manifest", a.Addr+"/arm64/hello")
	if single.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("arm64/hello: %s, want a single manifest", single.MediaType)
	}
	var cfg struct{ Architecture string }
	craneJSON(t, &cfg, "config", a.Addr+"/arm64/hello")
	if cfg.Architecture != "arm64" {
		t.Fatalf("arm64/hello is %s", cfg.Architecture)
	}
}

func TestArm64ImageHoldsArm64Binaries(t *testing.T) {
	s := startServer(t, serverOpts{args: multiArgs})
	crane := need(t, "crane")
	qemu := need(t, "qemu-aarch64-static")
	root := t.TempDir()
	export := exec.Command(crane, "export", "--insecure", s.Addr+"/arm64/shell/hello", "-")
	untar := exec.Command("tar", "-x", "-C", root)
	pipe, err := export.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	var stderr, tarErr bytes.Buffer
	export.Stderr, untar.Stderr = &stderr, &tarErr
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := export.Run(); err != nil {
		t.Fatalf("crane export: %v %s", err, stderr.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("tar: %v %s", err, tarErr.String())
	}
	elves, links := 0, 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			// Every symlink resolves inside the image (to the arm64 closure),
			// never to the host.
			links++
			target := resolveIn(t, root, strings.TrimPrefix(p, root))
			if _, err := os.Stat(filepath.Join(root, target)); err != nil {
				t.Errorf("symlink %s dangles in the image: %v", strings.TrimPrefix(p, root), err)
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := elf.Open(p)
		if err != nil {
			return nil // not an ELF file
		}
		defer f.Close()
		elves++
		if f.Machine != elf.EM_AARCH64 {
			t.Errorf("%s is %v, want aarch64", strings.TrimPrefix(p, root), f.Machine)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if elves == 0 || links == 0 {
		t.Fatalf("the arm64 image holds %d ELF files and %d symlinks", elves, links)
	}
	if env := resolveIn(t, root, "/usr/bin/env"); !strings.HasPrefix(env, "/nix/store/") {
		t.Fatalf("/usr/bin/env resolves to %s", env)
	}
	// Run hello through its interpreter under qemu, chrooted in the image.
	script, err := os.ReadFile(filepath.Join(root, resolveIn(t, root, "/bin/hello")))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(script), "\n")
	interp := strings.TrimPrefix(first, "#!")
	qemuCopy := filepath.Join(root, "qemu-aarch64-static")
	raw, err := os.ReadFile(qemu)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(qemuCopy, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, time.Minute, "chroot", root, "/qemu-aarch64-static", interp, "/bin/hello")
	if !strings.Contains(out, greeting) {
		t.Fatalf("arm64 hello under qemu: %q", out)
	}
}

// resolveIn resolves p inside root, following absolute symlinks relative to
// root.
func resolveIn(t *testing.T, root, p string) string {
	t.Helper()
	parts := strings.Split(strings.Trim(p, "/"), "/")
	cur := "/"
	for hops := 0; len(parts) > 0 && hops < 40; {
		next := filepath.Join(cur, parts[0])
		parts = parts[1:]
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			t.Fatalf("resolve %s: %v", p, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			hops++
			target, _ := os.Readlink(filepath.Join(root, next))
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			parts = append(strings.Split(strings.Trim(target, "/"), "/"), parts...)
			cur = "/"
			continue
		}
		cur = next
	}
	return cur
}

func TestArm64OnlyFailure(t *testing.T) {
	s := startServer(t, serverOpts{args: multiArgs})
	resp, body := rawGet(t, s.Addr, "/v2/armonlyfail/manifests/latest")
	if resp.StatusCode < 400 {
		t.Fatalf("index of a package that fails on arm64: %d", resp.StatusCode)
	}
	msg := string(body)
	if !strings.Contains(msg, "arm64") || !strings.Contains(msg, "armOnlyFail") {
		t.Fatalf("error does not name arm64 and the package: %s", msg)
	}
	// Nothing partial was stored under the name: asking again fails again.
	resp, _ = rawGet(t, s.Addr, "/v2/armonlyfail/manifests/latest")
	if resp.StatusCode < 400 {
		t.Fatalf("second request: %d", resp.StatusCode)
	}
	// The amd64 image alone still works.
	var m indexManifest
	craneJSON(t, &m, "manifest", s.Addr+"/amd64/armonlyfail")
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("amd64/armonlyfail: %+v", m)
	}
}
