package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"strata/internal/nix"
	"strata/internal/storage"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

func wantLines(t *testing.T, body string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(body, "\n"+l+"\n") {
			t.Errorf("metrics lack %q", l)
		}
	}
}

func TestMetricsExposition(t *testing.T) {
	m := New()
	m.ObserveRequest(EndpointBlob, "GET", 200, 1000, time.Millisecond)
	m.ObserveRequest(EndpointBlob, "GET", 206, 24, time.Millisecond)
	m.ObserveRequest(EndpointBlob, "HEAD", 200, 0, time.Millisecond)
	m.ObserveRequest(EndpointManifest, "GET", 404, 99, time.Millisecond)
	m.ObserveRequest("/some/repo/name", "BREW", 999, 0, time.Millisecond)
	m.BuildStarted()
	m.BuildFinished(time.Second, nil)
	m.BuildStarted()
	m.BuildFinished(time.Second, &nix.BuildError{Log: "error: boom"})
	m.BuildStarted()
	m.BuildFinished(time.Second, fmt.Errorf("linux/amd64: %w", &nix.BuildError{Timeout: true}))
	m.LayerPacked()
	m.LayerPacked()
	m.LayerCached()
	m.ObserveStorageFault("no_space")
	m.ObserveStorageFault("no_space")
	m.ObserveStorageFault("/not/a/kind")
	body := scrape(t, m)
	wantLines(t, body,
		`strata_http_requests_total{code="200",endpoint="blob",method="GET"} 1`,
		`strata_http_requests_total{code="206",endpoint="blob",method="GET"} 1`,
		`strata_http_requests_total{code="200",endpoint="blob",method="HEAD"} 1`,
		`strata_http_requests_total{code="404",endpoint="manifest",method="GET"} 1`,
		`strata_http_requests_total{code="999",endpoint="other",method="other"} 1`,
		`strata_http_request_duration_seconds_count{endpoint="blob",method="GET"} 2`,
		`strata_blob_bytes_served_total 1024`,
		`strata_builds_started_total 3`,
		`strata_builds_succeeded_total 1`,
		`strata_builds_failed_total{kind="build_failed"} 1`,
		`strata_builds_failed_total{kind="timeout"} 1`,
		`strata_builds_failed_total{kind="unknown_package"} 0`,
		`strata_build_duration_seconds_count{result="failure"} 2`,
		`strata_layers_total{source="packed"} 2`,
		`strata_layers_total{source="cached"} 1`,
		`strata_storage_faults_total{kind="no_space"} 2`,
		`strata_storage_faults_total{kind="read_only"} 0`,
	)
	for _, w := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack the runtime/process metric %s", w)
		}
	}
	if strings.Contains(body, "/some/repo/name") || strings.Contains(body, "/not/a/kind") {
		t.Error("a label took an unbounded value")
	}
}

func TestFailureKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&nix.UnknownPackagesError{Packages: []nix.UnknownPackage{{Name: "x"}}}, FailureUnknownPackage},
		{fmt.Errorf("wrapped: %w", &nix.UnknownRefError{Ref: "v9"}), FailureUnknownPackage},
		{fmt.Errorf("linux/amd64: %w", &nix.UnknownPackagesError{Packages: []nix.UnknownPackage{{Name: "x"}, {Name: "mysql", Replacement: "mariadb"}}}), FailureRenamed},
		{&nix.UnknownPackagesError{Packages: []nix.UnknownPackage{{Name: "oldtool", Message: "'oldtool' has been removed from nixpkgs"}}}, FailureRemoved},
		{&nix.UnknownPackagesError{Packages: []nix.UnknownPackage{{Name: "curl", Message: "assertion 'false' failed"}}}, FailureEval},
		{&nix.BuildError{}, FailureBuild},
		{&nix.BuildError{Timeout: true}, FailureTimeout},
		{context.DeadlineExceeded, FailureTimeout},
		{errors.New("disk full"), FailureOther},
	} {
		if got := FailureKind(tc.err); got != tc.want {
			t.Errorf("FailureKind(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// ObserveRequest on a known series does not allocate.
func TestObserveRequestAllocations(t *testing.T) {
	m := New()
	m.ObserveRequest(EndpointBlob, "GET", 200, 10, time.Millisecond)
	if n := testing.AllocsPerRun(1000, func() {
		m.ObserveRequest(EndpointBlob, "GET", 200, 10, time.Millisecond)
	}); n > 0 {
		t.Errorf("ObserveRequest allocates %.1f times a call", n)
	}
}

func get(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

func TestReadiness(t *testing.T) {
	var fail atomic.Bool
	var runs atomic.Int32
	r := NewReadiness(Check{Name: "nix", Every: time.Hour, Run: func(context.Context) error {
		runs.Add(1)
		if fail.Load() {
			return errors.New("the package set does not evaluate")
		}
		return nil
	}})
	if code, body := get(t, r); code != 200 || body != "ready\n" {
		t.Fatalf("ready: %d %q", code, body)
	}
	fail.Store(true)
	if code, _ := get(t, r); code != 200 {
		t.Fatalf("a cached result was not reused: %d", code)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d runs within the interval, want 1", n)
	}

	// Every: 0 runs on each request; a failure is 503 with the reason.
	r = NewReadiness(Check{Name: "nix", Run: func(context.Context) error {
		if fail.Load() {
			return errors.New("the package set does not evaluate")
		}
		return nil
	}})
	if code, body := get(t, r); code != 503 || !strings.Contains(body, "nix: the package set does not evaluate") {
		t.Fatalf("not ready: %d %q", code, body)
	}

	// A check that hangs is bounded by its timeout.
	r = NewReadiness(Check{Name: "storage", Timeout: 100 * time.Millisecond, Run: func(context.Context) error {
		time.Sleep(5 * time.Second)
		return nil
	}})
	start := time.Now()
	if code, body := get(t, r); code != 503 || !strings.Contains(body, "storage: no answer within 100ms") {
		t.Fatalf("hanging check: %d %q", code, body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a hanging check took %s", d)
	}
}

// A stale result is answered at once and refreshed in the background.
func TestReadinessRefreshesInBackground(t *testing.T) {
	var fail atomic.Bool
	r := NewReadiness(Check{Name: "nix", Every: 50 * time.Millisecond, Run: func(context.Context) error {
		if fail.Load() {
			return errors.New("broken")
		}
		return nil
	}})
	if code, _ := get(t, r); code != 200 {
		t.Fatal("not ready at first")
	}
	fail.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := get(t, r)
		if code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failure never showed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStorageCheck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := storage.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	check := StorageCheck(s)
	ctx := context.Background()
	if err := check(ctx); err != nil {
		t.Fatalf("a working store: %v", err)
	}
	// The store's directory replaced by a file: unreachable.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := check(ctx); err == nil {
		t.Fatal("a store whose directory is a file passed the check")
	}
}

// faultyStore fails every write with err.
type faultyStore struct {
	storage.Store
	err error
}

func (f faultyStore) Create(ctx context.Context) (storage.Writer, error) { return nil, f.err }

func TestStorageCheckFaultHidesPath(t *testing.T) {
	s, err := storage.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	full := &fs.PathError{Op: "open", Path: "/srv/strata/secret-dir/staging/x", Err: syscall.ENOSPC}
	err = StorageCheck(faultyStore{s, fmt.Errorf("storage: create staging file: %w", full)})(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no space left") || strings.Contains(err.Error(), "/srv") {
		t.Fatalf("check on a full store: %v", err)
	}
}
