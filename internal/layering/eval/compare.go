package eval

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"strata/internal/layering"
)

// CorpusSpec names one corpus of the evaluation.
type CorpusSpec struct {
	// Shape is "nixpkgs" (GenerateCorpus), "debian12" (the checked-in
	// corpus from Debian 12's graph) or a key of Shapes (Generate).
	Shape string
	Seed  uint64
	// HeldOut marks corpora that were never used to choose the strata
	// strategy's parameters.
	HeldOut bool
	// Fresh marks held-out corpora whose seeds were drawn after the
	// strategy's last tuning (see FreshHeldOutSet): no result on them was
	// seen while tuning, not even the held-out table.
	Fresh bool
}

// Set names the set the corpus belongs to in reports: "tuning",
// "held-out" or "fresh" (held out, seeds new since the last tuning).
func (s CorpusSpec) Set() string {
	switch {
	case s.Fresh:
		return "fresh"
	case s.HeldOut:
		return "held-out"
	}
	return "tuning"
}

func (s CorpusSpec) String() string {
	if s.Shape == "debian12" {
		return s.Shape
	}
	return fmt.Sprintf("%s/%d", s.Shape, s.Seed)
}

// TuningSet are the corpora the strata strategy's parameters were chosen
// on.
func TuningSet() []CorpusSpec {
	return []CorpusSpec{{Shape: "nixpkgs", Seed: CorpusSeed}, {Shape: "layered", Seed: 1}, {Shape: "deep", Seed: 1}}
}

// HeldOutSet are corpora never used for tuning: other seeds of the tuning
// shapes, shapes never seen (wide, flat, heavytail) and Debian 12's real
// graph.
func HeldOutSet() []CorpusSpec {
	out := []CorpusSpec{{Shape: "nixpkgs", Seed: 7}, {Shape: "layered", Seed: 11}, {Shape: "deep", Seed: 11},
		{Shape: "wide", Seed: 11}, {Shape: "flat", Seed: 11}, {Shape: "heavytail", Seed: 11}, {Shape: "debian12"}}
	for i := range out {
		out[i].HeldOut = true
	}
	return out
}

// FreshSeed is the seed of FreshHeldOutSet's corpora, drawn on 2026-12-02
// after the strata strategy's last tuning.
const FreshSeed = 2026

// FreshHeldOutSet are held-out corpora of every generated shape with a seed
// drawn after the last tuning (FreshSeed), so that no result on them could
// steer the strategy, not even through the published held-out table.
// Debian 12's graph has no seed and has no fresh counterpart.
func FreshHeldOutSet() []CorpusSpec {
	var out []CorpusSpec
	for _, sh := range []string{"nixpkgs", "layered", "deep", "wide", "flat", "heavytail"} {
		out = append(out, CorpusSpec{Shape: sh, Seed: FreshSeed, HeldOut: true, Fresh: true})
	}
	return out
}

// EvaluationSet is every corpus the benchmark reports: the tuning set, the
// held-out set and the fresh held-out set.
func EvaluationSet() []CorpusSpec {
	return append(append(TuningSet(), HeldOutSet()...), FreshHeldOutSet()...)
}

// Load builds or reads the corpus; root is the repository's root (for
// testdata/corpus).
func (s CorpusSpec) Load(root string) (*Corpus, error) {
	switch s.Shape {
	case "nixpkgs":
		return GenerateCorpus(s.Seed), nil
	case "debian12":
		data, err := os.ReadFile(filepath.Join(root, "testdata", "corpus", "debian12.json"))
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		return ParseCorpus(data)
	}
	sh, ok := Shapes[s.Shape]
	if !ok {
		return nil, fmt.Errorf("eval: unknown corpus shape %q", s.Shape)
	}
	return Generate(sh, s.Seed), nil
}

// Row is the measurement of one strategy on one corpus at one budget.
type Row struct {
	Corpus  string
	HeldOut bool
	// Set is the spec's Set: "tuning", "held-out" or "fresh".
	Set        string
	Strategy   string
	Budget     int
	Efficiency float64
	// Bound is EfficiencyBound for the corpus and budget.
	Bound float64
	// MustShare is the share of the images' bytes that no layering can
	// give layers of their own: in each image, all but the budget-2
	// largest paths (one group left for the rest), over all images.
	MustShare float64
	// Oracle is OracleEfficiency for the corpus and budget.
	Oracle    float64
	MaxLayers int
	Updates   map[string]*UpdateSummary
	// UpdateBound is, per update kind, UpdateCostBound's client bound for
	// a layering that shares as well as any can before the update (it
	// stores EfficiencyBound's least extra bytes), and UpdateBoundReg the
	// registry's.
	UpdateBound, UpdateBoundReg map[string]float64
	// MixedBoundSame is UpdateCostBound's client bound on the mixed update
	// for a layering that stores the images with no more bytes than this
	// row's strategy.
	MixedBoundSame float64
	// MixedGoalEff is the highest efficiency with which any layering can
	// meet the mixed update's cost goal at this budget (UpdateBound's
	// MaxEfficiency); 1 when the bound does not constrain it.
	MixedGoalEff float64
}

// NoDataStrata labels the rows of the strata strategy without any data
// about the package set (layering.Default: no popularity, no SetStats), as
// strata build and strata serve without --popularity run it.
const NoDataStrata = "strata-nodata"

// Goals are the targets for the strata strategy on every held-out
// corpus.
var Goals = struct {
	Eff100, Eff20, Cost100, Cost20 float64
}{0.95, 0.70, 1.2, 2.0}

// Compare evaluates every strategy of layering.Names on every corpus of
// specs at each budget, with every update kind.
func Compare(root string, specs []CorpusSpec, budgets []int) ([]Row, error) {
	results := make([][]Row, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, spec := range specs {
		wg.Add(1)
		go func(i int, spec CorpusSpec) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := spec.Load(root)
			if err != nil {
				errs[i] = err
				return
			}
			st := c.Stats()
			kinds := c.UpdateKinds()
			all := make(map[string]*Update, len(kinds)+1)
			for k, u := range kinds {
				all[k] = u
			}
			if len(c.Updated) > 0 {
				all[UpdateMixed] = c.ownUpdate()
			}
			for _, b := range budgets {
				bound, boundExtra := EfficiencyBound(c, b)
				must := MustShare(c, b)
				oracle := OracleEfficiency(c, b)
				ub, ubReg := make(map[string]float64), make(map[string]float64)
				bounds := make(map[string]UpdateBound)
				for k, u := range all {
					bounds[k] = updateBound(c, u, b)
					ubReg[k], ub[k] = bounds[k].costs(boundExtra)
				}
				goalEff := 1.0
				if mb, ok := bounds[UpdateMixed]; ok {
					goal := Goals.Cost20
					if b >= 100 {
						goal = Goals.Cost100
					}
					goalEff = mb.MaxEfficiency(goal)
				}
				for _, name := range append(layering.Names(), NoDataStrata) {
					var s layering.Strategy
					var err error
					if name == NoDataStrata {
						s, err = layering.NewFor("strata", layering.SetStats{})
					} else {
						s, err = layering.NewFor(name, st)
					}
					if err != nil {
						errs[i] = err
						return
					}
					r := EvaluateUpdates(c, s, b, kinds)
					if len(r.Problems) > 0 {
						errs[i] = fmt.Errorf("eval: %s on %s: %s", name, spec, strings.Join(r.Problems, "; "))
						return
					}
					row := Row{Corpus: spec.String(), HeldOut: spec.HeldOut, Set: spec.Set(), Strategy: name, Budget: b,
						Efficiency: r.Summary.Efficiency, Bound: bound, MustShare: must, Oracle: oracle, MaxLayers: r.Summary.MaxLayers, Updates: r.Summary.Updates,
						UpdateBound: ub, UpdateBoundReg: ubReg, MixedGoalEff: goalEff}
					if mb, ok := bounds[UpdateMixed]; ok {
						_, row.MixedBoundSame = mb.costs(r.Summary.StoredBytes - r.Summary.IdealBytes)
					}
					results[i] = append(results[i], row)
				}
			}
		}(i, spec)
	}
	wg.Wait()
	var rows []Row
	for i := range specs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		rows = append(rows, results[i]...)
	}
	return rows, nil
}

// WriteTable prints rows as a table: per corpus and strategy, efficiency
// and the client's update cost of each update kind at budgets 100 and 20,
// and the registry's cost of the mixed update.
func WriteTable(w io.Writer, rows []Row) {
	type key struct{ corpus, strategy string }
	byKey := make(map[key]map[int]Row)
	var order []key
	for _, r := range rows {
		k := key{r.Corpus, r.Strategy}
		if byKey[k] == nil {
			byKey[k] = make(map[int]Row)
			order = append(order, k)
		}
		byKey[k][r.Budget] = r
	}
	cell := func(r Row, ok bool, kind string, registry bool) string {
		if !ok {
			return "-"
		}
		u := r.Updates[kind]
		if u == nil {
			return "-"
		}
		if registry {
			return fmt.Sprintf("%.2f", u.Cost)
		}
		return fmt.Sprintf("%.2f", u.ClientCost)
	}
	fmt.Fprintf(w, "%-14s %-8s %-13s %11s %11s %11s %11s %11s %11s\n", "corpus", "set", "strategy", "efficiency", "leaf", "mid", "base", "mixed", "mixed(reg)")
	fmt.Fprintf(w, "%-14s %-8s %-13s %11s %11s %11s %11s %11s %11s\n", "", "", "", "100 / 20", "100 / 20", "100 / 20", "100 / 20", "100 / 20", "100 / 20")
	last := ""
	for _, k := range order {
		a, okA := byKey[k][100]
		b, okB := byKey[k][20]
		r := a
		if !okA {
			r = b
		}
		if k.corpus != last {
			set := r.Set
			line := fmt.Sprintf("%-14s %-8s %-13s %5.3f/%5.3f", k.corpus, set, "(bound)", a.Bound, b.Bound)
			for _, kind := range UpdateKindNames() {
				line += fmt.Sprintf(" %5s/%5s", boundCell(a, okA, kind, false), boundCell(b, okB, kind, false))
			}
			line += fmt.Sprintf(" %5s/%5s", boundCell(a, okA, UpdateMixed, true), boundCell(b, okB, UpdateMixed, true))
			fmt.Fprintf(w, "%s  (efficiency ≤; update cost ≥ for a layering at the efficiency bound; bytes that must share a layer: %.0f%% / %.0f%%)\n",
				line, 100*a.MustShare, 100*b.MustShare)
			fmt.Fprintf(w, "%-14s %-8s %-13s %5.3f/%5.3f  (a layering that knows every image: co-occurring paths together, the largest own layers, the rest one group)\n",
				"", "", "(oracle)", a.Oracle, b.Oracle)
			last = k.corpus
		}
		line := fmt.Sprintf("%-14s %-8s %-13s %5.3f/%5.3f", "", "", k.strategy, a.Efficiency, b.Efficiency)
		for _, kind := range UpdateKindNames() {
			line += fmt.Sprintf(" %5s/%5s", cell(a, okA, kind, false), cell(b, okB, kind, false))
		}
		line += fmt.Sprintf(" %5s/%5s", cell(a, okA, UpdateMixed, true), cell(b, okB, UpdateMixed, true))
		fmt.Fprintln(w, line)
	}
}

// boundCell formats UpdateBound (or, for registry, UpdateBoundReg) of kind.
func boundCell(r Row, ok bool, kind string, registry bool) string {
	m := r.UpdateBound
	if registry {
		m = r.UpdateBoundReg
	}
	v, has := m[kind]
	if !ok || !has {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// Misses lists, for the strata strategy on the held-out corpora of rows,
// every goal of Goals it misses, with the corpus's efficiency bound.
func Misses(rows []Row) []string {
	var out []string
	for _, r := range rows {
		if !r.HeldOut || r.Strategy != "strata" {
			continue
		}
		effGoal, costGoal := Goals.Eff100, Goals.Cost100
		if r.Budget != 100 {
			effGoal, costGoal = Goals.Eff20, Goals.Cost20
		}
		if r.Efficiency < effGoal {
			out = append(out, fmt.Sprintf("%s budget %d: efficiency %.3f < %.2f (any layering: ≤ %.3f; one that knows every image, simply: %.3f; %.0f%% of the bytes must share a layer)", r.Corpus, r.Budget, r.Efficiency, effGoal, r.Bound, r.Oracle, 100*r.MustShare))
		}
		if u := r.Updates[UpdateMixed]; u != nil && u.ClientCost > costGoal {
			why := fmt.Sprintf("any layering: ≥ %.2f at the efficiency bound, ≥ %.2f storing no more than strata", r.UpdateBound[UpdateMixed], r.MixedBoundSame)
			if r.MixedGoalEff < 1 {
				why += fmt.Sprintf("; ≤ %.1f only with efficiency ≤ %.3f", costGoal, r.MixedGoalEff)
			}
			if r.UpdateBound[UpdateMixed] <= costGoal && r.MixedBoundSame <= costGoal {
				why += ": the bound does not rule the goal out"
			}
			out = append(out, fmt.Sprintf("%s budget %d: mixed update cost %.2f > %.1f (%s)", r.Corpus, r.Budget, u.ClientCost, costGoal, why))
		}
	}
	sort.Strings(out)
	return out
}

// MustShare returns the share of the images' bytes that cannot have layers
// of their own at an image budget of budget layers: in each image, every
// path but the budget-2 largest (the customisation layer and one group
// for the rest take the other two), summed over the images.
func MustShare(c *Corpus, budget int) float64 {
	g := c.Graph()
	var must, total int64
	for _, im := range c.Images {
		var sizes []int64
		for _, p := range g.Closure(im.Roots...) {
			sizes = append(sizes, g.Paths[p].NarSize)
			total += g.Paths[p].NarSize
		}
		if len(sizes) <= budget-1 {
			continue
		}
		sort.Slice(sizes, func(i, j int) bool { return sizes[i] > sizes[j] })
		for _, n := range sizes[budget-2:] {
			must += n
		}
	}
	return ratio(must, total)
}

// ExtendedTuningSet is the tuning set with seeds 2 to 5 of each tuning
// shape (nixpkgs, layered, deep): more corpora of the shapes the strata
// strategy's parameters may be chosen on, never of the held-out ones.
func ExtendedTuningSet() []CorpusSpec {
	out := TuningSet()
	for _, sh := range []string{"nixpkgs", "layered", "deep"} {
		for seed := uint64(2); seed <= 5; seed++ {
			out = append(out, CorpusSpec{Shape: sh, Seed: seed})
		}
	}
	return out
}
