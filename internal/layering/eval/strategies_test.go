package eval

import (
	"reflect"
	"strings"
	"testing"

	"strata/internal/layering"
)

// TestDeterminismAcrossImages groups an image alone and after 30 others with
// the same strategy instance: the groups and their keys must be identical.
func TestDeterminismAcrossImages(t *testing.T) {
	c := loadCorpus(t)
	st := c.Stats()
	for _, name := range layering.Names() {
		for _, budget := range []int{99, 19} {
			fresh, _ := layering.NewFor(name, st)
			used, _ := layering.NewFor(name, st)
			target := c.Images[len(c.Images)-1]
			for _, im := range c.Images[:30] {
				used.Layers(c.ImageGraph(im.Roots), budget)
			}
			a := fresh.Layers(c.ImageGraph(target.Roots), budget)
			b := used.Layers(c.ImageGraph(target.Roots), budget)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("%s budget %d: groups of %s depend on earlier images", name, budget, target.Name)
			}
			for i := range a {
				if a[i].Key() != b[i].Key() {
					t.Fatalf("%s: keys differ", name)
				}
			}
		}
	}
}

// TestUpdateStability updates one leaf package (htop) and checks that only
// groups holding changed paths change.
func TestUpdateStability(t *testing.T) {
	c := loadCorpus(t)
	s, _ := layering.NewFor("strata", c.Stats())
	var htop string
	for p := range c.Updated {
		if strings.HasPrefix(layering.StoreName(p), "htop-") {
			htop = p
		}
	}
	if htop == "" {
		t.Fatal("corpus does not update htop")
	}
	for _, im := range c.Images {
		if !contains(im.Roots, htop) {
			continue
		}
		for _, budget := range []int{99, 19} {
			var roots []string
			for _, r := range im.Roots {
				if r == htop {
					r = c.Updated[htop]
				}
				roots = append(roots, r)
			}
			before := s.Layers(c.ImageGraph(im.Roots), budget)
			after := s.Layers(c.ImageGraph(roots), budget)
			old := make(map[string]bool)
			for _, gr := range before {
				old[gr.Key()] = true
			}
			for _, gr := range after {
				if old[gr.Key()] {
					continue
				}
				if !contains(gr.Paths, c.Updated[htop]) {
					t.Errorf("%s budget %d: new group %v holds no changed path", im.Name, budget, gr.Paths)
				}
			}
			if len(after) != len(before) {
				t.Errorf("%s budget %d: %d groups before, %d after", im.Name, budget, len(before), len(after))
			}
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestTargets asserts strata's measured sharing on the checked-in corpus, so
// that a regression fails make test.
func TestTargets(t *testing.T) {
	c := loadCorpus(t)
	st := c.Stats()
	for _, tc := range []struct {
		budget int
		min    float64
	}{{100, 0.9}, {20, 0.7}} {
		reports := make(map[string]Report)
		for _, name := range layering.Names() {
			s, _ := layering.NewFor(name, st)
			r := Evaluate(c, s, tc.budget)
			if len(r.Problems) > 0 {
				t.Fatalf("%s: %v", name, r.Problems)
			}
			if r.Summary.MaxLayers > tc.budget {
				t.Errorf("%s budget %d: an image has %d layers", name, tc.budget, r.Summary.MaxLayers)
			}
			reports[name] = r
		}
		st := reports["strata"].Summary
		if st.Efficiency < tc.min {
			t.Errorf("budget %d: strata efficiency %.3f, want ≥ %.2f", tc.budget, st.Efficiency, tc.min)
		}
		for _, base := range []string{"popularity", "dockertools", "nix2container", "nixery"} {
			b := reports[base].Summary
			if st.Efficiency <= b.Efficiency {
				t.Errorf("budget %d: strata efficiency %.3f does not beat %s (%.3f)", tc.budget, st.Efficiency, base, b.Efficiency)
			}
			if *st.UpdateCost >= *b.UpdateCost {
				t.Errorf("budget %d: strata update cost %.3f does not beat %s (%.3f)", tc.budget, *st.UpdateCost, base, *b.UpdateCost)
			}
		}
	}
}

// TestEveryCorpus: on every tuning, held-out and fresh held-out corpus, strata keeps an
// efficiency of 0.95 at budget 100, within 0.01 of the best baseline, and
// beats every baseline at budget 20.
func TestEveryCorpus(t *testing.T) {
	for _, spec := range EvaluationSet() {
		c, err := spec.Load("../../..")
		if err != nil {
			t.Fatal(err)
		}
		st := c.Stats()
		for _, budget := range []int{100, 20} {
			eff := make(map[string]float64)
			for _, name := range layering.Names() {
				s, _ := layering.NewFor(name, st)
				r := Evaluate(c, s, budget)
				if len(r.Problems) > 0 {
					t.Fatalf("%s %s: %v", spec, name, r.Problems)
				}
				eff[name] = r.Summary.Efficiency
			}
			for name, e := range eff {
				if name == "strata" {
					continue
				}
				if budget == 100 && eff["strata"] < e-0.01 {
					t.Errorf("%s budget 100: strata %.3f, %s %.3f", spec, eff["strata"], name, e)
				}
				if budget == 20 && eff["strata"] <= e {
					t.Errorf("%s budget 20: strata %.3f does not beat %s %.3f", spec, eff["strata"], name, e)
				}
			}
			if budget == 100 && eff["strata"] < 0.95 {
				t.Errorf("%s budget 100: strata efficiency %.3f < 0.95", spec, eff["strata"])
			}
		}
	}
}
