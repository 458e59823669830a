package e2e

import (
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The Debian package set (scripts/debian-pkgs.sh): real python3, git and
// curl for amd64 and arm64, served and built by strata.

var (
	debianOnce sync.Once
	debianDir  string
	debianErr  error
)

// debianPkgs prepares the Debian package set in .cache/debian-pkgs (as
// make debian-pkgs does; cached after the first run) and returns it.
func debianPkgs(t *testing.T) string {
	t.Helper()
	debianOnce.Do(func() {
		dir := filepath.Join(repoRoot, ".cache", "debian-pkgs")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot, "scripts", "debian-pkgs.sh"), dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			debianErr = fmt.Errorf("scripts/debian-pkgs.sh %s: %v\n%s", dir, err, out)
			return
		}
		debianDir = dir
	})
	if debianErr != nil {
		t.Fatal(debianErr)
	}
	return debianDir
}

// TestDebianServe serves the set for linux/amd64 and linux/arm64 (one
// server: the images share their layers).
func TestDebianServe(t *testing.T) {
	s := startServer(t, serverOpts{source: []string{"--pkgs-path", debianPkgs(t)}, args: multiArgs})
	t.Run("python3", func(t *testing.T) { testDebianPython3(t, s) })
	t.Run("git-curl", func(t *testing.T) { testDebianGitCurl(t, s) })
	t.Run("arm64-python3", func(t *testing.T) { testDebianArm64Python3(t, s) })
}

// testDebianPython3: python3 with its standard library and the CA bundle,
// in podman; its SBOM names the Debian packages.
func testDebianPython3(t *testing.T, s *server) {
	pm := newPodman(t)
	out := pm.must(10*time.Minute, "run", "--rm", "--tls-verify=false", s.Addr+"/shell/python3", "python3", "-c",
		"import ssl, sqlite3, json, http.server, venv, os; print(len(ssl.create_default_context().get_ca_certs())); print(os.environ['CURL_CA_BUNDLE']); print(sqlite3.sqlite_version)")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 {
		t.Fatalf("python3 printed %q", out)
	}
	lines = lines[len(lines)-3:]
	n, err := strconv.Atoi(lines[0])
	if err != nil || n <= 50 {
		t.Fatalf("python3 loaded %q CA certificates, want more than 50 (output %q)", lines[0], out)
	}
	if !strings.HasPrefix(lines[1], "/nix/store/") || !strings.HasSuffix(lines[1], "/etc/ssl/certs/ca-bundle.crt") {
		t.Errorf("CURL_CA_BUNDLE = %q: want the bundle the CA package declares", lines[1])
	}
	if !strings.HasPrefix(lines[2], "3.") {
		t.Errorf("sqlite version %q", lines[2])
	}

	rc := regctl(t, s.Addr)
	doc := rc("artifact", "get", "--subject", s.Addr+"/shell/python3", "--platform", "linux/amd64", "--filter-artifact-type", "application/spdx+json")
	var d struct {
		Packages []struct {
			Name         string `json:"name"`
			ExternalRefs []struct {
				Locator string `json:"referenceLocator"`
			} `json:"externalRefs"`
		} `json:"packages"`
	}
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatalf("sbom: %v\n%s", err, doc)
	}
	purls := map[string]bool{}
	for _, p := range d.Packages {
		for _, r := range p.ExternalRefs {
			name, _, _ := strings.Cut(r.Locator, "@")
			purls[name] = true
			if strings.HasPrefix(r.Locator, "pkg:deb/") && !strings.HasSuffix(r.Locator, "?arch=amd64") && !strings.HasSuffix(r.Locator, "?arch=all") {
				t.Errorf("purl %s: want ?arch=amd64 (or all)", r.Locator)
			}
		}
	}
	for _, want := range []string{"pkg:deb/debian/python3.11", "pkg:deb/debian/libpython3.11-stdlib", "pkg:deb/debian/libc6", "pkg:deb/debian/libssl3", "pkg:deb/debian/ca-certificates"} {
		if !purls[want] {
			t.Errorf("the SBOM has no %s@...: %v", want, purls)
		}
	}
}

// testDebianGitCurl: the git/curl image runs both; git finds its helpers
// through the GIT_EXEC_PATH its package declares.
func testDebianGitCurl(t *testing.T, s *server) {
	pm := newPodman(t)
	ref := s.Addr + "/git/curl"
	if out := pm.must(10*time.Minute, "run", "--rm", "--tls-verify=false", ref, "git", "--version"); !strings.Contains(out, "git version 2.") {
		t.Errorf("git --version: %q", out)
	}
	out := pm.must(time.Minute, "run", "--rm", "--tls-verify=false", ref, "git", "--exec-path")
	if p := strings.TrimSpace(out); !strings.HasPrefix(p, "/nix/store/") || !strings.HasSuffix(p, "/lib/git-core") {
		t.Errorf("git --exec-path: %q, want the store path's lib/git-core", out)
	}
	if out := pm.must(time.Minute, "run", "--rm", "--tls-verify=false", ref, "curl", "--version"); !strings.Contains(out, "curl 7.") || !strings.Contains(out, "https") {
		t.Errorf("curl --version: %q", out)
	}
}

// exportImage unpacks an image's filesystem into a new directory.
func exportImage(t *testing.T, ref string) string {
	t.Helper()
	crane := need(t, "crane")
	root := t.TempDir()
	export := exec.Command(crane, "export", "--insecure", ref, "-")
	untar := exec.Command("tar", "-x", "-C", root)
	pipe, err := export.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	var stderr, tarErr strings.Builder
	export.Stderr, untar.Stderr = &stderr, &tarErr
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := export.Run(); err != nil {
		t.Fatalf("crane export %s: %v %s", ref, err, stderr.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("tar: %v %s", err, tarErr.String())
	}
	return root
}

// withQemu copies qemu-aarch64-static into root, to run arm64 programs
// chrooted there: they see nothing of the host.
func withQemu(t *testing.T, root string) {
	t.Helper()
	raw, err := os.ReadFile(need(t, "qemu-aarch64-static"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "qemu-aarch64-static"), raw, 0o755); err != nil {
		t.Fatal(err)
	}
}

// testDebianArm64Python3: the arm64 python3 is an aarch64 binary and runs
// under qemu, chrooted in the unpacked image.
func testDebianArm64Python3(t *testing.T, s *server) {
	root := exportImage(t, s.Addr+"/arm64/shell/python3")
	bin := resolveIn(t, root, "/bin/python3")
	f, err := elf.Open(filepath.Join(root, bin))
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	machine := f.Machine
	f.Close()
	if machine != elf.EM_AARCH64 {
		t.Fatalf("%s is %v, want aarch64", bin, machine)
	}
	withQemu(t, root)
	out := mustRun(t, 5*time.Minute, "chroot", root, "/qemu-aarch64-static", "/bin/python3", "-c",
		"import platform, ssl, sqlite3, json; print(platform.machine())")
	if strings.TrimSpace(out) != "aarch64" {
		t.Fatalf("platform.machine() under qemu: %q, want aarch64", out)
	}
}

// buildApp builds examples/python-app for one platform into an OCI layout.
func buildApp(t *testing.T, platform, cacheDir, out string) buildOut {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, strataBin, "build", "-f", filepath.Join("examples", "python-app", "image.yaml"),
		"--pkgs-path", debianPkgs(t), "--platform", platform, "--output", "oci:"+out, "--cache-dir", cacheDir, "--json")
	cmd.Dir = repoRoot
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("strata build python-app %s: %v\n%s", platform, err, stderr.String())
	}
	var res buildOut
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		t.Fatalf("strata build --json: %v\n%s", err, stdout.String())
	}
	return res
}

// getJSON polls url until it answers 2xx with a JSON object, for at most
// limit, and returns the object.
func getJSON(t *testing.T, url string, limit time.Duration, alive func() error) map[string]any {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		if err := alive(); err != nil {
			t.Fatalf("the app stopped before answering: %v", err)
		}
		resp, err := http.Get(url)
		if err != nil {
			last = err.Error()
			time.Sleep(500 * time.Millisecond)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %q %s", url, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("GET %s: not JSON: %v: %s", url, err, body)
		}
		return v
	}
	t.Fatalf("GET %s: no answer in %v: %s", url, limit, last)
	return nil
}

// TestDebianPythonApp: examples/python-app built for linux/amd64 runs in
// podman with the port from PORT and answers JSON; the same description
// builds the same image on a fresh cache.
func TestDebianPythonApp(t *testing.T) {
	// podman names an image pulled from oci:DIR after DIR, which must be
	// lower-case (t.TempDir has the test's name in it).
	tmp, err := os.MkdirTemp("", "pyapp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	out := filepath.Join(tmp, "app")
	res := buildApp(t, "linux/amd64", t.TempDir(), out)
	if again := buildApp(t, "linux/amd64", t.TempDir(), filepath.Join(t.TempDir(), "again")); again.Digest != res.Digest {
		t.Errorf("two fresh caches: %s and %s, want the same digest", res.Digest, again.Digest)
	}

	pm := newPodman(t)
	addr := freeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	name := "python-app-" + port
	// The host's network, on loopback only.
	pm.must(5*time.Minute, "run", "-d", "--name", name, "--network", "host", "-e", "PORT="+port, "-e", "HOST=127.0.0.1", "oci:"+out+":latest")
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := pm.run(time.Minute, "logs", name)
			t.Logf("app log:\n%s", logs)
		}
		_, _ = pm.run(time.Minute, "rm", "-f", name)
	})
	alive := func() error {
		st, err := pm.run(time.Minute, "inspect", "--format", "{{.State.Running}}", name)
		if err == nil && strings.TrimSpace(st) != "true" {
			return fmt.Errorf("not running (%s)", strings.TrimSpace(st))
		}
		return nil
	}
	v := getJSON(t, "http://"+addr+"/", 2*time.Minute, alive)
	if v["message"] == nil || v["machine"] != "x86_64" || !strings.HasPrefix(fmt.Sprint(v["python"]), "3.11") {
		t.Errorf("GET /: %v", v)
	}
	if h := getJSON(t, "http://"+addr+"/healthz", time.Minute, alive); h["status"] != "ok" {
		t.Errorf("GET /healthz: %v", h)
	}
	user := pm.must(time.Minute, "exec", name, "python3", "-c", "import os; print(os.getuid())")
	if strings.TrimSpace(user) != "1000" {
		t.Errorf("the app runs as uid %q, want 1000", user)
	}

	// python3 finds its standard library by whatever name it is run: the
	// image's /bin links, PATH lookup of either name, the store path
	// itself (the image's /bin is a link to python3's bin, so
	// /bin/python3.11 is the binary itself, not a link into the store).
	const probe = "import encodings, json, ssl, sys, os; print(sys.prefix); print(os.path.realpath(sys.executable))"
	// The last two lines (podman may warn before them).
	lastTwo := func(out string) (string, string) {
		l := strings.Split(strings.TrimSpace(out), "\n")
		if len(l) < 2 {
			return "", ""
		}
		return l[len(l)-2], l[len(l)-1]
	}
	out2 := pm.must(time.Minute, "exec", name, "/bin/python3.11", "-c", probe)
	prefix, real := lastTwo(out2)
	if !strings.HasPrefix(prefix, "/nix/store/") || !strings.HasPrefix(real, prefix+"/") {
		t.Fatalf("/bin/python3.11: %q, want its store path as sys.prefix and its real path in it", out2)
	}
	for _, prog := range []string{"/bin/python3", "python3", "python3.11", real} {
		got, err := pm.run(time.Minute, "exec", name, prog, "-c", probe)
		if p, _ := lastTwo(got); err != nil || p != prefix {
			t.Errorf("%s: %q %v, want sys.prefix %s", prog, got, err, prefix)
		}
	}
}

// TestDebianPythonAppArm64: the linux/arm64 build (made on this amd64 host,
// nothing emulated) starts under qemu, chrooted in the unpacked image, and
// answers HTTP.
func TestDebianPythonAppArm64(t *testing.T) {
	out := filepath.Join(t.TempDir(), "app")
	buildApp(t, "linux/arm64", t.TempDir(), out)
	bundle := filepath.Join(t.TempDir(), "bundle")
	mustRun(t, 5*time.Minute, need(t, "umoci"), "unpack", "--image", out+":latest", bundle)
	root := filepath.Join(bundle, "rootfs")
	withQemu(t, root)
	addr := freeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "chroot", root, "/qemu-aarch64-static", "/bin/python3", "/app/app.py")
	cmd.Env = []string{"PATH=/bin", "PORT=" + port, "HOST=127.0.0.1", "PYTHONDONTWRITEBYTECODE=1"}
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("app log:\n%s", log.String())
		}
	})
	alive := func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("exited: %v", err)
		default:
			return nil
		}
	}
	v := getJSON(t, "http://"+addr+"/", 4*time.Minute, alive)
	if v["machine"] != "aarch64" {
		t.Errorf("GET / under qemu: %v, want machine aarch64", v)
	}
}
