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

// TestRegistryBench measures manifest GETs per second and blob GET
// throughput of strata serve next to CNCF distribution (docker-registry)
// serving the same image and nginx serving the same manifest and blob as
// static files, with wrk (2 threads, 16 connections, 5 s per run) in one
// run. Gated: STRATA_BENCH=1 (make bench). It fails when strata is below
// half of nginx's manifest rate or 0.8 of its blob throughput.
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
	ls, _ := img.Layers()
	rc, _ := ls[0].Compressed()
	blobData, _ := io.ReadAll(rc)

	pushImage(t, s.Addr+"/pushed/bench:v1", img)
	dist := registries.StartDistribution(t, registries.DistributionOptions{})
	pushImage(t, dist.Host+"/bench:v1", img)

	// nginx: the same bytes as static files.
	root := t.TempDir()
	for p, data := range map[string][]byte{"v2/bench/manifests/v1": raw, "v2/bench/blobs/" + blob: blobData} {
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

	accept := "Accept: " + string(mt)
	type target struct{ name, manifest, blob string }
	targets := []target{
		{"nginx", "http://" + nginxAddr + "/v2/bench/manifests/v1", "http://" + nginxAddr + "/v2/bench/blobs/" + blob},
		{"strata", "http://" + s.Addr + "/v2/pushed/bench/manifests/v1", "http://" + s.Addr + "/v2/pushed/bench/blobs/" + blob},
		{"distribution", "http://" + dist.Host + "/v2/bench/manifests/v1", "http://" + dist.Host + "/v2/bench/blobs/" + blob},
	}
	// Three rounds, each measuring every server in turn; the medians are
	// reported, as the machines are noisy.
	const rounds = 3
	rpsAll := map[string][]float64{}
	bpsAll := map[string][]float64{}
	for i := 0; i < rounds; i++ {
		for _, tg := range targets {
			r, _ := runWrk(t, wrk, tg.manifest, accept)
			_, b := runWrk(t, wrk, tg.blob, "")
			rpsAll[tg.name] = append(rpsAll[tg.name], r)
			bpsAll[tg.name] = append(bpsAll[tg.name], b)
		}
	}
	rps, bps := map[string]float64{}, map[string]float64{}
	for _, tg := range targets {
		rps[tg.name], bps[tg.name] = medianOf(rpsAll[tg.name]), medianOf(bpsAll[tg.name])
	}
	// The ratio to nginx is taken per round (measured seconds apart), then
	// the median of the rounds.
	var mr, br []float64
	for i := 0; i < rounds; i++ {
		mr = append(mr, rpsAll["strata"][i]/rpsAll["nginx"][i])
		br = append(br, bpsAll["strata"][i]/bpsAll["nginx"][i])
	}
	manifestRatio, blobRatio := medianOf(mr), medianOf(br)
	fmt.Printf("bench: manifest GET req/s per round: strata %.0f, distribution %.0f, nginx %.0f\n", rpsAll["strata"], rpsAll["distribution"], rpsAll["nginx"])
	fmt.Printf("bench: blob GET MB/s per round: strata %.0f, distribution %.0f, nginx %.0f\n", scale(bpsAll["strata"]), scale(bpsAll["distribution"]), scale(bpsAll["nginx"]))
	fmt.Printf("bench: manifest GET (wrk -t2 -c16 -d5s, median of %d): strata %.0f req/s, distribution %.0f req/s, nginx %.0f req/s; strata/nginx %.2f (median of per-round ratios; target >= 0.50), strata/distribution %.1fx\n",
		rounds, rps["strata"], rps["distribution"], rps["nginx"], manifestRatio, rps["strata"]/rps["distribution"])
	fmt.Printf("bench: blob GET 1 MiB (wrk -t2 -c16 -d5s, median of %d): strata %.0f MB/s, distribution %.0f MB/s, nginx %.0f MB/s; strata/nginx %.2f (median of per-round ratios; target >= 0.80), strata/distribution %.1fx\n",
		rounds, bps["strata"]/1e6, bps["distribution"]/1e6, bps["nginx"]/1e6, blobRatio, bps["strata"]/bps["distribution"])
	if manifestRatio < 0.5 {
		t.Errorf("manifest GETs: strata %.0f/s is below half of nginx's %.0f/s", rps["strata"], rps["nginx"])
	}
	if blobRatio < 0.8 {
		t.Errorf("blob GETs: strata %.0f MB/s is below 0.8 of nginx's %.0f MB/s", bps["strata"]/1e6, bps["nginx"]/1e6)
	}
}

func medianOf(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func scale(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x / 1e6
	}
	return out
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTransfer = regexp.MustCompile(`Transfer/sec:\s+([0-9.]+)([KMG]?B)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// runWrk runs wrk for 5 s and returns requests/s and bytes/s.
func runWrk(t *testing.T, wrk, url, header string) (float64, float64) {
	t.Helper()
	args := []string{"-t2", "-c16", "-d5s", "--latency"}
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
