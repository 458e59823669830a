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

// TestUpdateCostBound: no strategy pays less for an update than
// UpdateCostBound allows a layering that stores as much as it does; the
// bound falls as the layering stores more before the update, is 1 with a
// budget every image fits, and binds a layering that would share perfectly
// at a small budget.
func TestUpdateCostBound(t *testing.T) {
	c := loadCorpus(t)
	st := c.Stats()
	kinds := c.UpdateKinds()
	kinds[UpdateMixed] = c.ownUpdate()
	for _, budget := range []int{20, 8} {
		for kind, u := range kinds {
			b := updateBound(c, u, budget)
			reg0, client0 := b.costs(0)
			if kind == UpdateMixed && budget == 8 && reg0 <= 1 {
				t.Errorf("budget 8, %s: registry bound %.3f for perfect sharing, want > 1", kind, reg0)
			}
			if m := b.MaxEfficiency(Goals.Cost20); m <= 0 || m > 1 {
				t.Errorf("budget %d, %s: MaxEfficiency %.3f", budget, kind, m)
			}
			for _, name := range layering.Names() {
				s, _ := layering.NewFor(name, st)
				r := EvaluateUpdates(c, s, budget, map[string]*Update{kind: u})
				sum := r.Summary.Updates[kind]
				reg, client := UpdateCostBound(c, u, budget, r.Summary.StoredBytes-r.Summary.IdealBytes)
				if reg > reg0 || client > client0 {
					t.Errorf("budget %d, %s: bound with extra stored bytes (%.3f, %.3f) above the one without (%.3f, %.3f)", budget, kind, reg, client, reg0, client0)
				}
				if sum.Cost < reg-1e-9 || sum.ClientCost < client-1e-9 {
					t.Errorf("budget %d, %s, %s: costs %.3f (registry) and %.3f (clients) below the bounds %.3f and %.3f", budget, kind, name, sum.Cost, sum.ClientCost, reg, client)
				}
			}
		}
	}
	if reg, client := UpdateCostBound(c, c.ownUpdate(), 1000, 0); reg != 1 || client != 1 {
		t.Errorf("budget 1000: bounds %.3f and %.3f, want 1", reg, client)
	}
}
