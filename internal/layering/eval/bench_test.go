package eval

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"strata/internal/layering"
)

var benchTable sync.Once

// BenchmarkLayering measures every strategy on the checked-in corpus at image
// budgets of 100 and 20 layers. Each sub-benchmark reports efficiency
// (idealBytes/storedBytes, higher is better) and updatecost
// (updateNewBytes/updateChangedBytes, lower is better) as metrics; the first
// run also prints a table with strata's ratios over each baseline.
//
//	go test -run XXX -bench . ./internal/layering/
func BenchmarkLayering(b *testing.B) {
	c := loadCorpus(b)
	pop := c.Popularity()
	budgets := []int{100, 20}
	reports := make(map[string]map[int]Report)
	for _, name := range layering.Names() {
		reports[name] = make(map[int]Report)
		for _, budget := range budgets {
			s, err := layering.New(name, pop)
			if err != nil {
				b.Fatal(err)
			}
			r := Evaluate(c, s, budget)
			reports[name][budget] = r
			b.Run(fmt.Sprintf("%s/budget=%d", name, budget), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					Evaluate(c, s, budget)
				}
				b.ReportMetric(r.Summary.Efficiency, "efficiency")
				b.ReportMetric(*r.Summary.UpdateCost, "updatecost")
				b.ReportMetric(float64(r.Summary.MaxLayers), "maxlayers")
			})
		}
	}
	benchTable.Do(func() { printTable(reports, budgets) })
}

func printTable(reports map[string]map[int]Report, budgets []int) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nlayering on testdata/corpus/nixpkgs.json (efficiency: higher is better; update cost: lower is better)\n")
	fmt.Fprintf(&sb, "%-14s %6s %10s %11s %9s %14s %15s\n", "strategy", "budget", "efficiency", "update cost", "maxLayers", "strata/eff ×", "cost/strata ×")
	for _, budget := range budgets {
		st := reports["strata"][budget].Summary
		for _, name := range layering.Names() {
			s := reports[name][budget].Summary
			fmt.Fprintf(&sb, "%-14s %6d %10.3f %11.3f %9d %14.2f %15.2f\n", name, budget, s.Efficiency, *s.UpdateCost, s.MaxLayers,
				st.Efficiency/s.Efficiency, *s.UpdateCost / *st.UpdateCost)
		}
	}
	fmt.Fprint(os.Stdout, sb.String())
}
