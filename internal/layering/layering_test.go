package layering

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"strata/internal/closure"
)

// randomGraph builds a random DAG of n paths, seeded: path i refers to a few
// paths with a larger index, sizes are heavy-tailed.
func randomGraph(seed uint64, n int) *closure.Graph {
	rng := &splitmix{state: seed}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("/nix/store/%032d-pkg%d-1.%d", rng.next()%1e9, i, rng.next()%5)
	}
	nodes := make([]*closure.Path, n)
	for i := range nodes {
		var refs []string
		if i+1 < n {
			k := int(rng.next() % 4)
			for j := 0; j < k; j++ {
				refs = append(refs, names[i+1+int(rng.next()%uint64(n-i-1))])
			}
		}
		size := int64(1024 * (1 << (rng.next() % 18)))
		nodes[i] = &closure.Path{Path: names[i], NarSize: size, References: refs}
	}
	var roots []string
	for i := 0; i < 1+int(rng.next()%3); i++ {
		roots = append(roots, names[int(rng.next()%uint64(1+n/4))])
	}
	g, err := closure.New(nodes, roots)
	if err != nil {
		panic(err)
	}
	return g.Sub(g.Roots...)
}

func TestStrategiesContract(t *testing.T) {
	for _, name := range Names() {
		for seed := uint64(1); seed <= 60; seed++ {
			g := randomGraph(seed, 5+int(seed*7%150))
			for _, budget := range []int{1, 2, 5, 19, 99} {
				var pop Popularity
				if seed%2 == 0 {
					pop = PopularityFromGraph(g)
				}
				s, err := New(name, pop)
				if err != nil {
					t.Fatal(err)
				}
				groups := s.Layers(g, budget)
				if probs := CheckGroups(g, groups, budget); len(probs) > 0 {
					t.Fatalf("%s seed %d budget %d: %v", name, seed, budget, probs)
				}
				again := s.Layers(g, budget)
				if !reflect.DeepEqual(groups, again) {
					t.Fatalf("%s seed %d budget %d: not deterministic", name, seed, budget)
				}
			}
		}
	}
}

func TestEmptyGraph(t *testing.T) {
	g := &closure.Graph{Paths: map[string]*closure.Path{}}
	for _, name := range Names() {
		s, _ := New(name, nil)
		if groups := s.Layers(g, 10); len(groups) != 0 {
			t.Errorf("%s: %d groups for an empty closure", name, len(groups))
		}
	}
}

func TestNew(t *testing.T) {
	if _, err := New("nope", nil); err == nil || !strings.Contains(err.Error(), "strata") {
		t.Errorf("New(nope) = %v, want an error listing the strategies", err)
	}
	if Default().Name() != "strata" {
		t.Errorf("Default() = %s", Default().Name())
	}
	for _, n := range Names() {
		s, err := New(n, nil)
		if err != nil || s.Name() != n {
			t.Errorf("New(%s) = %v, %v", n, s, err)
		}
	}
}

func TestGroupKey(t *testing.T) {
	a := Group{Paths: []string{"/nix/store/a-x", "/nix/store/b-y"}}
	b := Group{Paths: []string{"/nix/store/a-x", "/nix/store/b-y"}}
	c := Group{Paths: []string{"/nix/store/a-x"}}
	if a.Key() != b.Key() || a.Key() == c.Key() || len(a.Key()) != 64 {
		t.Errorf("keys: %s %s %s", a.Key(), b.Key(), c.Key())
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string][2]string{
		"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.1": {"hello-2.12.1", "hello"},
		"python3.11-numpy-1.26.4":                                  {"python3.11-numpy-1.26.4", "python3.11-numpy"},
		"/nix/store/abc-bash-interactive-5.2p26":                   {"bash-interactive-5.2p26", "bash-interactive"},
		"/nix/store/abc-cacert":                                    {"cacert", "cacert"},
	} {
		if n := StoreName(in); n != want[0] {
			t.Errorf("StoreName(%s) = %s, want %s", in, n, want[0])
		}
		if p := PName(StoreName(in)); p != want[1] {
			t.Errorf("PName(%s) = %s, want %s", in, p, want[1])
		}
	}
}

func TestPopularityFromGraph(t *testing.T) {
	g, err := closure.New([]*closure.Path{
		{Path: "/nix/store/a-glibc-2.39"},
		{Path: "/nix/store/b-zlib-1.3", References: []string{"/nix/store/a-glibc-2.39"}},
		{Path: "/nix/store/c-curl-8.7", References: []string{"/nix/store/a-glibc-2.39", "/nix/store/b-zlib-1.3"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := PopularityFromGraph(g)
	want := Popularity{"glibc-2.39": 2, "zlib-1.3": 1, "curl-8.7": 0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PopularityFromGraph = %v, want %v", got, want)
	}
	idx := newPopIndex(want)
	if v, ok := idx.lookup("/nix/store/x-zlib-1.3.1"); !ok || v != 1 {
		t.Errorf("lookup of a bumped version = %d, %v; want the package's count", v, ok)
	}
	if _, ok := idx.lookup("/nix/store/x-unknown-1"); ok {
		t.Error("lookup of an unknown package succeeded")
	}
}

func TestLoadPopularity(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "pop.json")
	if err := os.WriteFile(good, []byte(`{"glibc-2.39-52": 301234, "hello-2.12.1": 12}`), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"glibc": "many"`), 0o644); err != nil {
		t.Fatal(err)
	}
	pop, err := LoadPopularity(ctx, good)
	if err != nil || pop["glibc-2.39-52"] != 301234 || pop["hello-2.12.1"] != 12 {
		t.Fatalf("LoadPopularity(file) = %v, %v", pop, err)
	}
	if _, err := LoadPopularity(ctx, bad); err == nil || !strings.Contains(err.Error(), "JSON") {
		t.Errorf("malformed file: err = %v, want a clear JSON error", err)
	}
	for _, in := range []string{`[1,2]`, `{"a": "x"}`, `{"a": -1}`, `null`, `{"a": 1} {}`} {
		if _, err := ParsePopularity([]byte(in)); err == nil {
			t.Errorf("ParsePopularity(%s) succeeded", in)
		}
	}
	if _, err := LoadPopularity(ctx, filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
	if _, err := LoadPopularity(ctx, ""); err == nil {
		t.Error("empty source: no error")
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pop.json":
			fmt.Fprint(w, `{"openssl-3.0.14": 5000}`)
		case "/bad.json":
			fmt.Fprint(w, `not json`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1") {
		t.Fatalf("test server at %s, want 127.0.0.1", srv.URL)
	}
	pop, err = LoadPopularity(ctx, srv.URL+"/pop.json")
	if err != nil || pop["openssl-3.0.14"] != 5000 {
		t.Fatalf("LoadPopularity(URL) = %v, %v", pop, err)
	}
	if _, err := LoadPopularity(ctx, srv.URL+"/bad.json"); err == nil || !strings.Contains(err.Error(), "JSON") {
		t.Errorf("malformed URL body: err = %v", err)
	}
	if _, err := LoadPopularity(ctx, srv.URL+"/missing?token=secret"); err == nil || !strings.Contains(err.Error(), "404") || strings.Contains(err.Error(), "secret") {
		t.Errorf("404: err = %v, want the status and no query string", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := LoadPopularity(cctx, srv.URL+"/pop.json"); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestDominators(t *testing.T) {
	// 0 → 1, 0 → 2, 1 → 3, 2 → 3, 3 → 4
	idom := dominators([][]int{{1, 2}, {3}, {3}, {4}, {}, {}})
	want := []int{0, 0, 0, 0, 3, -1}
	if !reflect.DeepEqual(idom, want) {
		t.Errorf("idom = %v, want %v", idom, want)
	}
}

func TestDockerToolsPopularityOrder(t *testing.T) {
	// The example of closure-graph.py: foo → bar, baz; bar → baz; baz → tux.
	g, err := closure.New([]*closure.Path{
		{Path: "/nix/store/1-foo", References: []string{"/nix/store/2-bar", "/nix/store/3-baz"}},
		{Path: "/nix/store/2-bar", References: []string{"/nix/store/3-baz"}},
		{Path: "/nix/store/3-baz", References: []string{"/nix/store/4-tux"}},
		{Path: "/nix/store/4-tux"},
	}, []string{"/nix/store/1-foo"})
	if err != nil {
		t.Fatal(err)
	}
	groups := dockerTools{}.Layers(g, 10)
	var order []string
	for _, gr := range groups {
		order = append(order, StoreName(gr.Paths[0]))
	}
	if want := []string{"tux", "baz", "bar", "foo"}; !reflect.DeepEqual(order, want) {
		t.Errorf("dockertools order %v, want %v", order, want)
	}
	_ = sort.Strings
}

// splitmix is SplitMix64, a tiny seeded generator for test graphs.
type splitmix struct{ state uint64 }

func (s *splitmix) next() uint64 {
	s.state += 0x9e3779b97f4a7c15
	z := s.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// TestStrataFoldsOnlyKnownPrivatePaths: a small path one path refers to is
// folded into it when the package set's popularity says nothing else
// refers to it, and kept apart without popularity data (it may have other
// referrers in other images).
func TestStrataFoldsOnlyKnownPrivatePaths(t *testing.T) {
	g, err := closure.New([]*closure.Path{
		{Path: "/nix/store/a-glibc-2.39", NarSize: 30 << 20},
		{Path: "/nix/store/b-app-1.0", NarSize: 8 << 20, References: []string{"/nix/store/a-glibc-2.39", "/nix/store/c-app-share-1.0"}},
		{Path: "/nix/store/c-app-share-1.0", NarSize: 100 << 10},
	}, []string{"/nix/store/b-app-1.0"})
	if err != nil {
		t.Fatal(err)
	}
	withPop, _ := New("strata", Popularity{"glibc-2.39": 50, "app-1.0": 0, "app-share-1.0": 1})
	if groups := withPop.Layers(g, 10); len(groups) != 2 {
		t.Errorf("with popularity: %v, want app-share folded into app", groups)
	}
	if groups := Default().Layers(g, 10); len(groups) != 3 {
		t.Errorf("without popularity: %v, want every path apart", groups)
	}
	ex := withPop.(Explainer).Explain(g, 10)
	var folded bool
	for _, e := range ex {
		if e.Kind == KindOwn && e.Root == "/nix/store/b-app-1.0" && len(e.Folded) == 1 {
			folded = true
		}
	}
	if !folded {
		t.Errorf("Explain does not report the folded private path: %+v", ex)
	}
}

// TestFingerprint: equal package-set data give equal fingerprints, other
// data another, no data none; the strategies carry their data's.
func TestFingerprint(t *testing.T) {
	a := SetStats{Popularity: Popularity{"glibc-2.39": 40, "zlib-1.3": 3}, ImageBytes: 1 << 20, ImagePaths: 12}
	b := SetStats{Popularity: Popularity{"zlib-1.3": 3, "glibc-2.39": 40}, ImageBytes: 1 << 20, ImagePaths: 12}
	if a.Fingerprint() == "" || a.Fingerprint() != b.Fingerprint() {
		t.Fatalf("equal data: %q and %q", a.Fingerprint(), b.Fingerprint())
	}
	c := b
	c.ImagePaths = 13
	if c.Fingerprint() == a.Fingerprint() {
		t.Error("other image paths, same fingerprint")
	}
	if fp := (SetStats{}).Fingerprint(); fp != "" {
		t.Errorf("no data: fingerprint %q", fp)
	}
	for _, name := range Names() {
		s, _ := NewFor(name, a)
		fp := FingerprintOf(s)
		switch name {
		case "dockertools", "nix2container":
			if fp != "" {
				t.Errorf("%s uses no package-set data, fingerprint %q", name, fp)
			}
		default:
			if fp == "" {
				t.Errorf("%s: no fingerprint for its data", name)
			}
		}
		if s0, _ := NewFor(name, SetStats{}); FingerprintOf(s0) != "" {
			t.Errorf("%s without data: fingerprint %q", name, FingerprintOf(s0))
		}
	}
}
