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

// UpdateCostBound returns lower bounds on the update cost of u, for the
// registry (new stored bytes over changed bytes, mixed(reg)) and for the
// clients (fetched bytes over the changed bytes of their images, as
// UpdateSummary.ClientCost), that hold for any layering at an image budget
// of budget layers that stores c's images with at most oldExtra bytes over
// the ideal (an efficiency of ideal/(ideal+oldExtra)).
//
// The argument: after the update the registry holds the layers of c's
// images and of the updated ones, and EfficiencyBound on that union gives
// the least extra bytes L any layering stores for it. The union's ideal is
// c's ideal plus the changed bytes, so the bytes stored anew are at least
// changed + L − oldExtra. In the union, changed paths are held only by
// updated images and unchanged ones also by the old images, so they are in
// different classes: an unchanged path that shares a new layer with a
// changed one is stored again, and the fewer groups the budget leaves, the
// more classes must share one. Every new layer is fetched by a client
// holding the old image (it lacks it: the layer is new), so the clients
// together fetch at least the bytes stored anew, and at least their changed
// bytes. Both bounds fall to 1 as oldExtra grows to L: a layering that pays
// in sharing before the update can pay less for it. No layering stores
// less than EfficiencyBound's extra bytes before the update, so the bound
// with that oldExtra is what the best-sharing layering must pay.
func UpdateCostBound(c *Corpus, u *Update, budget int, oldExtra int64) (registry, client float64) {
	return updateBound(c, u, budget).costs(oldExtra)
}

// UpdateBound holds what UpdateCostBound is computed from.
type UpdateBound struct {
	// Ideal is the size of the distinct paths of the images before the
	// update; Extra is EfficiencyBound's least extra bytes for the union
	// of the images before and after it.
	Ideal, Extra int64
	// Changed is the size of the distinct changed paths; ClientChanged
	// sums, over the updated images, the size of their changed paths.
	Changed, ClientChanged int64
}

func (b UpdateBound) costs(oldExtra int64) (registry, client float64) {
	if b.Changed <= 0 || b.ClientChanged <= 0 {
		return 1, 1
	}
	extra := b.Extra - oldExtra
	if extra < 0 {
		extra = 0
	}
	fetched := b.Changed + extra
	if fetched < b.ClientChanged {
		fetched = b.ClientChanged
	}
	return float64(b.Changed+extra) / float64(b.Changed), float64(fetched) / float64(b.ClientChanged)
}

// MaxEfficiency is the highest efficiency before the update with which a
// layering can still have a client update cost of at most goal, by the
// argument of UpdateCostBound: it must store at least Changed + Extra −
// goal·ClientChanged bytes over the ideal. 1 when the bound does not
// constrain it.
func (b UpdateBound) MaxEfficiency(goal float64) float64 {
	need := b.Changed + b.Extra - int64(goal*float64(b.ClientChanged))
	if need <= 0 || b.Ideal <= 0 {
		return 1
	}
	return float64(b.Ideal) / float64(b.Ideal+need)
}

// updateBound computes the UpdateBound of u on c at budget.
func updateBound(c *Corpus, u *Update, budget int) UpdateBound {
	imgs := append([]CorpusImage(nil), c.Images...)
	g := u.graph
	var clientChanged int64
	for _, im := range c.Images {
		roots, moved := u.newRoots(im.Roots)
		if !moved {
			continue
		}
		imgs = append(imgs, CorpusImage{Name: im.Name + "'", Roots: roots})
		for _, p := range g.Closure(roots...) {
			if u.isNew[p] {
				clientChanged += g.Paths[p].NarSize
			}
		}
	}
	union := &Corpus{Images: imgs, graph: g}
	_, l := EfficiencyBound(union, budget)
	ideal := idealBytes(c)
	return UpdateBound{Ideal: ideal, Extra: l, Changed: idealBytes(union) - ideal, ClientChanged: clientChanged}
}

// idealBytes is the size of the distinct paths of c's images.
func idealBytes(c *Corpus) int64 {
	g := c.Graph()
	seen := make(map[string]bool)
	var n int64
	for _, im := range c.Images {
		for _, p := range g.Closure(im.Roots...) {
			if !seen[p] {
				seen[p] = true
				n += g.Paths[p].NarSize
			}
		}
	}
	return n
}
