package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"strata/test/registries"
)

// TestRegistryBench measures strata serve's pull hot path next to nginx
// serving the same bytes as static files, with wrk (2 threads, 16
// connections, 3 s per run), every server measured in each of five rounds:
// manifests by digest and by tag, of a pushed repository and of an
// on-demand image, and a 1 MiB blob; CNCF distribution (docker-registry)
// serves the pushed image too, for reference. It reports the median of the
// per-round ratios to nginx and strata's peak RSS under the load, and fails
// below 0.6 × nginx for a manifest, 0.9 × for the blob, or at 200 MB RSS.
// Gated: STRATA_BENCH=1 (make bench).
func TestRegistryBench(t *testing.T) {
	if os.Getenv("STRATA_BENCH") != "1" {
		t.Skip("set STRATA_BENCH=1 (make bench)")
	}
	wrk := need(t, "wrk")
	nginx := need(t, "nginx")

	// strata without the race detector, as deployed.
	bin := filepath.Join(t.TempDir(), "strata")
	build := exec.Command("go", "build", "-o", bin, "./cmd/strata")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	logPath := filepath.Join(t.TempDir(), "strata.log")
	level := "info" // the access log on, as deployed
	if l := os.Getenv("STRATA_BENCH_LOG_LEVEL"); l != "" {
		level = l
	}
	s := startServerBin(t, bin, logPath, "--log-level", level)

	img, err := random.Image(1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, _, layers := digestsOf(t, img)
	blob := layers[0]
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	pushedDigest, _ := img.Digest()
	ls, _ := img.Layers()
	rc, _ := ls[0].Compressed()
	blobData, _ := io.ReadAll(rc)

	pushImage(t, s.Addr+"/pushed/bench:v1", img)
	dist := registries.StartDistribution(t, registries.DistributionOptions{})
	pushImage(t, dist.Host+"/bench:v1", img)

	// An on-demand image, built once before the measurement.
	ociAccept := "application/vnd.oci.image.manifest.v1+json"
	odDigest, odType, odBody := manifestDigest(t, s.Addr, "hello", "latest", ociAccept)

	// nginx: the same bytes as static files.
	root := t.TempDir()
	files := map[string][]byte{
		"v2/bench/manifests/v1": raw, "v2/bench/blobs/" + blob: blobData,
		"v2/bench/manifests/ondemand": odBody,
	}
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nginxAddr := freeAddr(t)
	conf := filepath.Join(root, "nginx.conf")
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the workers must read the test's private temporary directory
	}
	if err := os.WriteFile(conf, []byte(user+fmt.Sprintf(`daemon off;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path %[1]s/tmp;
  proxy_temp_path %[1]s/tmp;
  fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp;
  scgi_temp_path %[1]s/tmp;
  server {
    listen %[2]s;
    root %[1]s;
    location /v2/bench/manifests/ { default_type %[3]s; }
    location /v2/bench/blobs/ { default_type application/octet-stream; }
  }
}
`, root, nginxAddr, mt)), 0o644); err != nil {
		t.Fatal(err)
	}
	ng := exec.Command(nginx, "-c", conf, "-p", root)
	ngOut, _ := os.Create(filepath.Join(root, "nginx.out"))
	ng.Stdout, ng.Stderr = ngOut, ngOut
	if err := ng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ng.Process.Kill(); _ = ng.Wait() })
	registries.WaitReady(t, "http://"+nginxAddr+"/v2/bench/manifests/v1", 10*time.Second)

	// Each case: strata's URL, nginx's URL of the same bytes, the goal,
	// and distribution's URL when it serves the same thing.
	accept := "Accept: " + string(mt)
	odAccept := "Accept: " + odType
	st, ngx, dh := "http://"+s.Addr, "http://"+nginxAddr, "http://"+dist.Host
	type benchCase struct {
		name, strata, nginx, dist, header string
		goal                              float64
		blob                              bool
	}
	cases := []benchCase{
		{"manifest by digest, pushed", st + "/v2/pushed/bench/manifests/" + pushedDigest.String(), ngx + "/v2/bench/manifests/v1", dh + "/v2/bench/manifests/" + pushedDigest.String(), accept, 0.6, false},
		{"manifest by tag, pushed", st + "/v2/pushed/bench/manifests/v1", ngx + "/v2/bench/manifests/v1", dh + "/v2/bench/manifests/v1", accept, 0.6, false},
		{"manifest by digest, on-demand", st + "/v2/hello/manifests/" + odDigest, ngx + "/v2/bench/manifests/ondemand", "", odAccept, 0.6, false},
		{"manifest by tag, on-demand", st + "/v2/hello/manifests/latest", ngx + "/v2/bench/manifests/ondemand", "", odAccept, 0.6, false},
		{"blob 1 MiB", st + "/v2/pushed/bench/blobs/" + blob, ngx + "/v2/bench/blobs/" + blob, dh + "/v2/bench/blobs/" + blob, "", 0.9, true},
	}
	// Five rounds, each measuring every server in turn; the ratio to nginx
	// is taken per round (measured seconds apart), then the median.
	const rounds = 5
	type series struct{ strata, nginx, dist, ratio []float64 }
	res := make([]series, len(cases))
	var peakRSS int64
	for i := 0; i < rounds; i++ {
		for j, c := range cases {
			pick := func(rps, bps float64) float64 {
				if c.blob {
					return bps
				}
				return rps
			}
			sv := pick(runWrk(t, wrk, c.strata, c.header))
			peakRSS = max(peakRSS, rssOf(t, s.cmd.Process.Pid))
			nv := pick(runWrk(t, wrk, c.nginx, c.header))
			res[j].strata = append(res[j].strata, sv)
			res[j].nginx = append(res[j].nginx, nv)
			res[j].ratio = append(res[j].ratio, sv/nv)
			if c.dist != "" {
				res[j].dist = append(res[j].dist, pick(runWrk(t, wrk, c.dist, c.header)))
			}
		}
	}
	unit := func(c benchCase, v float64) string {
		if c.blob {
			return fmt.Sprintf("%.0f MB/s", v/1e6)
		}
		return fmt.Sprintf("%.0f req/s", v)
	}
	fmt.Printf("bench: registry pull hot path (wrk -t2 -c16 -d3s, median of %d rounds; ratio = median of per-round strata/nginx)\n", rounds)
	for j, c := range cases {
		r := medianOf(res[j].ratio)
		d := ""
		if len(res[j].dist) > 0 {
			d = ", distribution " + unit(c, medianOf(res[j].dist))
		}
		fmt.Printf("bench: %-30s strata %s, nginx %s%s; strata/nginx %.2f (goal >= %.1f)\n", c.name, unit(c, medianOf(res[j].strata)), unit(c, medianOf(res[j].nginx)), d, r, c.goal)
		if r < c.goal {
			t.Errorf("%s: strata/nginx %.2f is below %.1f", c.name, r, c.goal)
		}
	}
	fmt.Printf("bench: strata peak RSS under load %.0f MB (goal < 200 MB)\n", float64(peakRSS)/1e6)
	if peakRSS >= 200e6 {
		t.Errorf("strata's peak RSS under load is %.0f MB, at or above 200 MB", float64(peakRSS)/1e6)
	}
}

// rssOf returns the peak resident set size (VmHWM) of pid, in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

func medianOf(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTransfer = regexp.MustCompile(`Transfer/sec:\s+([0-9.]+)([KMG]?B)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// runWrk runs wrk for 3 s and returns requests/s and bytes/s.
func runWrk(t *testing.T, wrk, url, header string) (float64, float64) {
	t.Helper()
	args := []string{"-t2", "-c16", "-d3s", "--latency"}
	if header != "" {
		args = append(args, "-H", header)
	}
	out := mustRun(t, time.Minute, wrk, append(args, url)...)
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		t.Fatalf("wrk %s: %s error responses\n%s", url, m[1], out)
	}
	m := wrkRPS.FindStringSubmatch(out)
	tm := wrkTransfer.FindStringSubmatch(out)
	if m == nil || tm == nil {
		t.Fatalf("wrk output:\n%s", out)
	}
	rps, _ := strconv.ParseFloat(m[1], 64)
	bps, _ := strconv.ParseFloat(tm[1], 64)
	switch strings.TrimSuffix(tm[2], "B") {
	case "K":
		bps *= 1 << 10
	case "M":
		bps *= 1 << 20
	case "G":
		bps *= 1 << 30
	}
	return rps, bps
}
