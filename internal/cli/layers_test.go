package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const smallCorpus = `{
 "paths": {
  "/nix/store/aaaa-glibc-2.39": {"narSize": 30000000, "references": []},
  "/nix/store/bbbb-zlib-1.3": {"narSize": 130000, "references": ["/nix/store/aaaa-glibc-2.39"]},
  "/nix/store/cccc-hello-2.12": {"narSize": 250000, "references": ["/nix/store/aaaa-glibc-2.39"]},
  "/nix/store/dddd-curl-8.7": {"narSize": 2000000, "references": ["/nix/store/aaaa-glibc-2.39", "/nix/store/bbbb-zlib-1.3"]},
  "/nix/store/eeee-curl-8.8": {"narSize": 2100000, "references": ["/nix/store/aaaa-glibc-2.39", "/nix/store/bbbb-zlib-1.3"]}
 },
 "images": [
  {"name": "hello", "roots": ["/nix/store/cccc-hello-2.12"]},
  {"name": "curl", "roots": ["/nix/store/dddd-curl-8.7"]},
  {"name": "hello-curl", "roots": ["/nix/store/cccc-hello-2.12", "/nix/store/dddd-curl-8.7"]}
 ],
 "updated": {"/nix/store/dddd-curl-8.7": "/nix/store/eeee-curl-8.8"}
}`

func runLayers(t *testing.T, args ...string) (map[string]any, error) {
	t.Helper()
	var out bytes.Buffer
	env := &Env{Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	root := NewRoot(env)
	root.SetArgs(append([]string{"layers"}, args...))
	if err := root.Execute(); err != nil {
		return nil, err
	}
	var v map[string]any
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	return v, nil
}

func TestLayersCommand(t *testing.T) {
	file := filepath.Join(t.TempDir(), "corpus.json")
	if err := os.WriteFile(file, []byte(smallCorpus), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, strategy := range []string{"strata", "popularity", "dockertools", "nix2container", "nixery"} {
		v, err := runLayers(t, "--budget", "3", "--strategy", strategy, file)
		if err != nil {
			t.Fatalf("%s: %v", strategy, err)
		}
		if imgs, ok := v["images"].([]any); !ok || len(imgs) != 3 {
			t.Fatalf("%s: images = %v", strategy, v["images"])
		}
		sum, ok := v["summary"].(map[string]any)
		if !ok {
			t.Fatalf("%s: no summary in %v", strategy, v)
		}
		for _, k := range []string{"idealBytes", "storedBytes", "efficiency", "maxLayers", "updateNewBytes", "updateChangedBytes", "updateCost"} {
			if _, ok := sum[k]; !ok {
				t.Errorf("%s: summary lacks %s: %v", strategy, k, sum)
			}
		}
		if ml := sum["maxLayers"].(float64); ml > 3 {
			t.Errorf("%s: maxLayers %v over the budget of 3", strategy, ml)
		}
	}
	popFile := filepath.Join(t.TempDir(), "pop.json")
	if err := os.WriteFile(popFile, []byte(`{"glibc-2.39": 1000, "zlib-1.3": 300}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runLayers(t, "--popularity", popFile, "--summary-only", file); err != nil {
		t.Fatal(err)
	}
	if _, err := runLayers(t, "--strategy", "nope", file); err == nil {
		t.Error("unknown strategy accepted")
	}
	if _, err := runLayers(t, "--budget", "1", file); err == nil {
		t.Error("budget 1 accepted")
	}
	if _, err := runLayers(t, filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
}

func runLayersText(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	env := &Env{Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	root := NewRoot(env)
	root.SetArgs(append([]string{"layers"}, args...))
	err := root.Execute()
	return out.String(), err
}

func TestLayersExplain(t *testing.T) {
	file := filepath.Join(t.TempDir(), "corpus.json")
	if err := os.WriteFile(file, []byte(smallCorpus), 0o644); err != nil {
		t.Fatal(err)
	}
	// Within budget: every block has a layer of its own (zlib, which only
	// curl refers to, is folded into it), and the curl update re-uploads
	// only curl's layer.
	out, err := runLayersText(t, "--budget", "4", "--explain", "hello-curl", file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"image hello-curl: 4 paths",
		"own layer: glibc-2.39",
		"own layer: curl-8.7 + folded private chain: zlib-1.3",
		"why: the image's 3 blocks fit the budget",
		"re-uploaded when any of 3 paths changes",
		"update mixed (bumps curl-8.7): re-uploads layers 3: fetch 2.2 MB for 2.1 MB changed (cost 1.06)",
		"update base  (bumps glibc-2.39): re-uploads layers 1, 2, 3:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--explain output lacks %q:\n%s", want, out)
		}
	}
	// Over budget: glibc keeps a layer, the rest share tier groups.
	out, err = runLayersText(t, "--budget", "3", "--explain", "hello-curl", file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"own layer: glibc-2.39", `tier "leaf"`, "over budget (3 blocks)"} {
		if !strings.Contains(out, want) {
			t.Errorf("--explain at budget 3 lacks %q:\n%s", want, out)
		}
	}
	// A baseline does not explain itself, but its layers and updates are
	// still listed.
	out, err = runLayersText(t, "--budget", "3", "--strategy", "dockertools", "--explain", "curl", file)
	if err != nil || !strings.Contains(out, "strategy dockertools does not explain its groups") || !strings.Contains(out, "update mixed") {
		t.Errorf("--explain with dockertools: %v\n%s", err, out)
	}
	if _, err := runLayersText(t, "--explain", "nope", file); err == nil || !strings.Contains(err.Error(), "hello-curl") {
		t.Errorf("unknown image: err = %v, want the list of images", err)
	}
}
