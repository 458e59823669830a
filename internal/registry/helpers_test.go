package registry_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"strata/internal/registry"
	"strata/internal/storage"
	"strata/internal/storage/storagetest"
)

// fakeBackend serves fixed manifests and tags and records its calls.
type fakeBackend struct {
	mu        sync.Mutex
	manifests map[string]registry.Manifest // "repo:tag"
	tags      map[string][]string
	err       error // returned by every call when set
	calls     []string
	accepts   [][]string
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{manifests: map[string]registry.Manifest{}, tags: map[string][]string{}}
}

func (b *fakeBackend) Manifest(ctx context.Context, repo, tag string, accept []string) (registry.Manifest, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "manifest "+repo+":"+tag)
	b.accepts = append(b.accepts, accept)
	if b.err != nil {
		return registry.Manifest{}, b.err
	}
	m, ok := b.manifests[repo+":"+tag]
	if !ok {
		return registry.Manifest{}, registry.NewError(registry.CodeManifestUnknown, "unknown "+repo+":"+tag)
	}
	return m, nil
}

func (b *fakeBackend) Tags(ctx context.Context, repo string) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "tags "+repo)
	if b.err != nil {
		return nil, b.err
	}
	t, ok := b.tags[repo]
	if !ok {
		return nil, registry.NewError(registry.CodeNameUnknown, "unknown repository "+repo)
	}
	return t, nil
}

func (b *fakeBackend) setErr(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = err
}

func (b *fakeBackend) numCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.calls)
}

// logRecorder is a slog.Handler that keeps records.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) byMsg(msg string) []map[string]slog.Value {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]slog.Value
	for _, r := range h.records {
		if r.Message != msg {
			continue
		}
		m := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
		out = append(out, m)
	}
	return out
}

// env is a registry under test.
type env struct {
	store   *storage.FS
	backend *fakeBackend
	logs    *logRecorder
	handler http.Handler
	srv     *httptest.Server
}

func newEnv(t *testing.T) *env {
	return newEnvWith(t, func(o *registry.Options) {})
}

func newEnvWith(t *testing.T, opt func(*registry.Options)) *env {
	t.Helper()
	store, err := storage.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: store, backend: newFakeBackend(), logs: &logRecorder{}}
	o := registry.Options{Store: store, Backend: e.backend, Log: slog.New(e.logs)}
	opt(&o)
	e.handler = registry.New(o)
	e.srv = newLocalServer(t, e.handler)
	return e
}

// newLocalServer starts an httptest server on 127.0.0.1 only.
func newLocalServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// put stores data as a blob and returns its digest.
func (e *env) put(t *testing.T, data []byte) string {
	t.Helper()
	d := digestOf(data)
	storagetest.Put(t, e.store, storage.BlobKey(d), data)
	return d
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// do sends a request and returns the response with its body read.
func (e *env) do(t *testing.T, method, path string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// raw sends a request line exactly as given (no client-side cleaning).
func (e *env) raw(t *testing.T, method, target string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", e.srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: registry.test\r\nConnection: close\r\n\r\n", method, target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %.80s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

type specErrors struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

// wantError checks an error response: status, JSON content type, and one
// error with code.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code registry.ErrorCode) specErrors {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("%s %s: status %d, want %d (body %.200s)", resp.Request.Method, truncatePath(resp), resp.StatusCode, status, body)
	}
	var se specErrors
	if resp.Request.Method == http.MethodHead {
		return se
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q", ct)
	}
	if err := json.Unmarshal(body, &se); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if len(se.Errors) != 1 || se.Errors[0].Code != string(code) {
		t.Errorf("%s: errors = %s, want code %s", truncatePath(resp), body, code)
	}
	if len(se.Errors) == 1 && se.Errors[0].Message == "" {
		t.Errorf("error without message: %s", body)
	}
	return se
}

func truncatePath(resp *http.Response) string {
	if resp.Request == nil || resp.Request.URL == nil {
		return ""
	}
	p := resp.Request.URL.Path
	if len(p) > 80 {
		p = p[:80] + "..."
	}
	return p
}

// snapshot maps every file under dir (staging included) to its hash.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			m[rel+"/"] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		m[rel] = digestOf(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameSnapshot(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
