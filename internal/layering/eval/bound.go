package eval

import (
	"math"
	"sort"
	"strings"
)

// EfficiencyBound returns an upper bound on the efficiency any layering
// (image-independent or not, knowing every image) can reach on c with an
// image budget of budget layers, and the lower bound on the extra stored
// bytes it comes from.
//
// The argument: paths held by exactly the same images form a class; a
// layering loses nothing by keeping a class together. An image of n classes
// has at most budget-1 groups, so some group holds k ≥ 2 classes, and of
// those at most one can be stored in that layer only: two classes stored
// only there would be held by the same images, so they would be one class.
// Hence each image I has at least need(I) = n(I)-(budget-1) classes that
// are stored twice or more, and the set D of such classes costs at least
// its bytes over the ideal. The least weight of D such that
// |D ∩ I| ≥ need(I) for every image is bounded below by the dual of its
// linear relaxation: for any y ≥ 0,
//
//	Σ_I need(I)·y(I) − Σ_c max(0, Σ_{I∋c} y(I) − bytes(c))
//
// is a lower bound; projected subgradient ascent on y finds a good one.
func EfficiencyBound(c *Corpus, budget int) (eff float64, extra int64) {
	g := c.Graph()
	member := make(map[string][]int)
	for i, im := range c.Images {
		for _, p := range g.Closure(im.Roots...) {
			member[p] = append(member[p], i)
		}
	}
	type class struct {
		bytes  float64
		images []int
	}
	byKey := make(map[string]*class)
	var ideal int64
	for p, ims := range member {
		ideal += g.Paths[p].NarSize
		var sb strings.Builder
		for _, i := range ims {
			sb.WriteString(string(rune(i + 1)))
		}
		k := sb.String()
		cl := byKey[k]
		if cl == nil {
			cl = &class{images: ims}
			byKey[k] = cl
		}
		cl.bytes += float64(g.Paths[p].NarSize)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	classes := make([]*class, len(keys))
	n := make([]int, len(c.Images))
	for i, k := range keys {
		classes[i] = byKey[k]
		for _, im := range classes[i].images {
			n[im]++
		}
	}
	need := make([]float64, len(c.Images))
	any := false
	for i := range need {
		if v := n[i] - (budget - 1); v > 0 {
			need[i] = float64(v)
			any = true
		}
	}
	if !any || ideal == 0 {
		return 1, 0
	}
	y := make([]float64, len(c.Images))
	value := func() (float64, []float64) {
		v := 0.0
		grad := append([]float64(nil), need...)
		for i := range y {
			v += need[i] * y[i]
		}
		for _, cl := range classes {
			s := 0.0
			for _, im := range cl.images {
				s += y[im]
			}
			if s > cl.bytes {
				v -= s - cl.bytes
				for _, im := range cl.images {
					grad[im]--
				}
			}
		}
		return v, grad
	}
	var maxBytes float64
	for _, cl := range classes {
		if cl.bytes > maxBytes {
			maxBytes = cl.bytes
		}
	}
	best := 0.0
	for _, start := range []float64{maxBytes / 10, maxBytes / 1000, maxBytes / 100000} {
		for i := range y {
			y[i] = 0
		}
		step := start
		for it := 0; it < 1500; it++ {
			v, grad := value()
			if v > best {
				best = v
			}
			var norm float64
			for _, d := range grad {
				norm += d * d
			}
			if norm == 0 {
				break
			}
			norm = math.Sqrt(norm)
			for i := range y {
				y[i] += step * grad[i] / norm
				if y[i] < 0 {
					y[i] = 0
				}
			}
			step *= 0.997
		}
	}
	extra = int64(best)
	return float64(ideal) / float64(ideal+extra), extra
}

// OracleEfficiency is the efficiency of a layering that knows every image
// of c: paths held by exactly the same images (a class) share a layer, each
// image keeps the budget-2 largest of its classes in layers of their own
// and puts the rest into one group. No image-independent strategy knows the
// classes; this shows what even that knowledge reaches with a simple rule,
// beside EfficiencyBound's ceiling.
func OracleEfficiency(c *Corpus, budget int) float64 {
	g := c.Graph()
	member := make(map[string][]byte)
	closures := make([][]string, len(c.Images))
	for i, im := range c.Images {
		closures[i] = g.Closure(im.Roots...)
		for _, p := range closures[i] {
			member[p] = append(member[p], byte(i), byte(i>>8))
		}
	}
	stored := make(map[string]int64)
	var ideal int64
	for p := range member {
		ideal += g.Paths[p].NarSize
	}
	for _, cl := range closures {
		byClass := make(map[string][]string)
		size := make(map[string]int64)
		for _, p := range cl {
			k := string(member[p])
			byClass[k] = append(byClass[k], p)
			size[k] += g.Paths[p].NarSize
		}
		keys := make([]string, 0, len(byClass))
		for k := range byClass {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if size[keys[i]] != size[keys[j]] {
				return size[keys[i]] > size[keys[j]]
			}
			return keys[i] < keys[j]
		})
		own := len(keys)
		if own > budget-1 {
			own = budget - 2
		}
		var rest []string
		var restBytes int64
		for i, k := range keys {
			ps := append([]string(nil), byClass[k]...)
			if i < own {
				sort.Strings(ps)
				stored[strings.Join(ps, "\n")] = size[k]
				continue
			}
			rest = append(rest, ps...)
			restBytes += size[k]
		}
		if len(rest) > 0 {
			sort.Strings(rest)
			stored[strings.Join(rest, "\n")] = restBytes
		}
	}
	var total int64
	for _, n := range stored {
		total += n
	}
	return ratio(ideal, total)
}
