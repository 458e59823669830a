package publish

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata/test/registries"
)

// BenchmarkCopyVsPeers times a registry-to-registry copy of an 8 × 8 MiB
// image by strata (the library), skopeo and crane, each into a fresh
// docker-registry so nothing is skipped or mounted, several
// rounds in rotating order, and reports medians and ratios. It runs only with
// STRATA_BENCH=1 (rounds: STRATA_BENCH_ROUNDS, default 5):
//
//	STRATA_BENCH=1 go test -run '^$' -bench BenchmarkCopyVsPeers -benchtime 1x ./internal/publish
func BenchmarkCopyVsPeers(b *testing.B) {
	if os.Getenv("STRATA_BENCH") != "1" {
		b.Skip("set STRATA_BENCH=1 to run the copy benchmark against skopeo and crane")
	}
	rounds := 5
	if s := os.Getenv("STRATA_BENCH_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	skopeo := registries.Binary(b, "skopeo", "/usr/bin/skopeo")
	crane := registries.GoBin(b, "crane")
	src := registries.StartDistribution(b, registries.DistributionOptions{})
	img, err := random.Image(8<<20, 8)
	if err != nil {
		b.Fatal(err)
	}
	srcRef := src.Host + "/bench/src:v1"
	ref, _ := name.ParseReference(srcRef)
	if err := remote.Write(ref, img); err != nil {
		b.Fatal(err)
	}
	policy := filepath.Join(b.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		b.Fatal(err)
	}
	// The strata binary, as a user runs it: each tool pays its own process
	// start.
	strataBin := filepath.Join(b.TempDir(), "strata")
	build := exec.Command("go", "build", "-o", strataBin, "strata/cmd/strata")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building strata: %v\n%s", err, out)
	}
	tools := []struct {
		name string
		run  func(dst string) error
	}{
		{"strata", func(d string) error {
			out, err := exec.Command(strataBin, "copy", srcRef, d).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}},
		{"skopeo", func(d string) error {
			out, err := exec.Command(skopeo, "copy", "--quiet", "--policy", policy, "--src-tls-verify=false", "--dest-tls-verify=false",
				"docker://"+srcRef, "docker://"+d).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}},
		{"crane", func(d string) error {
			out, err := exec.Command(crane, "copy", "--insecure", srcRef, d).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}},
	}
	times := map[string][]time.Duration{}
	b.ResetTimer()
	for b.Loop() {
		for r := 0; r < rounds; r++ {
			for i := range tools {
				tool := tools[(i+r)%len(tools)]
				// A fresh registry per run: skopeo remembers where blobs
				// are (blob-info cache) and would mount them from the
				// repositories of earlier rounds.
				b.StopTimer()
				dst := registries.StartDistribution(b, registries.DistributionOptions{})
				b.StartTimer()
				d := fmt.Sprintf("%s/bench/%s:v1", dst.Host, tool.name)
				start := time.Now()
				if err := tool.run(d); err != nil {
					b.Fatalf("%s: %v", tool.name, err)
				}
				times[tool.name] = append(times[tool.name], time.Since(start))
			}
		}
	}
	b.StopTimer()
	med := map[string]time.Duration{}
	for n, ts := range times {
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		med[n] = ts[len(ts)/2]
		b.ReportMetric(med[n].Seconds(), n+"-median-s")
	}
	best := min(med["skopeo"], med["crane"])
	b.ReportMetric(med["strata"].Seconds()/best.Seconds(), "strata/best-peer")
	b.Logf("64 MiB image (8 layers), %d rounds: strata %v, skopeo %v, crane %v; strata/skopeo %.2f, strata/crane %.2f (target: strata/faster peer <= 1.00)",
		rounds, med["strata"], med["skopeo"], med["crane"],
		med["strata"].Seconds()/med["skopeo"].Seconds(), med["strata"].Seconds()/med["crane"].Seconds())
}
