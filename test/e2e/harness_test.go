// Package e2e drives a real strata binary with real clients: skopeo, podman,
// crane. Every tool comes from scripts/deps.sh; a missing tool fails the test
// with the command that installs it.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"strata/internal/nix"
)

var (
	strataBin string
	repoRoot  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-e2e-")
	if err != nil {
		panic(err)
	}
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	strataBin = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-race", "-o", strataBin, "./cmd/strata")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building strata:", err)
		os.Exit(1)
	}
	// The tests run nix-build themselves too (strata passes these on its
	// own calls): no binary cache, and as root on a machine whose Nix has
	// no nix.conf and no 'nixbld' group, builds without build users.
	nixConf := "substituters =" + rootNixConf()
	if v := os.Getenv("NIX_CONFIG"); v != "" {
		nixConf = v + "\n" + nixConf
	}
	os.Setenv("NIX_CONFIG", nixConf)
	code := m.Run()
	for i := len(atExit) - 1; i >= 0; i-- {
		atExit[i]()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// need returns the path of a tool or fails the test.
func need(t testing.TB, tool string) string {
	t.Helper()
	if p, err := exec.LookPath(tool); err == nil {
		return p
	}
	gobin := filepath.Join(goEnv("GOPATH"), "bin", tool)
	if _, err := os.Stat(gobin); err == nil {
		return gobin
	}
	t.Fatalf("%s is not installed: run scripts/deps.sh (make test does)", tool)
	return ""
}

func goEnv(k string) string {
	out, _ := exec.Command("go", "env", k).Output()
	return strings.TrimSpace(string(out))
}

// server is a running strata serve.
type server struct {
	Addr    string
	Storage string
	cmd     *exec.Cmd
	mu      sync.Mutex
	log     bytes.Buffer
}

type serverOpts struct {
	// envOnly passes the package set and storage through Nixery's
	// variables instead of flags.
	envOnly bool
	// source replaces --pkgs-path with other source flags.
	source  []string
	storage string
	args    []string
	env     []string
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startServer(t testing.TB, o serverOpts) *server {
	t.Helper()
	if o.storage == "" {
		o.storage = t.TempDir()
	}
	s := &server{Addr: freeAddr(t), Storage: o.storage}
	pkgs := filepath.Join(repoRoot, "testdata", "pkgs")
	args := []string{"serve", "--listen", s.Addr, "--log-level", "debug"}
	env := append(os.Environ(), o.env...)
	if o.envOnly {
		env = append(env, "NIXERY_PKGS_PATH="+pkgs, "STORAGE_PATH="+o.storage, "NIXERY_STORAGE_BACKEND=filesystem")
	} else {
		if o.source == nil {
			o.source = []string{"--pkgs-path", pkgs}
		}
		args = append(append(args, o.source...), "--storage-path", o.storage)
	}
	s.cmd = exec.Command(strataBin, append(args, o.args...)...)
	s.cmd.Env = env
	pr, pw := io.Pipe()
	s.cmd.Stderr = pw
	s.cmd.Stdout = pw
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.log.Write(sc.Bytes())
			s.log.WriteByte('\n')
			s.mu.Unlock()
		}
	}()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); pw.Close(); close(done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case <-done:
			time.Sleep(100 * time.Millisecond) // let the log reader drain
			t.Fatalf("strata serve exited: %v\n%s", s.cmd.ProcessState, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("strata serve did not answer on %s: %v\n%s", s.Addr, err, s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// logRecords returns the JSON log records whose msg is msg.
func (s *server) logRecords(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s.Log(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// run runs a command with a time limit and returns its combined output.
func run(t testing.TB, limit time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustRun(t testing.TB, limit time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := run(t, limit, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// podman runs podman with the settings that work on these machines and a
// storage of the test's own.
type podman struct {
	t    testing.TB
	bin  string
	base []string
	env  []string
}

func newPodman(t testing.TB) *podman {
	t.Helper()
	bin := need(t, "podman")
	need(t, "runc")
	// podman refuses a runroot longer than 50 characters: keep it short.
	dir, err := os.MkdirTemp("", "pm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &podman{t: t, bin: bin, env: []string{"CONTAINERS_CONF=" + conf}}
	// Everything podman keeps is under dir: storage, run state and its
	// tmpdir (by default the shared /run/libpod), so podmans of concurrent
	// tests never touch each other's state. vfs storage has no mounts, so
	// removing dir cleans up fully.
	p.base = []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--tmpdir", filepath.Join(dir, "tmp"), "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager=cgroupfs"}
	return p
}

func (p *podman) run(limit time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append(append([]string(nil), p.base...), args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *podman) must(limit time.Duration, args ...string) string {
	p.t.Helper()
	out, err := p.run(limit, args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// rootNixConf is the Nix setting strata passes when Nix has no build users
// (nix.NoBuildUsers): without it Nix warns on every call, or refuses to
// build. Empty elsewhere.
func rootNixConf() string {
	if nix.NoBuildUsers() {
		return "\nbuild-users-group ="
	}
	return ""
}
