package layering

import (
	"sort"
	"strings"

	"strata/internal/closure"
)

// This file holds the simple "popularity" strategy and the three baselines,
// written from the published descriptions of the tools they model. They
// exist so that strata's own strategy can be measured against them.

// popularityStrategy gives the budget-1 most popular paths a layer each and
// merges the rest into one final layer. Popularity is the strategy's data when
// it has any (unknown paths count 0), else the number of referrers within the
// closure. Ties go to the larger path, then to the name.
type popularityStrategy struct {
	pop *popIndex
	configured
}

func (s *popularityStrategy) Name() string { return "popularity" }

func (s *popularityStrategy) Layers(g *closure.Graph, budget int) []Group {
	score := make(map[string]int64, len(g.Paths))
	if s.pop == nil {
		for p, n := range referrers(g) {
			score[p] = int64(n)
		}
	} else {
		for p := range g.Paths {
			score[p], _ = s.pop.lookup(p)
		}
	}
	ranked := g.Sorted()
	sort.SliceStable(ranked, func(i, j int) bool {
		a, b := ranked[i], ranked[j]
		if score[a] != score[b] {
			return score[a] > score[b]
		}
		if sa, sb := g.Paths[a].NarSize, g.Paths[b].NarSize; sa != sb {
			return sa > sb
		}
		if na, nb := StoreName(a), StoreName(b); na != nb {
			return na < nb
		}
		return a < b
	})
	return splitTop(ranked, budget)
}

// dockerTools models nixpkgs' dockerTools.streamLayeredImage: paths ranked by
// referencesByPopularity (closure-graph.py's popularity_contest, which counts
// how often a path appears in the tree of all paths from the closure's roots,
// ties broken by name), the first budget-1 paths a layer each and the rest in
// the last layer. It uses no external popularity data.
type dockerTools struct{}

func (dockerTools) Name() string { return "dockertools" }

func (dockerTools) Layers(g *closure.Graph, budget int) []Group {
	memo := make(map[string]map[string]float64)
	var contest func(p string) map[string]float64
	contest = func(p string) map[string]float64 {
		if m, ok := memo[p]; ok {
			return m
		}
		m := make(map[string]float64)
		for _, c := range g.Paths[p].References {
			m[c]++
			for q, n := range contest(c) {
				m[q] += n + 1
			}
		}
		memo[p] = m
		return m
	}
	refd := referrers(g)
	pop := make(map[string]float64, len(g.Paths))
	for _, r := range g.Sorted() {
		if refd[r] > 0 {
			continue // not a root of the reference graph
		}
		pop[r]++
		for q, n := range contest(r) {
			pop[q] += n + 1
		}
	}
	// closure-graph.py's package_name: the name first, the hash last.
	pkgName := func(p string) string {
		parts := strings.Split(p, "-")
		return strings.Join(append(parts[1:], parts[0]), "-")
	}
	ranked := g.Sorted()
	sort.SliceStable(ranked, func(i, j int) bool {
		a, b := ranked[i], ranked[j]
		if pop[a] != pop[b] {
			return pop[a] > pop[b]
		}
		return pkgName(a) < pkgName(b)
	})
	return splitTop(ranked, budget)
}

// nix2container models nix2container's layering with maxLayers: each path's
// score is 1 plus the scores of the paths that refer to it (the number of
// distinct reference chains that end at it), paths are ranked by score, the
// first budget-1 get a layer each and the rest share the last layer.
type nix2container struct{}

func (nix2container) Name() string { return "nix2container" }

func (nix2container) Layers(g *closure.Graph, budget int) []Group {
	order := topoDependentsFirst(g)
	score := make(map[string]float64, len(order))
	for _, p := range order {
		score[p] = 1
	}
	for _, p := range order {
		for _, r := range g.Paths[p].References {
			score[r] += score[p]
		}
	}
	ranked := g.Sorted()
	sort.SliceStable(ranked, func(i, j int) bool { return score[ranked[i]] > score[ranked[j]] })
	return splitTop(ranked, budget)
}

// topoDependentsFirst orders the paths of g so that every path comes before
// the paths it refers to. Ties are broken by path, so the order is
// deterministic.
func topoDependentsFirst(g *closure.Graph) []string {
	seen := make(map[string]bool, len(g.Paths))
	post := make([]string, 0, len(g.Paths))
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		for _, r := range g.Paths[p].References {
			if _, ok := g.Paths[r]; ok {
				visit(r)
			}
		}
		post = append(post, p)
	}
	for _, p := range g.Sorted() {
		visit(p)
	}
	for i, j := 0, len(post)-1; i < j; i, j = i+1, j-1 {
		post[i], post[j] = post[j], post[i]
	}
	return post
}

// NixeryBudget is the layer budget Nixery uses for store paths.
const NixeryBudget = 94

// nixery models Nixery's layers.go: a graph rooted at a synthetic image root
// with edges to the requested paths and to every path that is big (closure
// over 100 MB) or popular (count of 100 or more; nss-cacert and iana-etc are
// always popular), its dominator tree, one candidate layer per subtree
// hanging off the root, rated popularity(subtree root) × Σ closure size, and
// the lowest-rated merged pairwise until the budget (at most NixeryBudget)
// is met. Nixery's dependence on its cache state is not modelled: this
// baseline is deterministic.
type nixery struct {
	pop *popIndex
	configured
}

func (*nixery) Name() string { return "nixery" }

func (s *nixery) Layers(g *closure.Graph, budget int) []Group {
	if budget > NixeryBudget {
		budget = NixeryBudget
	}
	if budget < 1 {
		budget = 1
	}
	paths := g.Sorted()
	if len(paths) == 0 {
		return nil
	}
	closureSize := closureSizes(g)
	popOf := func(p string) int64 {
		n := StoreName(p)
		if strings.HasPrefix(n, "nss-cacert") || strings.HasPrefix(n, "iana-etc") {
			return 500000
		}
		if v, ok := s.pop.lookup(p); ok && v > 0 {
			return v
		}
		return 1
	}
	// Node 0 is the image root; path i is node i+1.
	id := make(map[string]int, len(paths))
	for i, p := range paths {
		id[p] = i + 1
	}
	succ := make([][]int, len(paths)+1)
	rootEdge := make(map[int]bool)
	roots := g.Roots
	if len(roots) == 0 {
		refd := referrers(g)
		for _, p := range paths {
			if refd[p] == 0 {
				roots = append(roots, p)
			}
		}
	}
	for _, r := range roots {
		if i, ok := id[r]; ok {
			rootEdge[i] = true
		}
	}
	for _, p := range paths {
		if closureSize[p] > 100*1000*1000 || popOf(p) >= 100 {
			rootEdge[id[p]] = true
		}
	}
	for i := 1; i <= len(paths); i++ {
		if rootEdge[i] {
			succ[0] = append(succ[0], i)
		}
	}
	for i, p := range paths {
		for _, r := range g.Paths[p].References {
			if j, ok := id[r]; ok {
				succ[i+1] = append(succ[i+1], j)
			}
		}
	}
	idom := dominators(succ)
	children := make([][]int, len(succ))
	for v := 1; v < len(succ); v++ {
		if idom[v] >= 0 {
			children[idom[v]] = append(children[idom[v]], v)
		}
	}
	type layer struct {
		paths  []string
		rating float64
	}
	var layers []layer
	for _, head := range children[0] {
		var l layer
		var size int64
		stack := []int{head}
		for len(stack) > 0 {
			v := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			p := paths[v-1]
			l.paths = append(l.paths, p)
			size += closureSize[p]
			stack = append(stack, children[v]...)
		}
		sort.Strings(l.paths)
		l.rating = float64(popOf(paths[head-1])) * float64(size)
		layers = append(layers, l)
	}
	// Paths unreachable from the image root (a closure without its roots)
	// each become a candidate of their own.
	for v := 1; v < len(succ); v++ {
		if idom[v] < 0 {
			p := paths[v-1]
			layers = append(layers, layer{paths: []string{p}, rating: float64(popOf(p)) * float64(closureSize[p])})
		}
	}
	sort.SliceStable(layers, func(i, j int) bool {
		if layers[i].rating != layers[j].rating {
			return layers[i].rating < layers[j].rating
		}
		return layers[i].paths[0] < layers[j].paths[0]
	})
	for len(layers) > budget {
		layers[1] = layer{paths: append(append([]string(nil), layers[0].paths...), layers[1].paths...), rating: layers[0].rating + layers[1].rating}
		layers = layers[1:]
	}
	groups := make([][]string, len(layers))
	for i, l := range layers {
		groups[i] = l.paths
	}
	return finish(groups)
}

// closureSizes returns the closure size (sum of NAR sizes of everything
// reachable, self included) of every path of g.
func closureSizes(g *closure.Graph) map[string]int64 {
	out := make(map[string]int64, len(g.Paths))
	for _, p := range g.Sorted() {
		var n int64
		for _, q := range g.Closure(p) {
			n += g.Paths[q].NarSize
		}
		out[p] = n
	}
	return out
}

// dominators computes the immediate dominator of every node of the graph
// given by succ, rooted at node 0, with the Cooper–Harvey–Kennedy iterative
// algorithm. idom[0] is 0; unreachable nodes get -1.
func dominators(succ [][]int) []int {
	n := len(succ)
	// Reverse postorder by an iterative DFS in successor order.
	order := make([]int, 0, n)
	num := make([]int, n)
	for i := range num {
		num[i] = -1
	}
	visited := make([]bool, n)
	type frame struct{ v, i int }
	stack := []frame{{0, 0}}
	visited[0] = true
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		if f.i < len(succ[f.v]) {
			w := succ[f.v][f.i]
			f.i++
			if !visited[w] {
				visited[w] = true
				stack = append(stack, frame{w, 0})
			}
			continue
		}
		order = append(order, f.v)
		stack = stack[:len(stack)-1]
	}
	for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
		order[i], order[j] = order[j], order[i]
	}
	for i, v := range order {
		num[v] = i
	}
	pred := make([][]int, n)
	for v, ws := range succ {
		if num[v] < 0 {
			continue
		}
		for _, w := range ws {
			pred[w] = append(pred[w], v)
		}
	}
	idom := make([]int, n)
	for i := range idom {
		idom[i] = -1
	}
	idom[0] = 0
	intersect := func(a, b int) int {
		for a != b {
			for num[a] > num[b] {
				a = idom[a]
			}
			for num[b] > num[a] {
				b = idom[b]
			}
		}
		return a
	}
	for changed := true; changed; {
		changed = false
		for _, v := range order[1:] {
			nd := -1
			for _, p := range pred[v] {
				if idom[p] < 0 {
					continue
				}
				if nd < 0 {
					nd = p
				} else {
					nd = intersect(p, nd)
				}
			}
			if nd != idom[v] {
				idom[v] = nd
				changed = true
			}
		}
	}
	return idom
}
