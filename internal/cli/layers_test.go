package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
