package cli

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"strata/internal/layering"
	"strata/internal/layering/eval"
)

// TestPackageSetStrategyIsTheBenchmarks: the strategy strata build and
// strata serve get from --package-set groups every image of a corpus
// exactly as the layering benchmark's strata strategy (configured with the
// corpus's Stats) does, at both benchmark budgets; without data it is the
// strategy as before (layering.Default, no fingerprint).
func TestPackageSetStrategyIsTheBenchmarks(t *testing.T) {
	file := filepath.Join("..", "..", "testdata", "corpus", "nixpkgs.json")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := eval.ParseCorpus(data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := loadStrategy(context.Background(), "", "", file)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := layering.NewFor("strata", c.Stats())
	differs := 0
	for _, budget := range []int{99, 19} {
		for _, im := range c.Images {
			g := c.ImageGraph(im.Roots)
			a, b := got.Layers(g, budget), want.Layers(g, budget)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("budget %d, image %s: --package-set gives %d groups, the benchmark's strategy %d", budget, im.Name, len(a), len(b))
			}
			if !reflect.DeepEqual(a, layering.Default().Layers(g, budget)) {
				differs++
			}
		}
	}
	if differs == 0 {
		t.Error("the package set's statistics changed no image's layers: the flag has no effect")
	}
	if layering.FingerprintOf(got) == "" || layering.FingerprintOf(got) != layering.FingerprintOf(want) {
		t.Errorf("fingerprints %q and %q: want equal and non-empty", layering.FingerprintOf(got), layering.FingerprintOf(want))
	}
	none, err := loadStrategy(context.Background(), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if fp := layering.FingerprintOf(none); fp != "" {
		t.Errorf("without data the fingerprint is %q, want empty (builder cache keys unchanged)", fp)
	}
	g := c.ImageGraph(c.Images[len(c.Images)-1].Roots)
	if !reflect.DeepEqual(none.Layers(g, 19), layering.Default().Layers(g, 19)) {
		t.Error("without data the strategy differs from layering.Default")
	}
}

func TestPackageSetErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"paths": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{bad, filepath.Join(t.TempDir(), "missing.json")} {
		_, err := loadStrategy(context.Background(), "", "", file)
		if err == nil || !strings.Contains(err.Error(), "--package-set") {
			t.Errorf("%s: error %v, want one naming --package-set", file, err)
		}
	}
	// strata build passes the flag on: a bad package set fails the build
	// before Nix is asked for anything.
	env := &Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	root := NewRoot(env)
	pkgs := t.TempDir()
	if err := os.WriteFile(filepath.Join(pkgs, "default.nix"), []byte("{ ... }: { }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root.SetArgs([]string{"build", "--pkgs-path", pkgs, "--cache-dir", t.TempDir(), "--package-set", bad, "hello"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "--package-set") {
		t.Errorf("strata build --package-set %s: error %v, want one naming --package-set", bad, err)
	}
}
