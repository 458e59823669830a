package eval

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"strata/internal/layering"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/corpus/nixpkgs.json from GenerateCorpus")

const corpusFile = "../../../testdata/corpus/nixpkgs.json"

// MarshalCorpus is the checked-in form of a corpus: indented JSON with
// sorted keys and a final newline.
func marshalCorpus(t testing.TB, c *Corpus) []byte {
	t.Helper()
	data, err := json.MarshalIndent(c, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return append(data, '\n')
}

// TestCorpusGolden regenerates the corpus and compares it with the checked-in
// file. Run with -update-corpus after changing the generator.
func TestCorpusGolden(t *testing.T) {
	want := marshalCorpus(t, GenerateCorpus(CorpusSeed))
	if *updateCorpus {
		if err := os.MkdirAll(filepath.Dir(corpusFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(corpusFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(corpusFile)
	if err != nil {
		t.Fatalf("%v (run: go test ./internal/layering/eval -run TestCorpusGolden -update-corpus)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from GenerateCorpus(%d); run: go test ./internal/layering/eval -run TestCorpusGolden -update-corpus", corpusFile, CorpusSeed)
	}
	c, err := ParseCorpus(got)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Paths); n < 200 || n > 1000 {
		t.Errorf("corpus has %d paths, want a few hundred", n)
	}
	if len(c.Images) < 40 {
		t.Errorf("corpus has %d images, want 40 or more", len(c.Images))
	}
	largest := 0
	for _, im := range c.Images {
		if n := len(c.ImageGraph(im.Roots).Paths); n > largest {
			largest = n
		}
	}
	if largest <= 120 {
		t.Errorf("largest image has %d paths, want well over 100", largest)
	}
	if len(c.Updated) == 0 {
		t.Error("corpus has no updates")
	}
}

func loadCorpus(t testing.TB) *Corpus {
	t.Helper()
	data, err := os.ReadFile(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCorpus(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseCorpusErrors(t *testing.T) {
	for name, in := range map[string]string{
		"not json":      `{`,
		"no paths":      `{"paths": {}, "images": []}`,
		"dangling ref":  `{"paths": {"/nix/store/a-x": {"narSize": 1, "references": ["/nix/store/b-y"]}}, "images": []}`,
		"unknown root":  `{"paths": {"/nix/store/a-x": {"narSize": 1}}, "images": [{"name": "i", "roots": ["/nix/store/b-y"]}]}`,
		"negative size": `{"paths": {"/nix/store/a-x": {"narSize": -1}}, "images": []}`,
		"cycle":         `{"paths": {"/nix/store/a-x": {"narSize": 1, "references": ["/nix/store/b-y"]}, "/nix/store/b-y": {"narSize": 1, "references": ["/nix/store/a-x"]}}, "images": []}`,
		"bad update":    `{"paths": {"/nix/store/a-x": {"narSize": 1}}, "images": [], "updated": {"/nix/store/a-x": "/nix/store/c-z"}}`,
		"no roots":      `{"paths": {"/nix/store/a-x": {"narSize": 1}}, "images": [{"name": "i", "roots": []}]}`,
		"trailing":      `{"paths": {"/nix/store/a-x": {"narSize": 1}}, "images": []} {}`,
	} {
		if _, err := ParseCorpus([]byte(in)); err == nil {
			t.Errorf("%s: ParseCorpus succeeded", name)
		}
	}
}

func FuzzParseCorpus(f *testing.F) {
	f.Add([]byte(`{"paths": {"/nix/store/a-x": {"narSize": 1, "references": ["/nix/store/b-y"]}, "/nix/store/b-y": {"narSize": 2}}, "images": [{"name": "i", "roots": ["/nix/store/a-x"]}], "updated": {"/nix/store/b-y": "/nix/store/a-x"}}`))
	f.Add([]byte(`{"paths": {"/nix/store/a-x": {"narSize": 1, "references": ["/nix/store/a-x"]}}, "images": []}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCorpus(data)
		if err != nil {
			return
		}
		// A corpus that parses can be evaluated without panicking and
		// every strategy honours its contract on it.
		for _, name := range layering.Names() {
			s, err := layering.NewFor(name, c.Stats())
			if err != nil {
				t.Fatal(err)
			}
			r := Evaluate(c, s, 3)
			if len(r.Problems) > 0 {
				t.Fatalf("%s: %v", name, r.Problems)
			}
		}
	})
}
