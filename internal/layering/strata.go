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
	tinyMax = 256 << 10
	// tierDiv sets the width of a popularity tier for small blocks: the
	// bit length of the popularity divided by tierDiv.
	tierDiv = 2
	// valueW weighs size against popularity when ranking blocks.
	valueW = 3
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
			if _, ok := g.Paths[q]; !ok || rin[q] != 1 || g.Paths[q].NarSize >= privateMax {
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
	// Step 2: blocks of tinyMax bytes or more are candidates for a layer of
	// their own, best first; smaller ones are merged.
	var cands, small []*block
	for _, h := range paths {
		b := blocks[h]
		if b == nil {
			continue
		}
		if b.size < tinyMax {
			small = append(small, b)
		} else {
			cands = append(cands, b)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return blockBefore(cands[i], cands[j]) })
	// Step 3: within budget, small blocks share one group per popularity
	// tier. Over budget, the best budget-1 candidates keep their own
	// layer and everything else goes to one final group.
	tiers := make(map[int][]string)
	for _, b := range small {
		t := bits.Len64(uint64(b.pop)) / tierDiv
		tiers[t] = append(tiers[t], b.paths...)
	}
	var groups [][]string
	if len(cands)+len(tiers) <= budget {
		// Solo blocks first, the most widely used first.
		sort.SliceStable(cands, func(i, j int) bool { return cands[i].pop > cands[j].pop })
		for _, b := range cands {
			groups = append(groups, b.paths)
		}
		keys := make([]int, 0, len(tiers))
		for t := range tiers {
			keys = append(keys, t)
		}
		sort.Sort(sort.Reverse(sort.IntSlice(keys)))
		for _, t := range keys {
			groups = append(groups, tiers[t])
		}
		return finish(groups)
	}
	keep := budget - 1
	if keep > len(cands) {
		keep = len(cands)
	}
	solo := append([]*block(nil), cands[:keep]...)
	sort.SliceStable(solo, func(i, j int) bool { return solo[i].pop > solo[j].pop })
	for _, b := range solo {
		groups = append(groups, b.paths)
	}
	var rest []string
	for _, b := range cands[keep:] {
		rest = append(rest, b.paths...)
	}
	for _, b := range small {
		rest = append(rest, b.paths...)
	}
	groups = append(groups, rest)
	return finish(groups)
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
	return valueW*bits.Len64(uint64(b.size)) + bits.Len64(uint64(b.pop))
}
