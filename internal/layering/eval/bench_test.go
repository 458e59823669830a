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

// BenchmarkTuningStrata measures the strata strategy on the extended
// tuning set (ExtendedTuningSet: no held-out corpus) at budgets 100 and 20:
// efficiency and the client's cost of every update kind, with the means
// over the corpora. It is the measurement to tune on.
//
//	go test -run '^$' -bench TuningStrata -benchtime 1x ./internal/layering/eval/
func BenchmarkTuningStrata(b *testing.B) {
	var rows []Row
	for i := 0; i < b.N; i++ {
		var err error
		rows, err = Compare("../../..", ExtendedTuningSet(), []int{100, 20})
		if err != nil {
			b.Fatal(err)
		}
	}
	// The strata rows of each corpus, budget 100 then 20.
	var corpora []string
	byCorpus := map[string]*[2]Row{}
	for _, r := range rows {
		if r.Strategy != "strata" {
			continue
		}
		if byCorpus[r.Corpus] == nil {
			byCorpus[r.Corpus] = &[2]Row{}
			corpora = append(corpora, r.Corpus)
		}
		k := 0
		if r.Budget != 100 {
			k = 1
		}
		byCorpus[r.Corpus][k] = r
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nstrata on the extended tuning set: efficiency and client update cost (leaf, mid, base, mixed) at budgets 100 / 20\n")
	kinds := UpdateKindNames()
	sum := make([][2]float64, len(kinds)+1) // efficiency, then each kind
	for _, name := range corpora {
		rs := byCorpus[name]
		line := fmt.Sprintf("%-12s %5.3f/%5.3f", name, rs[0].Efficiency, rs[1].Efficiency)
		for k := range rs {
			sum[0][k] += rs[k].Efficiency
		}
		for j, kind := range kinds {
			line += fmt.Sprintf(" %5.2f/%5.2f", rs[0].Updates[kind].ClientCost, rs[1].Updates[kind].ClientCost)
			for k := range rs {
				sum[j+1][k] += rs[k].Updates[kind].ClientCost
			}
		}
		fmt.Fprintln(&sb, line)
	}
	n := float64(len(corpora))
	line := fmt.Sprintf("%-12s %5.3f/%5.3f", "mean", sum[0][0]/n, sum[0][1]/n)
	for j := range kinds {
		line += fmt.Sprintf(" %5.2f/%5.2f", sum[j+1][0]/n, sum[j+1][1]/n)
	}
	fmt.Fprintln(&sb, line)
	fmt.Fprint(os.Stdout, sb.String())
}
