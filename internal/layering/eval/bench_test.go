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
