package publish

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"strata/test/registries"
)

// loopbackServer starts an httptest server (127.0.0.1 only).
func loopbackServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := loopbackServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	rt := newTransport(transportOptions{Retry: RetryOptions{Backoff: time.Millisecond}})
	start := time.Now()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("retried after %v, Retry-After asked for 1s", elapsed)
	}
	if resp.StatusCode != 200 || calls.Load() != 2 {
		t.Errorf("status %d after %d calls, want 200 after 2", resp.StatusCode, calls.Load())
	}
}

func TestRetryBounded(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := loopbackServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	rt := newTransport(transportOptions{Retry: RetryOptions{Attempts: 4, Backoff: 10 * time.Millisecond}})
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v2/a/manifests/x", strings.NewReader("body"))
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || calls.Load() != 4 {
		t.Errorf("status %d after %d calls, want 503 after 4", resp.StatusCode, calls.Load())
	}
	// 10ms + 30ms + 90ms of back-off at least.
	if elapsed := time.Since(start); elapsed < 130*time.Millisecond {
		t.Errorf("no back-off: 4 calls in %v", elapsed)
	}

	// A Retry-After beyond MaxRetryAfter is passed on, not waited for.
	calls.Store(0)
	srv2 := loopbackServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	req, _ = http.NewRequest(http.MethodGet, srv2.URL+"/v2/", nil)
	resp, err = rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || calls.Load() != 1 {
		t.Errorf("status %d after %d calls, want 429 after 1", resp.StatusCode, calls.Load())
	}

	// A write into an upload session is not replayed after a 500.
	calls.Store(0)
	req, _ = http.NewRequest(http.MethodPatch, srv.URL+"/v2/a/blobs/uploads/123", strings.NewReader("data"))
	resp, err = rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if calls.Load() != 1 {
		t.Errorf("upload PATCH sent %d times after a 503 without Retry-After, want 1", calls.Load())
	}
}

// TestCopyRetriesEndToEnd runs a copy through a proxy that answers the first
// manifest PUT with 429 + Retry-After: 1 and the first blob HEAD with 503.
func TestCopyRetriesEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	var puts, heads atomic.Int32
	p := registries.StartProxy(t, reg.Host, registries.ProxyOptions{Intercept: func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && puts.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/") && heads.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}})
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := Copy(ctx, writeLayout(t, img), p.Host+"/retry/app:v1", CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < time.Second {
		t.Errorf("copy took %v: Retry-After: 1 not honoured", time.Since(start))
	}
	if res.Digest != mustDigest(t, img) || puts.Load() != 2 {
		t.Errorf("digest %s after %d manifest PUTs; want %s after 2", res.Digest, puts.Load(), mustDigest(t, img))
	}
}

func TestChunkedUploadFallback(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	const limit = 256 << 10
	p := registries.StartProxy(t, reg.Host, registries.ProxyOptions{MaxBody: limit})
	img, err := random.Image(3<<20, 1) // one 3 MiB layer (random data: compression gains nothing)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Copy(ctx, writeLayout(t, img), p.Host+"/chunk/app:v1", CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := remoteDigest(t, reg.Host+"/chunk/app:v1"); got != res.Digest || got != mustDigest(t, img) {
		t.Errorf("registry has %s, want %s", got, mustDigest(t, img))
	}
	reqs := p.Log.Requests()
	refused := registries.Filter(reqs, func(r registries.Request) bool { return r.Method == "PATCH" && r.Status == 413 })
	chunks := registries.Filter(reqs, func(r registries.Request) bool { return r.Method == "PATCH" && r.Status == 202 })
	if len(refused) == 0 || len(chunks) < (3<<20)/limit {
		t.Errorf("want a refused PATCH then >= %d chunks, got %d refused, %d accepted", (3<<20)/limit, len(refused), len(chunks))
	}

	// Forced chunking: no 413 needed.
	p2 := registries.StartProxy(t, reg.Host, registries.ProxyOptions{MaxBody: limit})
	img2, _ := random.Image(1<<20, 1)
	if _, err := Copy(ctx, writeLayout(t, img2), p2.Host+"/chunk/forced:v1", CopyOptions{ChunkSize: 200 << 10}); err != nil {
		t.Fatal(err)
	}
	if r := registries.Filter(p2.Log.Requests(), func(r registries.Request) bool { return r.Status == 413 }); len(r) != 0 {
		t.Errorf("forced chunks still refused: %v", r)
	}
}

func TestRedaction(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+staticToken)
	h.Add("Set-Cookie", "session="+staticToken)
	h.Set("Content-Type", "text/plain")
	got := headerString(RedactHeader(h))
	if strings.Contains(got, staticToken) || !strings.Contains(got, "Bearer REDACTED") || !strings.Contains(got, "text/plain") {
		t.Errorf("RedactHeader: %s", got)
	}
	u, _ := url.Parse("https://auth.example/token?scope=repository:a:pull&refresh_token=" + refreshToken + "&password=" + secretPassword)
	if s := RedactURL(u); strings.Contains(s, refreshToken) || strings.Contains(s, secretPassword) || !strings.Contains(s, "scope=") {
		t.Errorf("RedactURL: %s", s)
	}
}

func TestGuardRefusesPlainHTTP(t *testing.T) {
	rt := newTransport(transportOptions{Retry: RetryOptions{Attempts: 1}})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://192.168.99.99:5000/v2/", nil)
	if _, err := rt.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Errorf("plain HTTP to a private address: %v, want a refusal naming --insecure", err)
	}
	for _, h := range []string{"localhost:5000", "127.0.0.1:5000", "[::1]:5000", "127.1.2.3"} {
		if !IsLoopback(h) {
			t.Errorf("IsLoopback(%q) = false", h)
		}
	}
	if IsLoopback("10.0.0.1:5000") || IsLoopback("example.com") {
		t.Error("isLoopback accepts non-loopback hosts")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1", time.Second, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{now.Add(3 * time.Second).Format(http.TimeFormat), 3 * time.Second, true},
		{now.Add(-3 * time.Second).Format(http.TimeFormat), 0, true},
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBearerRealm(t *testing.T) {
	for in, want := range map[string]string{
		`Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"`: "https://auth.example/token",
		`bearer service="x, y", realm="http://h/t"`:                                         "http://h/t",
		`Basic realm="x"`: "",
		`Bearer`:          "",
	} {
		got, _ := bearerRealm(in)
		if got != want {
			t.Errorf("bearerRealm(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzBearerRealm(f *testing.F) {
	f.Add(`Bearer realm="https://auth.example/token",service="reg"`)
	f.Add(`Bearer realm=",\"",`)
	f.Fuzz(func(t *testing.T, s string) {
		realm, ok := bearerRealm(s)
		if ok && realm == "" {
			t.Errorf("ok with an empty realm for %q", s)
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	f.Add("120")
	f.Add("Wed, 21 Oct 2015 07:28:00 GMT")
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseRetryAfter(s, time.Now())
		if d < 0 || (!ok && d != 0) {
			t.Errorf("parseRetryAfter(%q) = %v, %v", s, d, ok)
		}
	})
}
