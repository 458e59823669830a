package registry_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata/internal/registry"
)

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkPushedManifestGET measures the handler's cost of a manifest GET
// by tag in the push namespace (the pull hot path), without the network.
func BenchmarkPushedManifestGET(b *testing.B) {
	for _, lg := range []struct {
		name   string
		log    *slog.Logger
		access io.Writer
	}{{"nolog", nil, nil}, {"slog", slog.New(slog.NewJSONHandler(io.Discard, nil)), nil}, {"accesslog", nil, io.Discard}} {
		b.Run(lg.name, func(b *testing.B) { benchManifestGET(b, lg.log, lg.access) })
	}
}

func benchManifestGET(b *testing.B, log *slog.Logger, access io.Writer) {
	t := &testing.T{}
	e := newEnvWith(t, func(o *registry.Options) { o.PushPrefix = "x"; o.Log = log; o.AccessLog = access })
	img, _ := random.Image(1024, 1)
	ref, _ := name.ParseReference(e.srv.Listener.Addr().String()+"/x/bench:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v2/x/bench/manifests/v1", nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := &discardWriter{h: http.Header{}}
		e.handler.ServeHTTP(w, req)
	}
}

// TestFastAccessLog checks the fast access log's lines against slog's
// JSON shape.
func TestFastAccessLog(t *testing.T) {
	var buf syncBuffer
	e := newEnvWith(t, func(o *registry.Options) { o.AccessLog = &buf })
	e.do(t, "GET", "/v2/a/manifests/\"<x>", nil)
	e.do(t, "GET", "/v2/", nil)
	var lines []string
	waitFor(t, func() bool { // the lines are written by the log's writer goroutine
		lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
		return len(lines) == 2
	})
	for i, want := range []struct {
		path   string
		status float64
	}{{"/v2/a/manifests/%22%3Cx%3E", 400}, {"/v2/", 200}} {
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil {
			t.Fatalf("line %q: %v", lines[i], err)
		}
		if rec["msg"] != "request" || rec["level"] != "INFO" || rec["method"] != "GET" || rec["status"] != want.status {
			t.Errorf("record %v", rec)
		}
		if p, _ := rec["path"].(string); p != want.path && !strings.HasPrefix(p, "/v2/a/manifests/") {
			t.Errorf("path %q, want %q", p, want.path)
		}
		if _, err := time.Parse(time.RFC3339Nano, rec["time"].(string)); err != nil {
			t.Errorf("time: %v", err)
		}
		for _, k := range []string{"bytes", "duration", "remote"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("no %s in %v", k, rec)
			}
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCachedManifestGETAllocations: a cached manifest GET (by tag and by
// digest, pushed and on-demand) allocates nothing in the handler once
// warm (the writer and its header map are reused here, as net/http reuses
// its own per connection).
func TestCachedManifestGETAllocations(t *testing.T) {
	const maxRaceAllocs = 1
	now := time.Unix(1_800_000_000, 0) // a fixed clock: the cached references never expire here
	e := newEnvWith(t, func(o *registry.Options) {
		o.PushPrefix = "x"
		o.AccessLog = io.Discard
		o.Now = func() time.Time { return now }
	})
	img, _ := random.Image(1024, 1)
	ref, _ := name.ParseReference(e.srv.Listener.Addr().String()+"/x/bench:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	e.backend.manifests["hello:latest"] = registry.Manifest{Body: []byte(ociManifest)}
	for _, path := range []string{"/v2/x/bench/manifests/v1", "/v2/x/bench/manifests/" + d.String(),
		"/v2/hello/manifests/latest", "/v2/hello/manifests/" + digestOf([]byte(ociManifest))} {
		if r, _ := e.do(t, "GET", path, nil); r.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, r.StatusCode)
		}
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		w := &discardWriter{h: http.Header{}}
		e.handler.ServeHTTP(w, req) // warm the caches
		n := testing.AllocsPerRun(100, func() { e.handler.ServeHTTP(w, req) })
		switch {
		case !raceEnabled && n > 0:
			t.Errorf("GET %s: %.1f allocations per request, want 0", path, n)
		case raceEnabled && n > maxRaceAllocs:
			// Under -race only the pools' random drops may allocate;
			// make test runs this test without -race too, for the zero.
			t.Errorf("GET %s: %.1f allocations per request under -race, want at most %d", path, n, maxRaceAllocs)
		}
	}
}
