package eval

import (
	"reflect"
	"testing"

	"strata/internal/layering"
)

// TestExplainAgreesWithEvaluate: the explained groups are the strategy's
// groups, and the bytes the explanation says each image fetches after an
// update add up to what EvaluateUpdates measures.
func TestExplainAgreesWithEvaluate(t *testing.T) {
	c := loadCorpus(t)
	kinds := c.UpdateKinds()
	for _, name := range []string{"strata", "dockertools"} {
		s, _ := layering.NewFor(name, c.Stats())
		for _, budget := range []int{100, 20} {
			r := EvaluateUpdates(c, s, budget, kinds)
			fetch := make(map[string]int64)
			for i, im := range c.Images {
				x, err := Explain(c, s, budget, im.Name, kinds)
				if err != nil {
					t.Fatal(err)
				}
				var got []layering.Group
				for _, l := range x.Layers {
					got = append(got, l.Group)
					if l.Reason == "" || l.Kind == "" {
						t.Fatalf("%s %s: a layer without a kind or reason", name, im.Name)
					}
				}
				if want := s.Layers(c.ImageGraph(im.Roots), budget-1); !reflect.DeepEqual(got, want) {
					t.Fatalf("%s %s budget %d: explained groups differ from Layers", name, im.Name, budget)
				}
				if len(x.Layers) != len(r.Images[i].Layers) {
					t.Fatalf("%s %s: %d layers explained, %d evaluated", name, im.Name, len(x.Layers), len(r.Images[i].Layers))
				}
				for _, u := range x.Updates {
					fetch[u.Kind] += u.FetchBytes
				}
			}
			for kind, u := range r.Summary.Updates {
				if fetch[kind] != u.ClientBytes {
					t.Errorf("%s budget %d %s: explanations fetch %d bytes, evaluation %d", name, budget, kind, fetch[kind], u.ClientBytes)
				}
			}
		}
	}
}
