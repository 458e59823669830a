package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// goldenFile holds the digests of shell/hello as strata serves it from the
// bundled package set, and the inputs they were recorded with.
var goldenFile = filepath.Join("testdata", "golden", "shell-hello.json")

// readmeDigest finds the digest the README gives for make run's shell/hello.
var readmeDigest = regexp.MustCompile("`shell/hello` that `make run` serves is\\s+```\\s+(sha256:[0-9a-f]{64})")

type goldenImage struct {
	Manifest string   `json:"manifest"`
	Config   string   `json:"config"`
	Layers   []string `json:"layers"`
}

type goldenDigests struct {
	// Inputs are the sha256 of every input that is not in the repository:
	// the static busybox binaries the bundled package set is built from.
	Inputs    map[string]string      `json:"inputs"`
	Index     string                 `json:"index"`
	Platforms map[string]goldenImage `json:"platforms"`
}

// TestGoldenDigests builds shell/hello for linux/amd64 and linux/arm64 from
// the bundled package set and compares the index, manifest, config and
// layer digests with testdata/golden/shell-hello.json: the same inputs give
// the same digests on every machine. The server runs under an unusual
// umask, time zone, locale and TMPDIR; a second one, with the defaults of
// `make run` (the host platform only), must serve the same amd64 image.
// STRATA_GOLDEN_UPDATE=1 re-records the file.
func TestGoldenDigests(t *testing.T) {
	need(t, "nix-build")
	inputs := map[string]string{
		"busybox-amd64": fileSHA256(t, "/bin/busybox"),
		"busybox-arm64": fileSHA256(t, "/opt/strata/busybox-arm64/bin/busybox"),
	}
	tmp := t.TempDir()
	old := syscall.Umask(0o077) // inherited by the server, restored at once
	s := startServer(t, serverOpts{
		args: []string{"--platforms", "linux/amd64,linux/arm64"},
		env:  []string{"TZ=Pacific/Chatham", "LC_ALL=C.UTF-8", "LANG=tr_TR.UTF-8", "TMPDIR=" + tmp, "SOURCE_DATE_EPOCH="},
	})
	syscall.Umask(old)
	got := goldenDigests{Inputs: inputs, Platforms: map[string]goldenImage{}}
	var idx struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest   string `json:"digest"`
			Platform struct {
				OS           string `json:"os"`
				Architecture string `json:"architecture"`
			} `json:"platform"`
		} `json:"manifests"`
	}
	got.Index = getManifest(t, s.Addr, "shell/hello", "latest", &idx)
	if len(idx.Manifests) != 2 {
		t.Fatalf("shell/hello index has %d manifests, want 2", len(idx.Manifests))
	}
	for _, m := range idx.Manifests {
		got.Platforms[m.Platform.OS+"/"+m.Platform.Architecture] = imageDigests(t, s.Addr, m.Digest)
	}

	// `make run`: the host platform only, defaults everywhere.
	plain := startServer(t, serverOpts{env: []string{"TZ=UTC", "LC_ALL=C"}})
	var one struct {
		MediaType string `json:"mediaType"`
	}
	d := getManifest(t, plain.Addr, "shell/hello", "latest", &one)
	if d != got.Platforms["linux/amd64"].Manifest {
		t.Errorf("make run's shell/hello is %s (%s), the multi-arch amd64 image is %s", d, one.MediaType, got.Platforms["linux/amd64"].Manifest)
	}

	// The README's check, as a user runs it against make run.
	var inspect struct{ Digest string }
	out := mustRun(t, 2*time.Minute, need(t, "skopeo"), "inspect", "--tls-verify=false", "docker://"+plain.Addr+"/shell/hello")
	if err := json.Unmarshal([]byte(out), &inspect); err != nil || inspect.Digest != d {
		t.Errorf("skopeo inspect: Digest %q (%v), served %s", inspect.Digest, err, d)
	}

	path := filepath.Join(repoRoot, goldenFile)
	if os.Getenv("STRATA_GOLDEN_UPDATE") == "1" {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s", path)
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (record it with STRATA_GOLDEN_UPDATE=1)", err)
	}
	var want goldenDigests
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%s: %v", goldenFile, err)
	}
	for k, v := range want.Inputs {
		if inputs[k] != v {
			t.Fatalf("%s differs on this machine (sha256 %s, the goldens were recorded with %s): every store path of the bundled set, and so every digest, changes with it; a new Debian busybox-static moves the goldens, nothing else may", k, inputs[k], v)
		}
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := readmeDigest.FindSubmatch(readme)
	if m == nil || string(m[1]) != want.Platforms["linux/amd64"].Manifest {
		t.Errorf("README.md gives %q as make run's shell/hello digest, the golden is %s", m, want.Platforms["linux/amd64"].Manifest)
	}
	if got.Index != want.Index {
		t.Errorf("shell/hello index = %s, golden %s", got.Index, want.Index)
	}
	for p, w := range want.Platforms {
		g := got.Platforms[p]
		if g.Manifest != w.Manifest || g.Config != w.Config || fmt.Sprint(g.Layers) != fmt.Sprint(w.Layers) {
			t.Errorf("shell/hello %s:\n got  %+v\n want %+v", p, g, w)
		}
	}
	if len(got.Platforms) != len(want.Platforms) {
		t.Errorf("platforms %v, golden %v", got.Platforms, want.Platforms)
	}
}

// getManifest GETs a manifest with OCI media types accepted, decodes it
// into v and returns its Docker-Content-Digest.
func getManifest(t *testing.T, addr, repo, ref string, v any) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json")
	c := &http.Client{Timeout: 10 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s:%s: %s: %s", repo, ref, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s:%s: %v", repo, ref, err)
	}
	sum := sha256.Sum256(b)
	d := "sha256:" + hex.EncodeToString(sum[:])
	if h := resp.Header.Get("Docker-Content-Digest"); h != d {
		t.Fatalf("GET %s:%s: Docker-Content-Digest %s, body digest %s", repo, ref, h, d)
	}
	return d
}

func imageDigests(t *testing.T, addr, digest string) goldenImage {
	t.Helper()
	var m struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	g := goldenImage{Manifest: getManifest(t, addr, "shell/hello", digest, &m), Config: m.Config.Digest}
	for _, l := range m.Layers {
		g.Layers = append(g.Layers, l.Digest)
	}
	return g
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run scripts/deps.sh", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
