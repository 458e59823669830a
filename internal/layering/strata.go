package layering

import (
	"math/bits"
	"sort"

	"strata/internal/closure"
)

// Tuning of the strata strategy; see the package documentation.
const (
	// privateMax is the largest path that is folded into the one path that
	// refers to it; larger paths keep a block of their own so that an
	// update of their referrer does not re-upload them.
	privateMax = 4 << 20
	// tinyMax is the largest block that never gets a layer of its own.
	tinyMax = 1 << 20
)

// strata is the default strategy.
type strata struct{ pop *popIndex }

func newStrata(pop *popIndex) *strata { return &strata{pop: pop} }

func (*strata) Name() string { return "strata" }

// block is a set of paths that always occur together: a path and the paths
// folded into it.
type block struct {
	root  string
	paths []string
	size  int64
	pop   int64
}

func (s *strata) Layers(g *closure.Graph, budget int) []Group {
	if budget < 1 {
		budget = 1
	}
	paths := g.Sorted()
	if len(paths) == 0 {
		return nil
	}
	rin := referrers(g)
	isRoot := make(map[string]bool, len(g.Roots))
	for _, r := range g.Roots {
		isRoot[r] = true
	}
	popOf := func(p string) (int64, bool) {
		if s.pop == nil {
			return int64(rin[p]), true
		}
		return s.pop.lookup(p)
	}
	// Step 1: fold private paths into their only referrer.
	parent := make(map[string]string)
	for _, p := range paths {
		for _, q := range g.Paths[p].References {
			if _, ok := g.Paths[q]; !ok || isRoot[q] || rin[q] != 1 || g.Paths[q].NarSize >= privateMax {
				continue
			}
			if c, ok := popOf(q); ok && c <= 1 {
				parent[q] = p
			}
		}
	}
	headOf := func(p string) string {
		for {
			q, ok := parent[p]
			if !ok {
				return p
			}
			p = q
		}
	}
	blocks := make(map[string]*block)
	for _, p := range paths {
		h := headOf(p)
		b := blocks[h]
		if b == nil {
			c, _ := popOf(h)
			b = &block{root: h, pop: c}
			blocks[h] = b
		}
		b.paths = append(b.paths, p)
		b.size += g.Paths[p].NarSize
	}
	// Step 2: candidates for a layer of their own, best first.
	var cands, merged []*block
	for _, h := range paths {
		b := blocks[h]
		if b == nil {
			continue
		}
		if b.size < tinyMax {
			merged = append(merged, b)
		} else {
			cands = append(cands, b)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return blockBefore(cands[i], cands[j]) })
	// Step 3: merged blocks go to a group per popularity tier.
	tierOf := func(b *block) int { return bits.Len64(uint64(b.pop)) / 2 }
	tiers := make(map[int][]*block)
	for _, b := range merged {
		tiers[tierOf(b)] = append(tiers[tierOf(b)], b)
	}
	keep := len(cands)
	for keep+len(tierSet(tiers, cands[keep:], tierOf)) > budget && keep > 0 {
		keep--
	}
	for _, b := range cands[keep:] {
		tiers[tierOf(b)] = append(tiers[tierOf(b)], b)
	}
	var groups [][]string
	for _, b := range cands[:keep] {
		groups = append(groups, b.paths)
	}
	tierKeys := make([]int, 0, len(tiers))
	for t := range tiers {
		tierKeys = append(tierKeys, t)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(tierKeys)))
	var tierGroups [][]string
	for _, t := range tierKeys {
		var ps []string
		for _, b := range tiers[t] {
			ps = append(ps, b.paths...)
		}
		tierGroups = append(tierGroups, ps)
	}
	// Too many tiers for the budget: merge the least popular ones.
	room := budget - keep
	for len(tierGroups) > room && len(tierGroups) > 1 {
		n := len(tierGroups)
		tierGroups[n-2] = append(tierGroups[n-2], tierGroups[n-1]...)
		tierGroups = tierGroups[:n-1]
	}
	return finish(append(groups, tierGroups...))
}

// tierSet counts the distinct tiers of the merged blocks (already in tiers)
// and of extra.
func tierSet(tiers map[int][]*block, extra []*block, tierOf func(*block) int) map[int]bool {
	set := make(map[int]bool, len(tiers))
	for t := range tiers {
		set[t] = true
	}
	for _, b := range extra {
		set[tierOf(b)] = true
	}
	return set
}

// blockBefore orders blocks for a layer of their own: by the bytes a layer
// of their own is expected to save (size × popularity, on a log scale so
// that small changes of size do not reorder), then by name.
func blockBefore(a, b *block) bool {
	va, vb := blockValue(a), blockValue(b)
	if va != vb {
		return va > vb
	}
	if na, nb := PName(StoreName(a.root)), PName(StoreName(b.root)); na != nb {
		return na < nb
	}
	return a.root < b.root
}

func blockValue(b *block) int {
	return 2*bits.Len64(uint64(b.size)) + bits.Len64(uint64(b.pop))
}
