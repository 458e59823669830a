package registry_test

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"strata/internal/registry"
)

func (e *env) send(t *testing.T, method, path string, body []byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestUploadWrongDigestLeavesNothing: content that does not hash to the
// claimed digest is never visible under it, by any upload style.
func TestUploadWrongDigestLeavesNothing(t *testing.T) {
	e := newEnvWith(t, func(o *registry.Options) { o.PushPrefix = "x"; o.MaxUploadSize = 1000 })
	data := []byte("hello blob")
	wrong := digestOf([]byte("something else"))
	// Monolithic POST.
	if r := e.send(t, "POST", "/v2/x/r/blobs/uploads/?digest="+wrong, data); r.StatusCode != 400 {
		t.Fatalf("monolithic: %d", r.StatusCode)
	}
	// Streamed PATCH then PUT.
	r := e.send(t, "POST", "/v2/x/r/blobs/uploads/", nil)
	loc := r.Header.Get("Location")
	if r = e.send(t, "PATCH", loc, data); r.StatusCode != 202 || r.Header.Get("Range") != "0-9" {
		t.Fatalf("PATCH: %d %q", r.StatusCode, r.Header.Get("Range"))
	}
	if r = e.send(t, "PUT", loc+"?digest="+wrong, nil); r.StatusCode != 400 {
		t.Fatalf("PUT: %d", r.StatusCode)
	}
	if m, _ := filepath.Glob(filepath.Join(e.store.Dir(), "blobs", "*", "*", "*")); len(m) != 0 {
		t.Fatalf("blobs stored: %q", m)
	}
	// The right digest still completes the same upload.
	if r = e.send(t, "PUT", loc+"?digest="+digestOf(data), nil); r.StatusCode != 201 {
		t.Fatalf("PUT right digest: %d", r.StatusCode)
	}
	if r = e.send(t, "GET", "/v2/x/r/blobs/"+digestOf(data), nil); r.StatusCode != 200 {
		t.Fatalf("GET: %d", r.StatusCode)
	}
	// Another repository does not see it; an on-demand name refuses pushes.
	if r = e.send(t, "GET", "/v2/x/other/blobs/"+digestOf(data), nil); r.StatusCode != 404 {
		t.Fatalf("GET from another repository: %d", r.StatusCode)
	}
	if r = e.send(t, "POST", "/v2/hello/blobs/uploads/", nil); r.StatusCode != 403 {
		t.Fatalf("push to an on-demand name: %d", r.StatusCode)
	}
	// Over the size limit: 413.
	big := []byte(strings.Repeat("a", 2000))
	if r = e.send(t, "POST", "/v2/x/r/blobs/uploads/?digest="+digestOf(big), big); r.StatusCode != 413 {
		t.Fatalf("oversized: %d", r.StatusCode)
	}
}
