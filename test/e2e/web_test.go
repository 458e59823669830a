package e2e

import (
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromium returns the headless browser scripts/deps.sh installs, or fails
// the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run scripts/deps.sh (apt-get install -y chromium)")
	return ""
}

// runChromium runs headless Chromium on url with extra flags and returns
// its standard output (the DOM with --dump-dom).
func runChromium(t *testing.T, url string, extra ...string) string {
	t.Helper()
	bin := chromium(t)
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	args = append(append(args, extra...), url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// buildOneOfEach makes one successful build (hello) and one failing build
// (failingbuild) and returns the successful image's digest.
func buildOneOfEach(t *testing.T, s *server) string {
	t.Helper()
	digest, _, _ := manifestDigest(t, s.Addr, "hello", "latest")
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("hello: digest %q", digest)
	}
	resp, body := rawGet(t, s.Addr, "/v2/failingbuild/manifests/latest")
	if resp.StatusCode < 500 {
		t.Fatalf("failingbuild: %d %s, want a 5xx build failure", resp.StatusCode, body)
	}
	return digest
}

// The landing page, loaded in a real browser, shows the pull commands for
// this host, the successful build's digest, and the failure with the end
// of its Nix log, escaped once; and it renders to a real picture.
func TestWebPageInChromium(t *testing.T) {
	chromium(t)
	s := startServer(t, serverOpts{})
	digest := buildOneOfEach(t, s)
	url := "http://" + s.Addr + "/"

	dom := runChromium(t, url, "--dump-dom", "--virtual-time-budget=2000")
	for _, want := range []string{
		"podman pull --tls-verify=false " + s.Addr + "/shell/hello",
		"docker pull " + s.Addr + "/shell/hello",
		"linux/" + runtimeArch(),
		digest,
		// The pull-by-digest command of the built image.
		s.Addr + "/hello@" + digest,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Newest first: the failure comes before the success.
	iFail, iOK := strings.Index(dom, `class="name mono">failingbuild<`), strings.Index(dom, `class="name mono">hello<`)
	if iFail < 0 || iOK < 0 || iFail > iOK {
		t.Errorf("recent builds not newest first (failingbuild at %d, hello at %d)", iFail, iOK)
	}
	// The end of the Nix log, in a <pre>, as text: the serialised DOM
	// escapes only &, < and >, so a quote decoded from the server's
	// &#34; / &#39; shows as itself, and a double escape would show as
	// &amp;.
	m := regexp.MustCompile(`(?s)<pre class="log">(.*?)</pre>`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no Nix log on the page:\n%s", dom)
	}
	if !strings.Contains(m[1], "error: this build always fails") || !strings.Contains(m[1], "building '/nix/store/") {
		t.Errorf("the Nix log on the page lacks its last lines:\n%s", m[1])
	}
	if strings.Contains(dom, "&amp;#") || strings.Contains(dom, "&amp;lt;") {
		t.Error("the page escapes twice")
	}
	if !strings.Contains(dom, `(last log line: "error: this build always fails")`) {
		t.Error("the failure's error message is not on the page as text")
	}
	// The server escaped the quotes of the message and the log itself.
	_, raw := rawGet(t, s.Addr, "/")
	if !strings.Contains(string(raw), "&#34;error: this build always fails&#34;") || !strings.Contains(string(raw), "building &#39;/nix/store/") {
		t.Error("the server did not HTML-escape the error and the log")
	}

	// A screenshot: a real, non-blank picture of the page.
	shot := filepath.Join(t.TempDir(), "page.png")
	runChromium(t, url, "--screenshot="+shot, "--window-size=1200,1400", "--hide-scrollbars")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < 800 || b.Dy() < 600 {
		t.Fatalf("screenshot is %dx%d", b.Dx(), b.Dy())
	}
	colours := map[[3]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	if len(colours) < 16 {
		t.Fatalf("the screenshot has %d colours: a blank page?", len(colours))
	}
	if os.Getenv("STRATA_KEEP_SCREENSHOT") != "" {
		data, _ := os.ReadFile(shot)
		_ = os.WriteFile(os.Getenv("STRATA_KEEP_SCREENSHOT"), data, 0o644)
	}
}

func runtimeArch() string {
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		return "amd64"
	}
	return strings.TrimSpace(string(out))
}

// metricValue returns the value of the sample line that starts with
// series (name and labels exactly as exposed), or -1.
func metricValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// /metrics counts the builds, requests, layers and blob bytes; /readyz is
// 200 on a healthy server.
func TestMetricsAndReady(t *testing.T) {
	s := startServer(t, serverOpts{})
	_, _, body := manifestDigest(t, s.Addr, "hello", "latest", "application/vnd.oci.image.manifest.v1+json")
	var mf struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
	}
	if err := json.Unmarshal(body, &mf); err != nil || mf.Config.Digest == "" {
		t.Fatalf("manifest: %v %s", err, body)
	}
	resp, blob := rawGet(t, s.Addr, "/v2/hello/blobs/"+mf.Config.Digest)
	if resp.StatusCode != 200 || len(blob) == 0 {
		t.Fatalf("config blob: %d", resp.StatusCode)
	}
	if resp, body := rawGet(t, s.Addr, "/v2/failingbuild/manifests/latest"); resp.StatusCode < 500 {
		t.Fatalf("failingbuild: %d %s", resp.StatusCode, body)
	}
	if resp, _ := rawGet(t, s.Addr, "/v2/nosuchpackage/manifests/latest"); resp.StatusCode != 404 {
		t.Fatalf("unknown package: %d", resp.StatusCode)
	}

	code, m := httpGet(t, "http://"+s.Addr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, m)
	}
	for series, want := range map[string]float64{
		`strata_builds_started_total`:                                             3,
		`strata_builds_succeeded_total`:                                           1,
		`strata_builds_failed_total{kind="build_failed"}`:                         1,
		`strata_builds_failed_total{kind="unknown_package"}`:                      1,
		`strata_builds_failed_total{kind="timeout"}`:                              0,
		`strata_build_duration_seconds_count{result="success"}`:                   1,
		`strata_http_requests_total{code="500",endpoint="manifest",method="GET"}`: 1,
		`strata_http_requests_total{code="404",endpoint="manifest",method="GET"}`: 1,
		`strata_http_requests_total{code="200",endpoint="blob",method="GET"}`:     1,
		`strata_blob_bytes_served_total`:                                          float64(len(blob)),
	} {
		if got := metricValue(m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, series := range []string{
		`strata_http_requests_total{code="200",endpoint="manifest",method="GET"}`,
		`strata_http_request_duration_seconds_count{endpoint="manifest",method="GET"}`,
		`strata_layers_total{source="packed"}`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if got := metricValue(m, series); got < 1 {
			t.Errorf("%s = %v, want at least 1", series, got)
		}
	}
	if strings.Contains(m, "hello") || strings.Contains(m, "failingbuild") {
		t.Error("a repository name is a label value")
	}

	// A second image with the same layers takes them from the cache.
	manifestDigest(t, s.Addr, runtimeArch()+"/hello", "latest")
	_, m = httpGet(t, "http://"+s.Addr+"/metrics")
	if got := metricValue(m, `strata_layers_total{source="cached"}`); got < 1 {
		t.Errorf("no cached layers counted after a rebuild of the same packages: %v", got)
	}

	code, r := httpGet(t, "http://"+s.Addr+"/readyz")
	if code != 200 || r != "ready\n" {
		t.Fatalf("/readyz on a healthy server: %d %q", code, r)
	}
	if code, _ := httpGet(t, "http://"+s.Addr+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
}

// waitReady polls /readyz until it answers want, and returns the body.
func waitReady(t *testing.T, s *server, want int) string {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		code, body := httpGet(t, "http://"+s.Addr+"/readyz")
		if code == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still answers %d %q, want %d", code, body, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// /readyz answers 503 with the reason when storage breaks or the package
// set stops evaluating, while /healthz stays 200.
func TestReadyFailures(t *testing.T) {
	t.Run("storage", func(t *testing.T) {
		s := startServer(t, serverOpts{args: []string{"--ready-interval", "1s"}})
		waitReady(t, s, 200)
		// The storage directory replaced by a file: nothing can be
		// written or read.
		if err := os.RemoveAll(s.Storage); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.Storage, []byte("not a directory\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		body := waitReady(t, s, 503)
		if !strings.HasPrefix(body, "not ready\nstorage: ") {
			t.Errorf("503 body %q does not name storage", body)
		}
		if code, _ := httpGet(t, "http://"+s.Addr+"/healthz"); code != 200 {
			t.Errorf("/healthz: %d, want 200 (liveness)", code)
		}
	})
	t.Run("nix", func(t *testing.T) {
		pkgs := filepath.Join(t.TempDir(), "pkgs")
		mustRun(t, time.Minute, "cp", "-r", filepath.Join(repoRoot, "testdata", "pkgs"), pkgs)
		s := startServer(t, serverOpts{source: []string{"--pkgs-path", pkgs}, args: []string{"--ready-interval", "1s"}})
		waitReady(t, s, 200)
		def := filepath.Join(pkgs, "default.nix")
		good, err := os.ReadFile(def)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(def, []byte("{ system ? builtins.currentSystem, ... }: { this is not nix"), 0o644); err != nil {
			t.Fatal(err)
		}
		body := waitReady(t, s, 503)
		if !strings.Contains(body, "nix: the package set does not evaluate") {
			t.Errorf("503 body %q does not say the package set does not evaluate", body)
		}
		// Fixed again: ready again.
		if err := os.WriteFile(def, good, 0o644); err != nil {
			t.Fatal(err)
		}
		waitReady(t, s, 200)
	})
}
