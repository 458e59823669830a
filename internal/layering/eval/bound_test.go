package eval

import (
	"testing"

	"strata/internal/layering"
)

// TestBounds: no strategy beats EfficiencyBound, the oracle layering does
// not either, and with a budget every image fits both are 1.
func TestBounds(t *testing.T) {
	c := loadCorpus(t)
	st := c.Stats()
	for _, budget := range []int{20, 8} {
		bound, extra := EfficiencyBound(c, budget)
		oracle := OracleEfficiency(c, budget)
		if bound >= 1 || extra <= 0 {
			t.Fatalf("budget %d: bound %.3f (extra %d) though images are over budget", budget, bound, extra)
		}
		if oracle > bound {
			t.Errorf("budget %d: oracle %.3f above the bound %.3f", budget, oracle, bound)
		}
		for _, name := range layering.Names() {
			s, _ := layering.NewFor(name, st)
			if e := Evaluate(c, s, budget).Summary.Efficiency; e > bound {
				t.Errorf("budget %d: %s reaches %.3f, above the bound %.3f", budget, name, e, bound)
			}
		}
		if m := MustShare(c, budget); m <= 0 || m >= 1 {
			t.Errorf("budget %d: must-share %.3f", budget, m)
		}
	}
	if b, _ := EfficiencyBound(c, 1000); b != 1 {
		t.Errorf("budget 1000: bound %.3f, want 1", b)
	}
	if o := OracleEfficiency(c, 1000); o != 1 {
		t.Errorf("budget 1000: oracle %.3f, want 1", o)
	}
}
