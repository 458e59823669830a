package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// blobGets returns the digests of the blobs fetched with GET, from the
// registry's access log.
func blobGets(s *server) map[string]int {
	out := map[string]int{}
	for _, rec := range s.logRecords("request") {
		path, _ := rec["path"].(string)
		if rec["method"] == "GET" && strings.Contains(path, "/blobs/sha256:") {
			out[path[strings.LastIndex(path, "/")+1:]]++
		}
	}
	return out
}

func layerDigests(t *testing.T, s *server, name string) []string {
	t.Helper()
	_, _, body := manifestDigest(t, s.Addr, name, "latest")
	var m struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// A client that has one image downloads only the new layers of an
// overlapping one.
func TestSecondPullFetchesOnlyNewLayers(t *testing.T) {
	s := startServer(t, serverOpts{})
	p := newPodman(t)
	first, second := "shell/bigapp", "shell/bigapp/hello/iana-etc"
	p.must(5*time.Minute, "pull", "--tls-verify=false", s.Addr+"/"+first)
	fetched := blobGets(s)
	a := layerDigests(t, s, first)
	b := layerDigests(t, s, second)
	inA := map[string]bool{}
	for _, d := range a {
		inA[d] = true
		if fetched[d] == 0 {
			t.Fatalf("first pull did not fetch its layer %s", d)
		}
	}
	shared, fresh := 0, 0
	for _, d := range b {
		if inA[d] {
			shared++
		} else {
			fresh++
		}
	}
	if shared < 2 || fresh == 0 {
		t.Fatalf("%s and %s share %d layers and differ in %d; want the store paths of %s shared", first, second, shared, fresh, first)
	}
	p.must(5*time.Minute, "pull", "--tls-verify=false", s.Addr+"/"+second)
	after := blobGets(s)
	for _, d := range b {
		got := after[d] - fetched[d]
		switch {
		case inA[d] && got != 0:
			t.Errorf("second pull fetched shared layer %s again", d)
		case !inA[d] && got == 0:
			t.Errorf("second pull did not fetch its new layer %s", d)
		}
	}
	t.Logf("second pull: %d layers shared with the first, %d fetched", shared, fresh)
}

// An image's layers and digests do not depend on what the server built
// before it: built alone, and after 30 other images that share its store
// paths, it is the same image.
func TestDeterministicWhateverWasBuiltBefore(t *testing.T) {
	target := "shell/bigapp/hello"
	alone := startServer(t, serverOpts{})
	want, _, _ := manifestDigest(t, alone.Addr, target, "latest")

	busy := startServer(t, serverOpts{})
	pkgs := []string{"hello", "bigapp", "libfoo", "libbar", "zlib", "glibc", "iana-etc", "cacert",
		"python3", "python3packages.numpy", "python3packages.requests", "gnumake", "sdl2", "busybox"}
	var names []string
	for i := 0; i < len(pkgs) && len(names) < 30; i++ {
		names = append(names, pkgs[i], "shell/"+pkgs[i])
		if j := i + 1; j < len(pkgs) {
			names = append(names, pkgs[i]+"/"+pkgs[j])
		}
	}
	names = names[:30]
	for _, n := range names {
		if n == target {
			t.Fatalf("the 30 others include the target")
		}
		manifestDigest(t, busy.Addr, n, "latest")
	}
	got, _, _ := manifestDigest(t, busy.Addr, target, "latest")
	if got != want {
		t.Fatalf("%s is %s after 30 other builds and %s alone", target, got, want)
	}
	a, b := layerDigests(t, alone, target), layerDigests(t, busy, target)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("layers differ:\nalone %v\nafter %v", a, b)
	}
}

// The `strata layers` commands of the README run and say what they should.
func TestLayersReadmeCommands(t *testing.T) {
	nixpkgs := filepath.Join(repoRoot, "testdata", "corpus", "nixpkgs.json")
	debian := filepath.Join(repoRoot, "testdata", "corpus", "debian12.json")
	out := mustRun(t, 2*time.Minute, strataBin, "layers", "--budget", "20", "--explain", "python3-datascience", nixpkgs)
	for _, want := range []string{"image python3-datascience: 158 paths", "own layer: glibc-", "why: ranked among the image's best", `tier "shared"`, `tier "leaf"`, "update mixed", "re-uploads layers"} {
		if !strings.Contains(out, want) {
			t.Errorf("--explain output lacks %q:\n%s", want, out)
		}
	}
	out = mustRun(t, 2*time.Minute, strataBin, "layers", "--budget", "20", "--strategy", "dockertools", "--summary-only", debian)
	var v struct {
		Strategy string
		Summary  struct {
			Efficiency       float64
			UpdateCost       *float64
			ClientUpdateCost *float64
			Updates          map[string]struct{ ClientCost float64 }
		}
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if v.Strategy != "dockertools" || v.Summary.Efficiency <= 0 || v.Summary.Efficiency > 1 || v.Summary.UpdateCost == nil || v.Summary.ClientUpdateCost == nil {
		t.Errorf("summary: %+v", v)
	}
	for _, k := range []string{"leaf", "mid", "base", "mixed"} {
		if u, ok := v.Summary.Updates[k]; !ok || u.ClientCost < 1 {
			t.Errorf("summary.updates[%s] = %+v, want a cost ≥ 1", k, u)
		}
	}
}

// blobGetBytes sums the bytes of the successful blob GETs in the access log
// from record index from on, and returns the number of records.
func blobGetBytes(s *server, from int) (int64, int, int) {
	recs := s.logRecords("request")
	var n int64
	count := 0
	for _, rec := range recs[min(from, len(recs)):] {
		path, _ := rec["path"].(string)
		status, _ := rec["status"].(float64)
		if rec["method"] == "GET" && strings.Contains(path, "/blobs/sha256:") && status == 200 {
			b, _ := rec["bytes"].(float64)
			n += int64(b)
			count++
		}
	}
	return n, count, len(recs)
}

// nixClosure returns the closure of a store path as corpus paths: narSize
// and references (nix path-info's array form of Nix 2.8 and object form of
// 2.19 on).
func nixClosure(t *testing.T, out string) map[string]map[string]any {
	t.Helper()
	raw := stdoutOf(t, "nix", "--extra-experimental-features", "nix-command", "path-info", "--json", "-r", out)
	paths := map[string]map[string]any{}
	var arr []map[string]any
	if err := json.Unmarshal([]byte(raw), &arr); err == nil {
		for _, p := range arr {
			paths[p["path"].(string)] = map[string]any{"narSize": p["narSize"], "references": p["references"]}
		}
	} else {
		var obj map[string]map[string]any
		if err := json.Unmarshal([]byte(raw), &obj); err != nil {
			t.Fatalf("nix path-info: %v\n%s", err, raw)
		}
		for k, p := range obj {
			paths[k] = map[string]any{"narSize": p["narSize"], "references": p["references"]}
		}
	}
	for p, v := range paths {
		var refs []string
		if rs, ok := v["references"].([]any); ok {
			for _, r := range rs {
				if r.(string) != p {
					refs = append(refs, r.(string))
				}
			}
		}
		v["references"] = refs
	}
	return paths
}

// Real pulls confirm the update-cost model: strata serve serves libfoo,
// then libfoo after a bump of libbar (the library under it, so libfoo
// changes too while zlib and glibc do not), with 3 layers per image so
// that the unchanged zlib shares a layer with changed paths; podman pulls
// both; the bytes podman fetches from the registry for the update (its
// access log), over the bytes of the changed paths, match the update cost
// `strata layers` computes for the same closures and budget within 5 %.
// The synthetic libraries are incompressible, so compressed blob bytes and
// NAR bytes agree; the rest is the image config and the customisation
// layer.
func TestRealPullMatchesUpdateModel(t *testing.T) {
	need(t, "nix-build")
	repo := t.TempDir()
	gitc := gitIn(t, repo)
	mustRun(t, time.Minute, "cp", "-rT", filepath.Join(repoRoot, "testdata", "pkgs"), repo)
	build := func() string {
		return strings.TrimSpace(stdoutOf(t, "nix-build", "--no-out-link", "--option", "substituters", "", repo, "-A", "libfoo"))
	}
	gitc("init", "-q", "-b", "main")
	gitc("add", ".")
	gitc("commit", "-q", "-m", "v1")
	gitc("tag", "v1")
	before := build()
	nixFile := filepath.Join(repo, "default.nix")
	src, err := os.ReadFile(nixFile)
	if err != nil {
		t.Fatal(err)
	}
	bumped := strings.Replace(string(src), `pname = "libbar";
    version = "2.4.1";`, `pname = "libbar";
    version = "2.4.2";`, 1)
	if bumped == string(src) {
		t.Fatal("the package set has no libbar 2.4.1 to bump")
	}
	if err := os.WriteFile(nixFile, []byte(bumped), 0o644); err != nil {
		t.Fatal(err)
	}
	gitc("commit", "-q", "-am", "v2")
	gitc("tag", "v2")
	after := build()
	if before == after {
		t.Fatal("bumping libbar did not change libfoo")
	}

	// The model: a corpus of the image and its update.
	paths := nixClosure(t, before)
	newPaths := nixClosure(t, after)
	pkgKey := func(p string) string {
		name := p[strings.IndexByte(p, '-')+1:]
		return name[:strings.LastIndexByte(name, '-')]
	}
	byKey := map[string]string{}
	for p := range paths {
		byKey[pkgKey(p)] = p
	}
	updated := map[string]string{}
	for p, v := range newPaths {
		if _, ok := paths[p]; ok {
			continue
		}
		old, ok := byKey[pkgKey(p)]
		if !ok {
			t.Fatalf("%s has no counterpart before the update", p)
		}
		updated[old] = p
		paths[p] = v
	}
	if len(updated) != 2 {
		t.Fatalf("the update changes %v, want libbar and libfoo", updated)
	}
	corpus, _ := json.Marshal(map[string]any{"paths": paths, "images": []map[string]any{{"name": "libfoo", "roots": []string{before}}}, "updated": updated})
	corpusFile := filepath.Join(t.TempDir(), "corpus.json")
	if err := os.WriteFile(corpusFile, corpus, 0o644); err != nil {
		t.Fatal(err)
	}
	var model struct {
		Summary struct {
			Updates map[string]struct {
				ClientBytes, ClientChangedBytes int64
				ClientCost                      float64
			}
		}
	}
	out := mustRun(t, time.Minute, strataBin, "layers", "--budget", "3", "--summary-only", corpusFile)
	if err := json.Unmarshal([]byte(out), &model); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	m := model.Summary.Updates["mixed"]
	if m.ClientChangedBytes == 0 || m.ClientCost < 1.05 {
		t.Fatalf("model: %s; want an update that re-uploads unchanged bytes too", out)
	}

	// Reality: podman pulls v1, then v2.
	s := startServer(t, serverOpts{source: []string{"--pkgs-repo", repo}, args: []string{"--max-layers", "3"}})
	p := newPodman(t)
	p.must(5*time.Minute, "pull", "--tls-verify=false", s.Addr+"/libfoo:v1")
	_, _, mark := blobGetBytes(s, 0)
	p.must(5*time.Minute, "pull", "--tls-verify=false", s.Addr+"/libfoo:v2")
	fetched, blobs, _ := blobGetBytes(s, mark)
	real := float64(fetched) / float64(m.ClientChangedBytes)
	t.Logf("update: podman fetched %d bytes in %d blobs; model: %d bytes of layers for %d changed bytes; cost real %.3f, model %.3f",
		fetched, blobs, m.ClientBytes, m.ClientChangedBytes, real, m.ClientCost)
	if d := (real - m.ClientCost) / m.ClientCost; d > 0.05 || d < -0.05 {
		t.Fatalf("real update cost %.3f and the model's %.3f differ by %.1f %%", real, m.ClientCost, 100*d)
	}
}

// stdoutOf runs a command (5 minutes at most) and returns its standard
// output; it fails the test with the standard error.
func stdoutOf(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
