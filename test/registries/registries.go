// Package registries starts real peer registries on 127.0.0.1 for tests:
// Debian's docker-registry (CNCF distribution 2.8), optionally with htpasswd
// Basic auth, with its access log captured so tests can assert which requests
// were made, and a reverse proxy in front of any registry that enforces the
// Bearer token flow, injects faults or limits request bodies.
//
// Every process and server is stopped at t.Cleanup. A test that needs
// docker-registry fails (never skips) when it is missing.
package registries

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("registries: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitReady polls url until it answers with any HTTP status below 500, or
// fails the test after timeout.
func WaitReady(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for i := 0; time.Now().Before(deadline); i++ {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
		}
		time.Sleep(time.Duration(min(20*(i+1), 200)) * time.Millisecond)
	}
	t.Fatalf("registries: %s not ready after %v", url, timeout)
}

// Binary returns the path of a required tool or fails the test telling the
// reader how to install it.
func Binary(t testing.TB, name string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("registries: %s not found: run scripts/deps.sh", name)
	}
	return p
}

// GoBin returns the path of a tool installed with go install (crane,
// regctl), or fails the test.
func GoBin(t testing.TB, name string) string {
	t.Helper()
	var cands []string
	if gb := os.Getenv("GOBIN"); gb != "" {
		cands = append(cands, filepath.Join(gb, name))
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, p := range filepath.SplitList(strings.TrimSpace(string(out))) {
			cands = append(cands, filepath.Join(p, "bin", name))
		}
	}
	return Binary(t, name, cands...)
}

// Request is one line of a registry's access log.
type Request struct {
	Method string
	// URI is the request path with its query, as the server saw it.
	URI    string
	Status int
}

// Path is the URI without its query.
func (r Request) Path() string { p, _, _ := strings.Cut(r.URI, "?"); return p }

// Mutating reports whether the request could change the registry.
func (r Request) Mutating() bool {
	switch r.Method {
	case http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

func (r Request) String() string { return fmt.Sprintf("%s %s %d", r.Method, r.URI, r.Status) }

// AccessLog is a concurrency-safe record of requests.
type AccessLog struct {
	mu   sync.Mutex
	reqs []Request
	raw  bytes.Buffer
}

func (l *AccessLog) add(r Request) {
	l.mu.Lock()
	l.reqs = append(l.reqs, r)
	l.mu.Unlock()
}

// Requests returns every request seen so far.
func (l *AccessLog) Requests() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.reqs...)
}

// Since returns the requests after the first n (see Len).
func (l *AccessLog) Since(n int) []Request {
	all := l.Requests()
	if n > len(all) {
		return nil
	}
	return all[n:]
}

// Len returns the number of requests seen so far.
func (l *AccessLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

// Raw returns everything the process wrote (access log and its own log).
func (l *AccessLog) Raw() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

// Filter returns the requests for which keep is true.
func Filter(reqs []Request, keep func(Request) bool) []Request {
	var out []Request
	for _, r := range reqs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// combined matches the Apache combined log format distribution writes to
// stdout: 127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "" "ua".
var combined = regexp.MustCompile(`^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) `)

type logWriter struct {
	log *AccessLog
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.log.mu.Lock()
	w.log.raw.Write(p)
	w.log.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if m := combined.FindStringSubmatch(line); m != nil {
			st, _ := strconv.Atoi(m[3])
			w.log.add(Request{Method: m[1], URI: m[2], Status: st})
		}
	}
	return len(p), nil
}

// Distribution is a running docker-registry.
type Distribution struct {
	// Host is "127.0.0.1:PORT", usable in image references.
	Host string
	// Dir holds the config and the storage.
	Dir string
	// Log is the parsed access log.
	Log *AccessLog

	syncs int
	mu    sync.Mutex
}

// DistributionOptions configures StartDistribution.
type DistributionOptions struct {
	// Users enables htpasswd Basic auth with these user → password pairs.
	// Default: no auth.
	Users map[string]string
}

// StartDistribution starts docker-registry on a free port of 127.0.0.1 with
// filesystem storage in a temporary directory, waits until it answers and
// kills it at t.Cleanup.
func StartDistribution(t testing.TB, opts DistributionOptions) *Distribution {
	t.Helper()
	bin := Binary(t, "docker-registry", "/usr/bin/docker-registry")
	dir := t.TempDir()
	port := FreePort(t)
	host := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`, filepath.Join(dir, "data"), host)
	if len(opts.Users) > 0 {
		htp := filepath.Join(dir, "htpasswd")
		writeHtpasswd(t, htp, opts.Users)
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: strata-test\n    path: %s\n", htp)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &Distribution{Host: host, Dir: dir, Log: &AccessLog{}}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", cfgPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	w := &logWriter{log: d.Log}
	cmd.Stdout = w
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("registries: start docker-registry: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	WaitReady(t, "http://"+host+"/v2/", 15*time.Second)
	return d
}

// writeHtpasswd writes a bcrypt htpasswd file with the htpasswd tool.
func writeHtpasswd(t testing.TB, path string, users map[string]string) {
	t.Helper()
	bin := Binary(t, "htpasswd", "/usr/bin/htpasswd")
	var buf bytes.Buffer
	for u, p := range users {
		// -i reads the password from stdin so it never shows in a process list.
		cmd := exec.Command(bin, "-niB", u)
		cmd.Stdin = strings.NewReader(p + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("registries: htpasswd: %v", err)
		}
		buf.Write(bytes.TrimSpace(out))
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Sync makes sure every request answered before the call is in the access
// log: it sends a marker request and waits until the marker is logged.
func (d *Distribution) Sync(t testing.TB) {
	t.Helper()
	d.mu.Lock()
	d.syncs++
	marker := fmt.Sprintf("/v2/?strata-sync=%d", d.syncs)
	d.mu.Unlock()
	resp, err := http.Get("http://" + d.Host + marker)
	if err != nil {
		t.Fatalf("registries: sync: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for i := 0; i < 200; i++ {
		for _, r := range d.Log.Requests() {
			if r.URI == marker {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("registries: sync marker %s never logged", marker)
}

// Mutations returns the mutating requests after the first n, excluding sync
// markers.
func (d *Distribution) Mutations(n int) []Request {
	return Filter(d.Log.Since(n), Request.Mutating)
}
