package builder

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"strata/internal/buildreq"
	"strata/internal/closure"
	"strata/internal/image"
	"strata/internal/nix"
	"strata/internal/storage"
)

// fakeNix serves a fixed closure from a directory standing in for /.
type fakeNix struct {
	graph  map[string]*closure.Path // store path → node
	attrs  map[string]string        // attribute → store path
	builds int
}

func sp(name string) string {
	return "/nix/store/" + strings.Repeat("a", 31) + string(rune('a'+len(name)%26)) + "-" + name
}

func (f *fakeNix) Revision(context.Context, string) (string, error) { return "rev1", nil }
func (f *fakeNix) ShellPackages(context.Context, string) ([]string, error) {
	return nil, nil
}
func (f *fakeNix) Resolve(_ context.Context, _ string, _ nix.Target, names []string) ([]nix.Package, error) {
	var out []nix.Package
	var unknown []nix.UnknownPackage
	for _, n := range names {
		if _, ok := f.attrs[n]; !ok {
			unknown = append(unknown, nix.UnknownPackage{Name: n})
			continue
		}
		out = append(out, nix.Package{Attr: n})
	}
	if len(unknown) > 0 {
		return nil, &nix.UnknownPackagesError{Packages: unknown}
	}
	return out, nil
}
func (f *fakeNix) Build(_ context.Context, _ string, _ nix.Target, attrs []string) (*nix.Result, error) {
	f.builds++
	res := &nix.Result{}
	var roots []string
	for _, a := range attrs {
		res.Packages = append(res.Packages, nix.Package{Attr: a, OutPath: f.attrs[a]})
		roots = append(roots, f.attrs[a])
	}
	var nodes []*closure.Path
	for _, n := range f.graph {
		c := *n
		c.References = append([]string(nil), n.References...)
		nodes = append(nodes, &c)
	}
	g, err := closure.New(nodes, roots)
	if err != nil {
		return nil, err
	}
	res.Graph = g.Sub(roots...)
	return res, nil
}

// newFake writes a little store: libc ← libssl ← curl, libc ← app, and
// tool (no deps).
func newFake(t *testing.T) (*fakeNix, string) {
	root := t.TempDir()
	f := &fakeNix{graph: map[string]*closure.Path{}, attrs: map[string]string{}}
	add := func(name string, refs ...string) string {
		p := sp(name)
		dir := filepath.Join(root, p, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\necho "+name+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		var rs []string
		for _, r := range refs {
			rs = append(rs, sp(r))
		}
		f.graph[p] = &closure.Path{Path: p, NarSize: 1000, References: rs}
		f.attrs[name] = p
		return p
	}
	add("libc")
	add("libssl", "libc")
	add("curl", "libssl", "libc")
	add("app", "libc")
	add("tool")
	return f, root
}

func newTestBuilder(t *testing.T, f *fakeNix, root string) *Builder {
	store, err := storage.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := image.ParsePlatform("linux/amd64")
	b, err := New(Options{Nix: f, Store: store, StoreRoot: root, Platforms: []Platform{{Platform: p}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func layerPaths(t *testing.T, l v1.Layer) []string {
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	seen := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rest, ok := strings.CutPrefix(strings.TrimPrefix(h.Name, "./"), "nix/store/"); ok {
			if top, _, _ := strings.Cut(rest, "/"); top != "" {
				seen[top] = true
			}
		}
	}
	var out []string
	for p := range seen {
		_, name, _ := strings.Cut(p, "-")
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func TestExplicitGroupsInOrder(t *testing.T) {
	f, root := newFake(t)
	b := newTestBuilder(t, f, root)
	ctx := context.Background()
	req := buildreq.Request{
		Name:     "groups",
		Packages: []string{"app", "curl"},
		Include:  []string{"tool"},
		Layers: []buildreq.LayerGroup{
			{Name: "net", Packages: []string{"curl"}},
			{Name: "app", Packages: []string{"app"}},
		},
		Config: image.Config{Env: []string{"PATH=/custom", "LANG=C"}},
	}
	r, err := b.Build(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r.LayersPacked == 0 {
		t.Errorf("first build packed nothing")
	}
	art, err := b.Load(ctx, r.OCI)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := art.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	// net: curl's closure; app: app minus libc; then tool; then custom.
	want := [][]string{{"curl", "libc", "libssl"}, {"app"}, {"tool"}}
	if len(layers) != len(want)+1 {
		t.Fatalf("%d layers, want %d", len(layers), len(want)+1)
	}
	for i, w := range want {
		if got := layerPaths(t, layers[i]); !slices.Equal(got, w) {
			t.Errorf("layer %d holds %v, want %v", i, got, w)
		}
	}
	cf, err := art.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Env, []string{"PATH=/custom", "LANG=C"}) {
		t.Errorf("env %v: the description's PATH replaces the default in place", cf.Config.Env)
	}
	if cf.History[0].Comment != "layer group net: 3 store paths" {
		t.Errorf("history %q", cf.History[0].Comment)
	}

	// Same request: cached image, nothing packed.
	again, err := b.Build(ctx, req)
	if err != nil || !again.Cached || again.LayersPacked != 0 || again.OCI.Digest != r.OCI.Digest {
		t.Fatalf("rebuild: %+v %v", again, err)
	}
	// One package swapped outside the groups: only its layer and the
	// customisation layer are packed.
	req.Include = nil
	req.Packages = []string{"app", "curl", "tool"}
	changed, err := b.Build(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if changed.LayersPacked != 1 {
		t.Errorf("after moving tool into packages %d layers were packed, want 1 (the customisation layer)", changed.LayersPacked)
	}
}

func TestGroupWithNothingNewFails(t *testing.T) {
	f, root := newFake(t)
	b := newTestBuilder(t, f, root)
	_, err := b.Build(context.Background(), buildreq.Request{
		Packages: []string{"curl"},
		Layers:   []buildreq.LayerGroup{{Packages: []string{"curl"}}, {Name: "ssl", Packages: []string{"libssl"}}},
	})
	if err == nil || !strings.Contains(err.Error(), "layer group 2 (ssl) adds no store path") {
		t.Fatalf("err = %v", err)
	}
}

func TestBudgetTooSmallForGroups(t *testing.T) {
	f, root := newFake(t)
	b := newTestBuilder(t, f, root)
	_, err := b.Build(context.Background(), buildreq.Request{
		Packages:  []string{"curl", "app"},
		Layers:    []buildreq.LayerGroup{{Packages: []string{"curl"}}},
		MaxLayers: 2,
	})
	if err == nil || !strings.Contains(err.Error(), "raise maxLayers") {
		t.Fatalf("err = %v", err)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "SSL_CERT_FILE=/x"}, []string{"A=1", "PATH=/opt/bin:/bin"})
	if want := []string{"PATH=/opt/bin:/bin", "SSL_CERT_FILE=/x", "A=1"}; !slices.Equal(got, want) {
		t.Fatalf("mergeEnv = %v, want %v", got, want)
	}
}
