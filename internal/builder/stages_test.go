package builder

import (
	"archive/tar"
	"context"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/buildreq"
	"strata/internal/image"
	"strata/internal/layer"
	"strata/internal/layering"
	"strata/internal/nixcache"
)

// The stages of buildPlatform, each on the fake Nix of request_test.go.

// names are the package names of store paths (sp's inverse), sorted.
func names(paths []string) []string {
	var out []string
	for _, p := range paths {
		_, n, _ := strings.Cut(strings.TrimPrefix(p, "/nix/store/"), "-")
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// stageInput resolves req on the test builder's only platform.
func stageInput(t *testing.T, b *Builder, req buildreq.Request) (Platform, *resolved, []string) {
	t.Helper()
	p := b.opts.Platforms[0]
	r, ns, err := b.resolve(context.Background(), req, p)
	if err != nil {
		t.Fatal(err)
	}
	return p, r, ns
}

func TestRealise(t *testing.T) {
	f, root := newFake(t)
	b := newTestBuilder(t, f, root)
	req := buildreq.Request{Name: "x", Packages: []string{"curl"}, Include: []string{"tool"}}
	p, r, ns := stageInput(t, b, req)
	rz, err := b.realise(context.Background(), req, p, r, ns)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(rz.graph.Sorted()), []string{"curl", "libc", "libssl", "tool"}; !slices.Equal(got, want) {
		t.Errorf("closure %v, want %v", got, want)
	}
	if rz.outs["curl"] != sp("curl") || rz.outs["tool"] != sp("tool") {
		t.Errorf("out paths %v", rz.outs)
	}
	if f.builds != 1 {
		t.Errorf("%d Nix builds, want 1", f.builds)
	}

	// A store path needs a driver that realises store paths.
	req.Packages = []string{sp("curl")}
	p, r, ns = stageInput(t, b, req)
	if _, err := b.realise(context.Background(), req, p, r, ns); err == nil || !strings.Contains(err.Error(), "cannot build store paths") {
		t.Errorf("store path without PathNix: %v", err)
	}
}

// planned realises and plans req.
func planned(t *testing.T, b *Builder, req buildreq.Request) (Platform, *resolved, []string, *realised, *layerPlan) {
	t.Helper()
	p, r, ns := stageInput(t, b, req)
	rz, err := b.realise(context.Background(), req, p, r, ns)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := b.planLayers(req, r, rz)
	if err != nil {
		t.Fatal(err)
	}
	return p, r, ns, rz, plan
}

func TestPlanLayers(t *testing.T) {
	f, root := newFake(t)
	b := newTestBuilder(t, f, root)
	req := buildreq.Request{Packages: []string{"app", "curl"}, MaxLayers: 3,
		Layers: []buildreq.LayerGroup{{Name: "net", Packages: []string{"curl"}}}}
	_, _, _, _, plan := planned(t, b, req)
	// The group first, then app (libc is the group's) in the one layer
	// the budget leaves; the customisation layer takes the third.
	if len(plan.groups) != 2 || len(plan.comments) != 2 {
		t.Fatalf("plan: %d groups, %d comments, want 2 and 2", len(plan.groups), len(plan.comments))
	}
	if got := names(plan.groups[0].Paths); !slices.Equal(got, []string{"curl", "libc", "libssl"}) {
		t.Errorf("group 1 holds %v", got)
	}
	if got := names(plan.groups[1].Paths); !slices.Equal(got, []string{"app"}) {
		t.Errorf("group 2 holds %v", got)
	}
	if plan.comments[0] != "layer group net: 3 store paths" || plan.comments[1] != "store path "+sp("app") {
		t.Errorf("comments %q", plan.comments)
	}
	if plan.closureInfo != nil {
		t.Errorf("a layered image has a closure-info path")
	}

	// A nix-snapshotter image needs the binary cache's recorder.
	req = buildreq.Request{Packages: []string{"app"}, Format: buildreq.FormatNixSnapshotter}
	p, r, ns := stageInput(t, b, req)
	rz, err := b.realise(context.Background(), req, p, r, ns)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.planLayers(req, r, rz); err == nil || !strings.Contains(err.Error(), "--cache-key-file") {
		t.Errorf("nix-snapshotter without a recorder: %v", err)
	}
}

func TestPackLayers(t *testing.T) {
	f, root := newFake(t)
	b := newTestBuilder(t, f, root)
	req := buildreq.Request{Packages: []string{"app", "curl"}, MaxLayers: 3,
		Layers: []buildreq.LayerGroup{{Name: "net", Packages: []string{"curl"}}}}
	p, _, _, rz, plan := planned(t, b, req)
	var mu sync.Mutex
	var events []Event
	b.opts.Progress = func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}
	st := &stats{}
	pk, err := b.packLayers(context.Background(), p, plan, rz.graph, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(pk.layers) != len(plan.groups) || pk.mounts != nil {
		t.Fatalf("%d layers (mounts %v) for %d groups", len(pk.layers), pk.mounts, len(plan.groups))
	}
	for i, grp := range plan.groups {
		if got := layerPaths(t, pk.layers[i]); !slices.Equal(got, names(grp.Paths)) {
			t.Errorf("layer %d holds %v, want %v", i, got, names(grp.Paths))
		}
	}
	if st.packed.Load() != 2 {
		t.Errorf("packed %d layers, want 2", st.packed.Load())
	}
	if len(events) != 3 || events[0].Kind != "layers" || events[0].Total != len(plan.groups)+1 {
		t.Errorf("events %+v, want the layer count with the customisation layer, then one per layer", events)
	}

	// Packed once: a second packing finds every layer stored.
	st2 := &stats{}
	again, err := b.packLayers(context.Background(), p, plan, rz.graph, st2)
	if err != nil {
		t.Fatal(err)
	}
	if st2.packed.Load() != 0 {
		t.Errorf("second packing packed %d layers, want 0", st2.packed.Load())
	}
	for i := range pk.layers {
		d1, _ := pk.layers[i].Digest()
		d2, _ := again.layers[i].Digest()
		if d1 != d2 {
			t.Errorf("layer %d: %s, then %s", i, d1, d2)
		}
	}
}

// tarNames lists a layer's entry names.
func tarNames(t *testing.T, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
}

func TestCustomise(t *testing.T) {
	f, root := newFake(t)
	b := newTestBuilder(t, f, root)
	req := buildreq.Request{Packages: []string{"curl"},
		Users: []layer.User{{Name: "app", UID: 1000, GID: 1000, Home: "/home/app", Shell: "/bin/sh"}},
		Files: []layer.File{{Path: "/etc/motd", Mode: 0o644, Content: []byte("hello\n")}}}
	p, r, ns, rz, _ := planned(t, b, req)
	l, env, err := b.customise(context.Background(), req, p, r, ns, rz, &stats{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range tarNames(t, l) {
		got = append(got, strings.TrimSuffix(strings.TrimPrefix(n, "./"), "/"))
	}
	for _, want := range []string{"bin", "etc/passwd", "etc/motd", "home/app", "tmp"} {
		if !slices.Contains(got, want) {
			t.Errorf("the customisation layer has no %s: %v", want, got)
		}
	}
	if len(env) == 0 || env[0] != "PATH="+layer.DefaultPath {
		t.Errorf("env %v, want PATH first", env)
	}

	// A Nix database needs a driver that writes one.
	req.NixDB = true
	if _, _, err := b.customise(context.Background(), req, p, r, ns, rz, &stats{}); err == nil || !strings.Contains(err.Error(), "cannot write a Nix database") {
		t.Errorf("Nix database without PathNix: %v", err)
	}
}

func TestStack(t *testing.T) {
	layers := make([]v1.Layer, 4)
	for i := range layers {
		l, err := random.Layer(64, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		layers[i] = l
	}
	plan := &layerPlan{groups: make([]layering.Group, 2), comments: []string{"a", "b"}}
	parts := stack(plan, &packedLayers{layers: layers[:2]}, layers[2])
	if !slices.Equal(parts.layers, layers[:3]) || !slices.Equal(parts.comments, []string{"a", "b", "customisation layer"}) || parts.annotations != nil {
		t.Errorf("layered image: %d layers, comments %q, annotations %v", len(parts.layers), parts.comments, parts.annotations)
	}

	ci := &nixcache.ClosureInfo{Path: sp("closure-info")}
	plan = &layerPlan{closureInfo: ci}
	parts = stack(plan, &packedLayers{mounts: layers[3]}, layers[2])
	if !slices.Equal(parts.layers, []v1.Layer{layers[2], layers[3]}) {
		t.Fatalf("nix-snapshotter image: %d layers, want the customisation layer then the mount points", len(parts.layers))
	}
	if parts.comments[1] != "nix-snapshotter mount points of "+ci.Path || len(parts.annotations) != 2 ||
		parts.annotations[0] != nil || parts.annotations[1][AnnotationNixClosure] != ci.Path {
		t.Errorf("comments %q, annotations %v", parts.comments, parts.annotations)
	}
}

func TestAssemble(t *testing.T) {
	f, root := newFake(t)
	b := newTestBuilder(t, f, root)
	ctx := context.Background()
	req := buildreq.Request{Name: "app", Packages: []string{"app"},
		Config:      image.Config{Env: []string{"A=1"}, Cmd: []string{"app"}},
		Annotations: map[string]string{"org.example.team": "x"}}
	p, r, ns, rz, plan := planned(t, b, req)
	pk, err := b.packLayers(ctx, p, plan, rz.graph, &stats{})
	if err != nil {
		t.Fatal(err)
	}
	custom, env, err := b.customise(ctx, req, p, r, ns, rz, &stats{})
	if err != nil {
		t.Fatal(err)
	}
	parts := stack(plan, pk, custom)
	parts.env = env
	parts.version = "1.2"
	im, err := b.assemble(ctx, req, p, parts)
	if err != nil {
		t.Fatal(err)
	}
	if im.oci.MediaType != types.OCIManifestSchema1 || im.docker.MediaType != types.DockerManifestSchema2 || im.platform.String() != "linux/amd64" {
		t.Errorf("refs %+v %+v, platform %s", im.oci, im.docker, im.platform)
	}
	art, err := b.Load(ctx, im.oci)
	if err != nil {
		t.Fatalf("the OCI manifest is not stored: %v", err)
	}
	m, err := art.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"org.opencontainers.image.title": "app", "org.opencontainers.image.version": "1.2", "org.example.team": "x"} {
		if m.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}
	if len(m.Layers) != len(parts.layers) {
		t.Errorf("%d layers, want %d", len(m.Layers), len(parts.layers))
	}
	cf, err := art.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append([]string(nil), env...), "A=1"); !slices.Equal(cf.Config.Env, want) {
		t.Errorf("env %v, want %v", cf.Config.Env, want)
	}
	if cf.History[len(cf.History)-1].Comment != "customisation layer" {
		t.Errorf("history %+v", cf.History)
	}
	if _, err := b.ReadBlob(ctx, im.docker.Digest); err != nil {
		t.Errorf("the Docker manifest is not stored: %v", err)
	}
}
