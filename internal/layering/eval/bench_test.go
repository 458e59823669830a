package eval

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"strata/internal/layering"
)

// BenchmarkLayering measures every strategy on the tuning, the held-out and
// the fresh held-out corpora (see TuningSet, HeldOutSet and
// FreshHeldOutSet) at image budgets of 100 and 20 layers, with every update
// kind, and prints one table: efficiency (idealBytes/storedBytes, higher is
// better), the update cost a client pays for each update kind (fetched
// bytes / changed bytes, lower is better), the registry's cost of the mixed
// update, each corpus's bounds (EfficiencyBound, OracleEfficiency and
// UpdateCostBound) and the goals strata misses on held-out corpora.
//
//	go test -run '^$' -bench Layering -benchtime 1x ./internal/layering/eval/
func BenchmarkLayering(b *testing.B) {
	budgets := []int{100, 20}
	var rows []Row
	for i := 0; i < b.N; i++ {
		var err error
		rows, err = Compare("../../..", EvaluationSet(), budgets)
		if err != nil {
			b.Fatal(err)
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nlayering: efficiency and client update cost (leaf, mid, base, mixed) at budgets 100 / 20; mixed(reg) is the registry's update cost\n")
	WriteTable(&sb, rows)
	if m := Misses(rows); len(m) > 0 {
		fmt.Fprintf(&sb, "held-out goals strata misses (eff ≥ %.2f / %.2f, mixed cost ≤ %.1f / %.1f):\n  %s\n", Goals.Eff100, Goals.Eff20, Goals.Cost100, Goals.Cost20, strings.Join(m, "\n  "))
	} else {
		fmt.Fprintf(&sb, "held-out goals: all met\n")
	}
	fmt.Fprint(os.Stdout, sb.String())
	for _, r := range rows {
		if r.Strategy == "strata" && r.Corpus == "nixpkgs/1" {
			b.ReportMetric(r.Efficiency, fmt.Sprintf("eff%d", r.Budget))
		}
	}
	_ = layering.Names
}

// BenchmarkTuningStrata measures the strata strategy alone on the extended
// tuning set (ExtendedTuningSet: no held-out corpus) at budgets 100 and 20:
// efficiency and the client's cost of every update kind, with the means
// over the corpora. It is the measurement to tune on.
//
//	go test -run '^$' -bench TuningStrata -benchtime 1x ./internal/layering/eval/
func BenchmarkTuningStrata(b *testing.B) {
	specs := ExtendedTuningSet()
	budgets := []int{100, 20}
	type res struct {
		eff   [2]float64
		costs [2]map[string]float64
	}
	out := make([]res, len(specs))
	for i := 0; i < b.N; i++ {
		for j, spec := range specs {
			c, err := spec.Load("../../..")
			if err != nil {
				b.Fatal(err)
			}
			s, err := layering.NewFor("strata", c.Stats())
			if err != nil {
				b.Fatal(err)
			}
			kinds := c.UpdateKinds()
			for k, budget := range budgets {
				r := EvaluateUpdates(c, s, budget, kinds)
				if len(r.Problems) > 0 {
					b.Fatalf("%s: %s", spec, strings.Join(r.Problems, "; "))
				}
				out[j].eff[k] = r.Summary.Efficiency
				out[j].costs[k] = make(map[string]float64)
				for name, u := range r.Summary.Updates {
					out[j].costs[k][name] = u.ClientCost
				}
			}
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nstrata on the extended tuning set: efficiency and client update cost (leaf, mid, base, mixed) at budgets 100 / 20\n")
	var sumEff [2]float64
	sumCost := [2]map[string]float64{{}, {}}
	for j, spec := range specs {
		line := fmt.Sprintf("%-12s %5.3f/%5.3f", spec, out[j].eff[0], out[j].eff[1])
		for _, kind := range UpdateKindNames() {
			line += fmt.Sprintf(" %5.2f/%5.2f", out[j].costs[0][kind], out[j].costs[1][kind])
		}
		fmt.Fprintln(&sb, line)
		for k := range budgets {
			sumEff[k] += out[j].eff[k]
			for kind, v := range out[j].costs[k] {
				sumCost[k][kind] += v
			}
		}
	}
	n := float64(len(specs))
	line := fmt.Sprintf("%-12s %5.3f/%5.3f", "mean", sumEff[0]/n, sumEff[1]/n)
	for _, kind := range UpdateKindNames() {
		line += fmt.Sprintf(" %5.2f/%5.2f", sumCost[0][kind]/n, sumCost[1][kind]/n)
	}
	fmt.Fprintln(&sb, line)
	fmt.Fprint(os.Stdout, sb.String())
}
