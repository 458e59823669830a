package e2e

import (
	"encoding/json"
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
