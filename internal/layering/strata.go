package layering

import (
	"fmt"
	"math"
	"math/bits"
	"sort"

	"strata/internal/closure"
)

// strataConfig holds the strata strategy's parameters; the package
// documentation says where each comes from.
type strataConfig struct {
	// foldShare: a private block is folded into its only referrer when
	// it is at most this share of the referrer's own size, so that an
	// update of the referrer alone re-uploads at most that much more.
	foldShare float64
	// foldK: a private block of at most foldK·ImageBytes/budget bytes is
	// folded whatever its referrer's size (when ImageBytes is known).
	foldK float64
	// sizeW weighs size against popularity in the ranking (log scale).
	sizeW float64
	// topBits is added to the value of a top-level block (popularity 0:
	// nothing in the package set refers to it). Such a path changes with
	// every update below it, so a layer of its own saves the most
	// re-uploading, and it is shared by every image that asks for it.
	topBits int
}

func defaultStrataConfig() strataConfig {
	return strataConfig{foldShare: 1.0 / 8, foldK: 8, sizeW: 3, topBits: 4}
}

// strata is the default strategy.
type strata struct {
	pop *popIndex
	cfg strataConfig
	// imageBytes is the package set's typical image size (SetStats).
	imageBytes int64
	imagePaths int
	configured
}

func newStrata(pop *popIndex, st SetStats) *strata {
	cfg := defaultStrataConfig()
	return &strata{pop: pop, cfg: cfg, imageBytes: st.ImageBytes, imagePaths: st.ImagePaths}
}

func (*strata) Name() string { return "strata" }

// The kinds of group Explain reports.
const (
	// KindOwn is a layer of its own: one path and the private paths
	// folded into it.
	KindOwn = "own"
	// KindTier is a group of paths without a layer of their own, of one
	// popularity tier, when an image is over its budget.
	KindTier = "tier"
	// KindGroup is a group of a strategy that does not explain itself.
	KindGroup = "group"
)

// Explanation says why the paths of a group are together.
type Explanation struct {
	Group
	// Kind is KindOwn, KindTier or KindGroup.
	Kind string `json:"kind"`
	// Root is, for KindOwn, the path the layer is for.
	Root string `json:"root,omitempty"`
	// Folded are, for KindOwn, the private paths folded into Root: paths
	// only Root refers to in the whole package set.
	Folded []string `json:"folded,omitempty"`
	// Tier names, for KindTier, the popularity tier: "shared" (paths
	// that two or more paths of the package set refer to) or "leaf"
	// (applications and private paths).
	Tier string `json:"tier,omitempty"`
	// Reason says in a sentence why the paths are together.
	Reason string `json:"reason"`
}

// Explainer is implemented by strategies that can say why they grouped
// paths as they did.
type Explainer interface {
	// Explain returns the groups Layers(g, budget) returns, in the same
	// order, each with its explanation.
	Explain(g *closure.Graph, budget int) []Explanation
}

// block is a set of paths that always occur together: a path and the paths
// folded into it.
type block struct {
	root  string
	paths []string
	size  int64
	pop   int64
}

func (s *strata) Layers(g *closure.Graph, budget int) []Group {
	ex := s.Explain(g, budget)
	out := make([]Group, len(ex))
	for i, e := range ex {
		out[i] = e.Group
	}
	return out
}

func (s *strata) Explain(g *closure.Graph, budget int) []Explanation {
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
	// Step 1: fold private paths into their only referrer, dependencies
	// first, so that a chain folds from its bottom.
	referrer := make(map[string]string)
	for _, p := range paths {
		for _, q := range g.Paths[p].References {
			if _, ok := g.Paths[q]; ok && rin[q] == 1 {
				referrer[q] = p
			}
		}
	}
	var foldAbs int64
	if s.imageBytes > 0 {
		foldAbs = int64(s.cfg.foldK * float64(s.imageBytes) / float64(budget) * float64(s.imagePaths) / float64(budget))
	}
	parent := make(map[string]string)
	bsize := make(map[string]int64, len(paths))
	order := topoDependentsFirst(g)
	for i := len(order) - 1; i >= 0; i-- {
		q := order[i]
		bsize[q] += g.Paths[q].NarSize
		p, ok := referrer[q]
		if !ok {
			continue
		}
		// Without popularity data nothing is known to be private in the
		// package set: a path with one referrer here may have many
		// elsewhere, and folding it here only would split its layers.
		if s.pop == nil {
			continue
		}
		if c, ok := popOf(q); !ok || c > 1 {
			continue
		}
		if bsize[q] <= foldAbs || float64(bsize[q]) <= s.cfg.foldShare*float64(g.Paths[p].NarSize) {
			parent[q] = p
			bsize[p] += bsize[q]
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
	var list []*block
	for _, p := range paths {
		if b := blocks[p]; b != nil {
			list = append(list, b)
		}
	}
	// Step 2: within budget, every block has a layer of its own.
	if len(list) <= budget {
		return s.explained(list, nil, len(list))
	}
	if budget == 1 {
		e := Explanation{Group: Group{Paths: paths}, Kind: KindTier, Tier: "all",
			Reason: "a budget of one group: every path is in it"}
		return []Explanation{e}
	}
	// Step 3: over budget, blocks are ranked by an image-independent
	// value; the best keep a layer of their own and the rest share one
	// group per popularity tier.
	sort.SliceStable(list, func(i, j int) bool { return s.before(list[i], list[j]) })
	solo := budget - 1
	for ; solo > 0; solo-- {
		used := make(map[bool]bool)
		for _, b := range list[solo:] {
			used[b.pop > 1] = true
		}
		if solo+len(used) <= budget {
			break
		}
	}
	tiers := make(map[bool][]*block)
	for _, b := range list[solo:] {
		tiers[b.pop > 1] = append(tiers[b.pop > 1], b)
	}
	return s.explained(list[:solo], tiers, len(list))
}

// explained orders the groups base first (blocks of their own by
// descending popularity, then the shared tier, then the leaf tier) and
// explains each.
func (s *strata) explained(solo []*block, tiers map[bool][]*block, nblocks int) []Explanation {
	solo = append([]*block(nil), solo...)
	sort.SliceStable(solo, func(i, j int) bool {
		if solo[i].pop != solo[j].pop {
			return solo[i].pop > solo[j].pop
		}
		return solo[i].root < solo[j].root
	})
	var out []Explanation
	for _, b := range solo {
		e := Explanation{Group: Group{Paths: sortedCopy(b.paths)}, Kind: KindOwn, Root: b.root}
		for _, p := range e.Paths {
			if p != b.root {
				e.Folded = append(e.Folded, p)
			}
		}
		switch {
		case tiers == nil:
			e.Reason = fmt.Sprintf("the image's %d blocks fit the budget: each has a layer of its own", nblocks)
		default:
			e.Reason = fmt.Sprintf("ranked among the image's best by size and popularity (value %d)", s.value(b))
		}
		if len(e.Folded) > 0 {
			e.Reason += fmt.Sprintf("; %d private path(s) only it refers to are folded in", len(e.Folded))
		}
		out = append(out, e)
	}
	for _, shared := range []bool{true, false} {
		bs := tiers[shared]
		if len(bs) == 0 {
			continue
		}
		var ps []string
		for _, b := range bs {
			ps = append(ps, b.paths...)
		}
		e := Explanation{Group: Group{Paths: sortedCopy(ps)}, Kind: KindTier}
		if shared {
			e.Tier = "shared"
			e.Reason = fmt.Sprintf("over budget (%d blocks): the %d libraries (popularity > 1) ranked below a layer of their own share one group", nblocks, len(bs))
		} else {
			e.Tier = "leaf"
			e.Reason = fmt.Sprintf("over budget (%d blocks): the %d applications and private paths (popularity ≤ 1) ranked below a layer of their own share one group", nblocks, len(bs))
		}
		out = append(out, e)
	}
	return out
}

func sortedCopy(ps []string) []string {
	out := append([]string(nil), ps...)
	sort.Strings(out)
	return out
}

// before orders blocks for a layer of their own: by value, then by package
// name, then by path.
func (s *strata) before(a, b *block) bool {
	va, vb := s.value(a), s.value(b)
	if va != vb {
		return va > vb
	}
	if na, nb := PName(StoreName(a.root)), PName(StoreName(b.root)); na != nb {
		return na < nb
	}
	return a.root < b.root
}

// value is the bytes a layer of its own is expected to save, size ×
// popularity with size weighed sizeW times, on a log scale in whole bits so
// that a version bump's small change of size rarely reorders; top-level
// blocks get topBits more.
func (s *strata) value(b *block) int {
	v := int(math.Round(s.cfg.sizeW*float64(bits.Len64(uint64(b.size))))) + bits.Len64(uint64(b.pop))
	if b.pop == 0 {
		v += s.cfg.topBits
	}
	return v
}
