package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBuildRebuildSpeed (STRATA_BENCH=1, run by make bench) compares a warm
// rebuild after a one-package change with a cold build of the same image.
// The image is largeImage (a closure of over 200 MiB, so a cold build is
// dominated by packing) plus one small package: hello, then gnuMake. Each
// round starts from an empty cache: a cold build of the hello variant, then
// the gnuMake variant on that cache, which must pack only the small
// package's layer and the customisation layer. Nix has built both variants
// before the first round, so both timings hold only evaluation, layering,
// packing and assembly. It prints medians and their ratio; the target is a
// warm rebuild at least 5x faster. STRATA_BENCH_ROUNDS sets the rounds
// (default 5).
func TestBuildRebuildSpeed(t *testing.T) {
	if os.Getenv("STRATA_BENCH") != "1" {
		t.Skip("a benchmark: set STRATA_BENCH=1 (make bench)")
	}
	need(t, "nix-build")
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("STRATA_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	dir := t.TempDir()
	// The race detector of the test binary would dominate packing: time a
	// plain build of strata.
	bin := filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-o", bin, "./cmd/strata")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	desc := "name: rebuild-bench\npackages: [largeImage, %s]\n"
	v1, v2 := filepath.Join(dir, "v1.yaml"), filepath.Join(dir, "v2.yaml")
	writeFile(t, v1, strings.Replace(desc, "%s", "hello", 1))
	writeFile(t, v2, strings.Replace(desc, "%s", "gnuMake", 1))

	run := func(cache, file string) (time.Duration, buildOut) {
		t.Helper()
		cmd := exec.Command(bin, "build", "--pkgs-path", filepath.Join(repoRoot, "testdata", "pkgs"),
			"--cache-dir", cache, "-f", file, "--json")
		cmd.Dir = repoRoot
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		stdout, err := cmd.Output()
		d := time.Since(start)
		if err != nil {
			t.Fatalf("strata build %s: %v\n%s", file, err, stderr.String())
		}
		var out buildOut
		if err := json.Unmarshal(stdout, &out); err != nil {
			t.Fatal(err)
		}
		return d, out
	}
	// Warm-up: Nix builds both variants once.
	run(filepath.Join(dir, "warmup"), v1)
	run(filepath.Join(dir, "warmup"), v2)
	os.RemoveAll(filepath.Join(dir, "warmup"))

	var cold, warm []time.Duration
	var coldPacked, warmPacked, layers int
	for i := 0; i < rounds; i++ {
		cache := filepath.Join(dir, "cache"+strconv.Itoa(i))
		dc, oc := run(cache, v1)
		dw, ow := run(cache, v2)
		cold = append(cold, dc)
		warm = append(warm, dw)
		coldPacked, warmPacked = oc.LayersPacked, ow.LayersPacked
		layers = len(ow.Manifests[0].Layers)
		if ow.LayersPacked > 2 {
			t.Errorf("round %d: the rebuild after a one-package change packed %d layers, want at most 2", i, ow.LayersPacked)
		}
		os.RemoveAll(cache)
	}
	mc, mw := median(cold), median(warm)
	ratio := float64(mc) / float64(mw)
	t.Logf("rebuild after a one-package change: %d rounds, image of %d layers", rounds, layers)
	t.Logf("  cold build  median %8.3fs  (packed %d layers)  all %v", mc.Seconds(), coldPacked, cold)
	t.Logf("  warm rebuild median %8.3fs  (packed %d layers)  all %v", mw.Seconds(), warmPacked, warm)
	t.Logf("  ratio cold/warm %.1fx (target >= 5x)", ratio)
	if ratio < 5 {
		t.Errorf("a warm rebuild is only %.1fx faster than a cold build; want 5x", ratio)
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
