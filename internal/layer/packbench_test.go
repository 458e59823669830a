package layer

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks and the memory check. Targets (see the task brief):
//
//	peak heap while packing any layer < 128 MiB
//	strata throughput ≥ 0.9 × `tar -c --sort=name | pigz -6 -p N`
//
// Run them with
//
//	STRATA_BENCH=1 go test -run TestPackMemory -bench 'Pack' -benchtime 3x ./internal/layer/
//
// BenchmarkPackVsPigz packs a generated ~250 MB store, or the store paths
// named by STRATA_PACK_PATHS (comma-separated names or /nix/store paths;
// default: all) in the store directory STRATA_PACK_DIR (e.g. /nix/store, or
// DIR/nix/store for a fake store under DIR).

const maxPeakHeap = 128 << 20

var benchEnabled = os.Getenv("STRATA_BENCH") == "1"

// benchStores caches generated stores per size for the whole test binary.
var benchStores struct {
	sync.Mutex
	dir   string
	trees map[int64]benchTree
}

type benchTree struct {
	root    string
	paths   []string
	tarSize int64
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchStores.dir != "" {
		makeWritable(benchStores.dir)
		os.RemoveAll(benchStores.dir)
	}
	os.Exit(code)
}

// generatedStore returns a generated store of about size bytes.
func generatedStore(tb testing.TB, size int64) benchTree {
	benchStores.Lock()
	defer benchStores.Unlock()
	if t, ok := benchStores.trees[size]; ok {
		return t
	}
	if benchStores.dir == "" {
		d, err := os.MkdirTemp("", "strata-layer-bench-")
		if err != nil {
			tb.Fatal(err)
		}
		benchStores.dir = d
		benchStores.trees = make(map[int64]benchTree)
	}
	root := filepath.Join(benchStores.dir, strconv.FormatInt(size, 10))
	paths := genStore(tb, root, size, uint64(size))
	t := benchTree{root: root, paths: paths, tarSize: tarSize(tb, root, paths)}
	benchStores.trees[size] = t
	return t
}

// storeFromEnv returns the store named by STRATA_PACK_DIR and
// STRATA_PACK_PATHS, if set.
func storeFromEnv(tb testing.TB) (benchTree, bool) {
	dir := os.Getenv("STRATA_PACK_DIR")
	if dir == "" {
		return benchTree{}, false
	}
	dir = filepath.Clean(dir)
	root, ok := strings.CutSuffix(dir, StoreDir)
	if !ok {
		tb.Fatalf("STRATA_PACK_DIR %s does not end in %s", dir, StoreDir)
	}
	var names []string
	if env := os.Getenv("STRATA_PACK_PATHS"); env != "" {
		names = strings.Split(env, ",")
	} else {
		ents, err := os.ReadDir(dir)
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") {
				names = append(names, e.Name())
			}
		}
	}
	var paths []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		paths = append(paths, StoreDir+"/"+filepath.Base(n))
	}
	return benchTree{root: root, paths: paths, tarSize: tarSize(tb, root, paths)}, true
}

type countWriter struct{ n atomic.Int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

func tarSize(tb testing.TB, root string, paths []string) int64 {
	var c countWriter
	if err := WriteStorePaths(context.Background(), &c, paths, Options{Root: root}); err != nil {
		tb.Fatal(err)
	}
	return c.n.Load()
}

// peakHeap runs f while sampling the heap and returns the largest
// HeapInuse seen.
func peakHeap(f func()) uint64 {
	runtime.GC()
	var peak atomic.Uint64
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > peak.Load() {
			peak.Store(ms.HeapInuse)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	})
	f()
	close(done)
	wg.Wait()
	sample()
	return peak.Load()
}

func packTree(tb testing.TB, t benchTree, c Compression, dst io.Writer) Desc {
	d, err := Pack(context.Background(), dst, c, 0, func(w io.Writer) error {
		return WriteStorePaths(context.Background(), w, t.paths, Options{Root: t.root})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// TestPackMemory packs a generated ~100 MB store and checks the peak heap.
func TestPackMemory(t *testing.T) {
	if !benchEnabled {
		t.Skip("set STRATA_BENCH=1 to run")
	}
	tree := generatedStore(t, 100<<20)
	for _, c := range []Compression{Gzip, Zstd} {
		var d Desc
		peak := peakHeap(func() { d = packTree(t, tree, c, io.Discard) })
		t.Logf("%s: %d MB tar → %d MB, peak HeapInuse %.1f MiB", c, tree.tarSize>>20, d.Size>>20, float64(peak)/(1<<20))
		if peak > maxPeakHeap {
			t.Errorf("%s: peak HeapInuse %d MiB, want < %d MiB", c, peak>>20, maxPeakHeap>>20)
		}
	}
}

// BenchmarkPack packs a generated ~100 MB store; bytes are tar bytes.
func BenchmarkPack(b *testing.B) {
	tree := generatedStore(b, 100<<20)
	for _, c := range []Compression{Gzip, Zstd} {
		b.Run(string(c), func(b *testing.B) {
			b.SetBytes(tree.tarSize)
			var peak uint64
			var size int64
			b.ResetTimer()
			for range b.N {
				peak = max(peak, peakHeap(func() { size = packTree(b, tree, c, io.Discard).Size }))
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MB")
			b.ReportMetric(float64(size)/float64(tree.tarSize), "comp_ratio")
			if peak > maxPeakHeap {
				b.Errorf("peak HeapInuse %d MiB, want < %d MiB", peak>>20, maxPeakHeap>>20)
			}
		})
	}
}

// BenchmarkPackVsPigz compares Pack (gzip, default level 6) with
// `tar -c --sort=name | pigz -6 -p GOMAXPROCS` on the same store paths, page
// cache warm, and reports both throughputs (MB/s of tar) and their ratio.
func BenchmarkPackVsPigz(b *testing.B) {
	tree, ok := storeFromEnv(b)
	if !ok {
		if !benchEnabled {
			b.Skip("set STRATA_PACK_DIR or STRATA_BENCH=1 to run")
		}
		tree = generatedStore(b, 250<<20)
	}
	for _, tool := range []string{"tar", "pigz", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed", tool)
		}
	}
	procs := runtime.GOMAXPROCS(0)
	runPigz := peerPipeline(b, tree, fmt.Sprintf("pigz -6 -p %d", procs))
	packTree(b, tree, Gzip, io.Discard) // warm the page cache

	var strataTime, pigzTime time.Duration
	var peak uint64
	var strataSize, pigzSize int64
	b.SetBytes(tree.tarSize)
	b.ResetTimer()
	for range b.N {
		peak = max(peak, peakHeap(func() {
			start := time.Now()
			strataSize = packTree(b, tree, Gzip, io.Discard).Size
			strataTime += time.Since(start)
		}))
		start := time.Now()
		pigzSize = runPigz()
		pigzTime += time.Since(start)
	}
	b.StopTimer()
	mb := float64(tree.tarSize) * float64(b.N) / 1e6
	strataMBps, pigzMBps := mb/strataTime.Seconds(), mb/pigzTime.Seconds()
	b.ReportMetric(strataMBps, "strata_MBps")
	b.ReportMetric(pigzMBps, "pigz_MBps")
	b.ReportMetric(strataMBps/pigzMBps, "ratio")
	b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MB")
	b.ReportMetric(float64(strataSize)/float64(tree.tarSize), "strata_comp")
	b.ReportMetric(float64(pigzSize)/float64(tree.tarSize), "pigz_comp")
	b.Logf("%d store paths, %.1f MB tar, GOMAXPROCS %d: strata %.1f MB/s, tar|pigz -6 -p %d %.1f MB/s (ratio %.2f), peak heap %.1f MiB",
		len(tree.paths), float64(tree.tarSize)/1e6, procs, strataMBps, procs, pigzMBps, strataMBps/pigzMBps, float64(peak)/(1<<20))
	if peak > maxPeakHeap {
		b.Errorf("peak HeapInuse %d MiB, want < %d MiB", peak>>20, maxPeakHeap>>20)
	}
}

// BenchmarkPackVsZstd compares Pack (zstd, DefaultZstdLevel) with
// `tar -c --sort=name | zstd -T0 -LEVEL` on the same store paths, page
// cache warm: throughputs (MB/s of tar), their ratio and both sizes.
func BenchmarkPackVsZstd(b *testing.B) {
	tree, ok := storeFromEnv(b)
	if !ok {
		if !benchEnabled {
			b.Skip("set STRATA_PACK_DIR or STRATA_BENCH=1 to run")
		}
		tree = generatedStore(b, 250<<20)
	}
	for _, tool := range []string{"tar", "zstd", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s is not installed: run scripts/deps.sh bench", tool)
		}
	}
	runPeer := peerPipeline(b, tree, fmt.Sprintf("zstd -q -T0 -%d -c", DefaultZstdLevel))
	packTree(b, tree, Zstd, io.Discard) // warm the page cache

	var strataTime, peerTime time.Duration
	var strataSize, peerSize int64
	b.SetBytes(tree.tarSize)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		strataSize = packTree(b, tree, Zstd, io.Discard).Size
		strataTime += time.Since(start)
		start = time.Now()
		peerSize = runPeer()
		peerTime += time.Since(start)
	}
	b.StopTimer()
	mb := float64(tree.tarSize) * float64(b.N) / 1e6
	strataMBps, peerMBps := mb/strataTime.Seconds(), mb/peerTime.Seconds()
	b.ReportMetric(strataMBps, "strata_MBps")
	b.ReportMetric(peerMBps, "zstd_MBps")
	b.ReportMetric(strataMBps/peerMBps, "ratio")
	b.ReportMetric(float64(strataSize)/float64(tree.tarSize), "strata_comp")
	b.ReportMetric(float64(peerSize)/float64(tree.tarSize), "zstd_comp")
	b.Logf("%d store paths, %.1f MB tar: strata zstd-%d %.1f MB/s, tar|zstd -T0 -%d %.1f MB/s (ratio %.2f); sizes %.1f / %.1f MB (ratio %.3f)",
		len(tree.paths), float64(tree.tarSize)/1e6, DefaultZstdLevel, strataMBps, DefaultZstdLevel, peerMBps, strataMBps/peerMBps,
		float64(strataSize)/1e6, float64(peerSize)/1e6, float64(strataSize)/float64(peerSize))
}

// BenchmarkWriteStorePaths writes the tar of a generated ~100 MB store (page
// cache warm) without compressing it: the cost of reading, hashing files
// whose size collides with another's, and tar framing.
func BenchmarkWriteStorePaths(b *testing.B) {
	if !benchEnabled {
		b.Skip("set STRATA_BENCH=1 to run")
	}
	tree := generatedStore(b, 100<<20)
	for _, ignore := range []bool{false, true} {
		b.Run(fmt.Sprintf("IgnoreHardLinks=%v", ignore), func(b *testing.B) {
			b.SetBytes(tree.tarSize)
			for range b.N {
				if err := WriteStorePaths(context.Background(), io.Discard, tree.paths, Options{Root: tree.root, IgnoreHardLinks: ignore}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// peerPipeline returns a function that runs `tar -c --sort=name ... |
// COMPRESS` on tree's store paths, as the peers of the packing benchmarks
// do, and returns the size of its output.
func peerPipeline(b *testing.B, tree benchTree, compress string) func() int64 {
	dir := tree.root
	if dir == "" {
		dir = "/"
	}
	args := []string{"-c", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@1", "-C", dir}
	for _, p := range tree.paths {
		args = append(args, strings.TrimPrefix(p, "/"))
	}
	var quoted []string
	for _, a := range args {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	script := "set -o pipefail; tar " + strings.Join(quoted, " ") + " | " + compress
	return func() int64 {
		var c countWriter
		cmd := exec.Command("bash", "-c", script)
		cmd.Stdout = &c
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("tar | %s: %v", compress, err)
		}
		return c.n.Load()
	}
}
