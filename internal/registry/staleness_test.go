package registry_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"strata/internal/registry"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestCrossReplicaStaleness shows the documented bound: two replicas on one
// store; a push or delete through one is visible to its next request at
// once, and to the other replica after at most RefCacheTTL, never later.
func TestCrossReplicaStaleness(t *testing.T) {
	const ttl = 2 * time.Second
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	a := newEnvWith(t, func(o *registry.Options) { o.PushPrefix = "x"; o.RefCacheTTL = ttl; o.Now = clock.now })
	b := &env{store: a.store, backend: a.backend, logs: a.logs}
	b.handler = registry.New(registry.Options{Store: a.store, Backend: a.backend, PushPrefix: "x", RefCacheTTL: ttl, Now: clock.now})
	b.srv = newLocalServer(t, b.handler)

	img := a.image(t, "x/r")
	v1 := img.bytes(t)
	img.Layers = append(img.Layers, a.pushBlob(t, "x/r", ociLayer, []byte("second layer")))
	v2 := img.bytes(t)
	digestAt := func(e *env, tag string) (int, string) {
		r, _ := e.do(t, "GET", "/v2/x/r/manifests/"+tag, nil)
		return r.StatusCode, r.Header.Get("Docker-Content-Digest")
	}
	if r, body := a.putManifest(t, "x/r", "latest", ociManifestType, v1); r.StatusCode != 201 {
		t.Fatalf("push v1: %d %s", r.StatusCode, body)
	}
	if st, d := digestAt(b, "latest"); st != 200 || d != digestOf(v1) {
		t.Fatalf("replica b before: %d %s", st, d)
	}

	// The tag moves on replica a.
	if r, body := a.putManifest(t, "x/r", "latest", ociManifestType, v2); r.StatusCode != 201 {
		t.Fatalf("push v2: %d %s", r.StatusCode, body)
	}
	if _, d := digestAt(a, "latest"); d != digestOf(v2) {
		t.Fatalf("replica a serves %s right after its own push, want %s", d, digestOf(v2))
	}
	clock.add(ttl - time.Millisecond)
	if _, d := digestAt(b, "latest"); d != digestOf(v1) {
		t.Fatalf("replica b inside the TTL serves %s: the cache is not what the bound describes", d)
	}
	clock.add(2 * time.Millisecond)
	if _, d := digestAt(b, "latest"); d != digestOf(v2) {
		t.Fatalf("replica b after the TTL serves %s, want %s", d, digestOf(v2))
	}

	// A delete on replica a: gone there at once, on b after the TTL.
	if r, _ := a.do(t, "DELETE", "/v2/x/r/manifests/latest", nil); r.StatusCode != http.StatusAccepted {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	if st, _ := digestAt(a, "latest"); st != 404 {
		t.Fatalf("replica a after its own delete: %d", st)
	}
	clock.add(ttl + time.Millisecond)
	if st, _ := digestAt(b, "latest"); st != 404 {
		t.Fatalf("replica b a TTL after the delete: %d", st)
	}
}

// TestOnDemandTagCache: an on-demand tag is answered from memory within the
// TTL (one Backend call for many GETs) and asked again after it.
func TestOnDemandTagCache(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	e := newEnvWith(t, func(o *registry.Options) { o.RefCacheTTL = time.Second; o.Now = clock.now })
	e.backend.manifests["hello:latest"] = registry.Manifest{Body: []byte(ociManifest)}
	for range 5 {
		if r, _ := e.do(t, "GET", "/v2/hello/manifests/latest", nil); r.StatusCode != 200 {
			t.Fatalf("GET: %d", r.StatusCode)
		}
	}
	if n := e.backend.numCalls(); n != 1 {
		t.Fatalf("%d Backend calls within the TTL, want 1", n)
	}
	clock.add(time.Second + time.Millisecond)
	if r, _ := e.do(t, "GET", "/v2/hello/manifests/latest", nil); r.StatusCode != 200 {
		t.Fatalf("GET: %d", r.StatusCode)
	}
	if n := e.backend.numCalls(); n != 2 {
		t.Fatalf("%d Backend calls after the TTL, want 2", n)
	}
}

// TestOnDemandTagRefreshAhead: a hit in the second half of the TTL serves
// the cached manifest and refreshes it in the background, so a package set
// that moved on is seen before the entry would expire, without a request
// ever waiting for the Backend on a warm tag.
func TestOnDemandTagRefreshAhead(t *testing.T) {
	const ttl = 2 * time.Second
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	e := newEnvWith(t, func(o *registry.Options) { o.RefCacheTTL = ttl; o.Now = clock.now })
	v1 := []byte(ociManifest)
	v2 := []byte(strings.Replace(ociManifest, `"layers":[]`, `"layers":[],"annotations":{"v":"2"}`, 1))
	set := func(b []byte) {
		e.backend.mu.Lock()
		defer e.backend.mu.Unlock()
		e.backend.manifests["hello:latest"] = registry.Manifest{Body: b}
	}
	get := func() string {
		r, _ := e.do(t, "GET", "/v2/hello/manifests/latest", nil)
		if r.StatusCode != 200 {
			t.Fatalf("GET: %d", r.StatusCode)
		}
		return r.Header.Get("Docker-Content-Digest")
	}
	set(v1)
	if d := get(); d != digestOf(v1) {
		t.Fatalf("first GET: %s", d)
	}
	set(v2) // the package set moves on
	clock.add(ttl/2 + time.Millisecond)
	if d := get(); d != digestOf(v1) {
		t.Fatalf("a hit in the second half of the TTL waited for the Backend: %s", d)
	}
	waitFor(t, func() bool { return get() == digestOf(v2) })
	if n := e.backend.numCalls(); n != 2 {
		t.Errorf("%d Backend calls, want 2 (the first and one refresh)", n)
	}
}
