package nix

import (
	"bytes"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// requireNix fails the test when Nix or the static busybox binaries of the
// offline package set are missing; under -short it skips instead.
func requireNix(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("Nix-backed test skipped in -short mode")
	}
	for _, tool := range []string{"nix-build", "nix-instantiate", "nix-store", "nix", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found on PATH: run scripts/deps.sh (it installs nix-bin): %v", tool, err)
		}
	}
	for _, bb := range []string{defaultBusyboxAmd64, defaultBusyboxArm64} {
		if _, err := os.Stat(bb); err != nil {
			t.Fatalf("static busybox %s missing: run scripts/deps.sh: %v", bb, err)
		}
	}
}

// pkgsDir is the repository's offline package set.
func pkgsDir(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "pkgs")
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// testLogger logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newDriver is a driver on cfg (the offline set when no source is given)
// that records the processes it starts.
func newDriver(t testing.TB, cfg Config) (*Driver, *procLog) {
	t.Helper()
	if cfg.PkgsPath == "" && cfg.PkgsRepo == "" && cfg.Channel == "" && cfg.Flake == "" {
		cfg.PkgsPath = pkgsDir(t)
	}
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pl := &procLog{}
	d.testHookStarted = pl.add
	return d, pl
}

type proc struct {
	name string
	pid  int
}

// procLog records started processes.
type procLog struct {
	mu    sync.Mutex
	procs []proc
}

func (l *procLog) add(name string, pid int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.procs = append(l.procs, proc{name, pid})
}

func (l *procLog) named(name string) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for _, p := range l.procs {
		if p.name == name {
			out = append(out, p.pid)
		}
	}
	return out
}

func (l *procLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.procs)
}

// procsInGroup lists live processes whose process group is pgid.
func procsInGroup(t testing.TB, pgid int) []string {
	t.Helper()
	var out []string
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		// state ppid pgrp ...
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			out = append(out, strconv.Itoa(pid)+" "+procCmdline(pid))
		}
	}
	return out
}

// procsMatching lists live processes whose command line contains s.
func procsMatching(t testing.TB, s string) []string {
	t.Helper()
	var out []string
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i >= 0 && strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z") {
				continue
			}
		}
		if c := procCmdline(pid); strings.Contains(c, s) {
			out = append(out, strconv.Itoa(pid)+" "+c)
		}
	}
	return out
}

func procCmdline(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// copyTree copies the regular files and directories of src into dst.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
