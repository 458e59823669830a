package eval

import (
	"bytes"
	"sort"
	"testing"
)

// TestGenerateShapes: every shape gives a valid corpus of its number of
// images, with a mixed update, the same for the same seed and another for
// another seed; the heavy-tailed shape has paths far above its median.
func TestGenerateShapes(t *testing.T) {
	for name, sh := range Shapes {
		a, b := Generate(sh, 3), Generate(sh, 3)
		if !bytes.Equal(marshalCorpus(t, a), marshalCorpus(t, b)) {
			t.Fatalf("%s: the same seed gives different corpora", name)
		}
		if bytes.Equal(marshalCorpus(t, a), marshalCorpus(t, Generate(sh, 4))) {
			t.Errorf("%s: seeds 3 and 4 give the same corpus", name)
		}
		if _, err := ParseCorpus(marshalCorpus(t, a)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(a.Images) != sh.Images {
			t.Errorf("%s: %d images, want %d", name, len(a.Images), sh.Images)
		}
		if len(a.Updated) == 0 {
			t.Errorf("%s: no update", name)
		}
		k := a.UpdateKinds()
		for _, kind := range []string{UpdateLeaf, UpdateMid, UpdateBase} {
			if k[kind] == nil || len(k[kind].Map) == 0 {
				t.Errorf("%s: no %s update", name, kind)
			}
		}
		if base := k[UpdateBase]; base != nil && len(base.Map) < len(a.PackageSet().Paths)/2 {
			t.Errorf("%s: the base update changes %d of %d paths, want most", name, len(base.Map), len(a.PackageSet().Paths))
		}
	}
	c := Generate(Shapes["heavytail"], 3)
	var sizes []int64
	for _, p := range c.Paths {
		sizes = append(sizes, p.NarSize)
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	if med, max := sizes[len(sizes)/2], sizes[len(sizes)-1]; max < 50*med {
		t.Errorf("heavytail: largest path %d, median %d: no heavy tail", max, med)
	}
}
