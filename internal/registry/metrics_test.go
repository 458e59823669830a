package registry_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"strata/internal/registry"
)

type observation struct {
	endpoint, method string
	status           int
	bytes            int64
}

type metricsRecorder struct {
	mu  sync.Mutex
	obs []observation
}

func (m *metricsRecorder) ObserveRequest(endpoint, method string, status int, bytes int64, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.obs = append(m.obs, observation{endpoint, method, status, bytes})
}

func (m *metricsRecorder) last() observation {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.obs[len(m.obs)-1]
}

// Options.Metrics sees every request once, with its endpoint class,
// status and body size.
func TestMetricsObservesEachRequest(t *testing.T) {
	rec := &metricsRecorder{}
	e := newEnvWith(t, func(o *registry.Options) { o.Metrics = rec })
	blob := []byte("hello metrics")
	d := e.put(t, blob)
	for _, tc := range []struct {
		method, path string
		want         observation
	}{
		{"GET", "/v2/", observation{"other", "GET", 200, 3}},
		{"GET", "/v2/a/blobs/" + d, observation{"blob", "GET", 200, int64(len(blob))}},
		{"HEAD", "/v2/a/blobs/" + d, observation{"blob", "HEAD", 200, 0}},
		// An unparsable digest fails routing: other.
		{"GET", "/v2/a/blobs/sha256:00", observation{"other", "GET", 400, -1}},
		{"GET", "/v2/a/tags/list", observation{"tags", "GET", 404, -1}},
		{"GET", "/v2/a/manifests/latest", observation{"manifest", "GET", 404, -1}},
		{"POST", "/v2/a/blobs/uploads/", observation{"upload", "POST", 405, -1}},
		{"GET", "/v2/a/referrers/" + d, observation{"referrers", "GET", 200, -1}},
		{"GET", "/v2/no-endpoint-here", observation{"other", "GET", 404, -1}},
	} {
		resp, _ := e.do(t, tc.method, tc.path, http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json"}})
		got := rec.last()
		if tc.want.bytes < 0 {
			got.bytes = -1
		}
		if got.status != resp.StatusCode {
			t.Errorf("%s %s: observed status %d, answered %d", tc.method, tc.path, got.status, resp.StatusCode)
		}
		if got != tc.want {
			t.Errorf("%s %s: observed %+v, want %+v", tc.method, tc.path, got, tc.want)
		}
	}
	if n := len(rec.obs); n != 9 {
		t.Errorf("%d observations for 9 requests", n)
	}
}
