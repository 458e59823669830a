package eval

import (
	"crypto/sha256"
	"fmt"
	"math"
	"sort"
	"strings"

	"strata/internal/closure"
)

// Shape parameterises Generate: the size and form of a synthetic package
// set and of the images built from it.
type Shape struct {
	// Name names the shape in reports.
	Name string `json:"name"`
	// Packages is the number of packages of the package set (each one
	// store path, plus its private helper paths).
	Packages int `json:"packages"`
	// Images is the number of images.
	Images int `json:"images"`
	// Depth is the number of levels of the dependency graph: level 0 is the
	// base (a libc), a package of level l refers only to lower levels.
	Depth int `json:"depth"`
	// DepsMean is the mean number of direct dependencies of a package.
	DepsMean float64 `json:"depsMean"`
	// PopSkew is the Zipf exponent with which dependencies are chosen
	// among the packages of lower levels: 0 is uniform, larger values
	// make a few packages very popular.
	PopSkew float64 `json:"popSkew"`
	// SizeMedian is the median size of a path in bytes; sizes are
	// log-normal with parameter SizeSigma.
	SizeMedian float64 `json:"sizeMedian"`
	SizeSigma  float64 `json:"sizeSigma"`
	// TailFrac of the paths get a Pareto-distributed size instead (index
	// TailAlpha, scale SizeMedian): the very large paths.
	TailFrac  float64 `json:"tailFrac"`
	TailAlpha float64 `json:"tailAlpha"`
	// PrivateFrac of the packages have a chain of one to three private
	// helper paths (outputs such as -lib or -man, wrappers) that only
	// they refer to.
	PrivateFrac float64 `json:"privateFrac"`
	// RootsMean is the mean number of packages an image asks for beyond
	// the first; the count is geometric, so closure sizes are heavy tailed.
	RootsMean float64 `json:"rootsMean"`
	// ShellFrac of the images also ask for a common base of a few
	// packages (like Nixery's "shell").
	ShellFrac float64 `json:"shellFrac"`
	// Spread is the number of packages the mixed update bumps; they are
	// drawn from every level, so some updates reach far.
	Spread int `json:"spread"`
}

// Shapes are the shapes of the evaluation. "nixpkgs" is GenerateCorpus's
// hand-written package table; the others are Generate's.
var Shapes = map[string]Shape{
	// layered: a nixpkgs-like graph, moderate skew and tails.
	"layered": {Name: "layered", Packages: 600, Images: 50, Depth: 6, DepsMean: 4, PopSkew: 1.1,
		SizeMedian: 600e3, SizeSigma: 1.6, TailFrac: 0.03, TailAlpha: 1.2, PrivateFrac: 0.25,
		RootsMean: 3, ShellFrac: 0.3, Spread: 6},
	// deep: long dependency chains, few dependencies each.
	"deep": {Name: "deep", Packages: 500, Images: 45, Depth: 14, DepsMean: 2.5, PopSkew: 0.8,
		SizeMedian: 400e3, SizeSigma: 1.4, TailFrac: 0.02, TailAlpha: 1.3, PrivateFrac: 0.35,
		RootsMean: 2.5, ShellFrac: 0.2, Spread: 8},
	// wide: many small paths, big closures, a few giant paths.
	"wide": {Name: "wide", Packages: 1500, Images: 60, Depth: 5, DepsMean: 5, PopSkew: 1.0,
		SizeMedian: 150e3, SizeSigma: 1.8, TailFrac: 0.01, TailAlpha: 1.0, PrivateFrac: 0.4,
		RootsMean: 4, ShellFrac: 0.5, Spread: 10},
	// flat: little popularity skew, sizes without a heavy tail.
	"flat": {Name: "flat", Packages: 800, Images: 50, Depth: 5, DepsMean: 4, PopSkew: 0.3,
		SizeMedian: 1e6, SizeSigma: 0.8, TailFrac: 0, TailAlpha: 2, PrivateFrac: 0.15,
		RootsMean: 3, ShellFrac: 0.2, Spread: 6},
	// heavytail: a few enormous paths dominate the bytes.
	"heavytail": {Name: "heavytail", Packages: 700, Images: 50, Depth: 7, DepsMean: 4, PopSkew: 1.4,
		SizeMedian: 300e3, SizeSigma: 2.0, TailFrac: 0.06, TailAlpha: 0.9, PrivateFrac: 0.3,
		RootsMean: 3.5, ShellFrac: 0.4, Spread: 5},
}

// Generate builds a synthetic corpus of shape s from seed. Store paths are
// input-addressed: a path's hash covers its name and its references, so
// the mixed update (Spread bumped packages) changes every path that depends
// on a bumped one. The same shape and seed give the same corpus.
func Generate(s Shape, seed uint64) *Corpus {
	if s.Depth < 2 {
		s.Depth = 2
	}
	g := &shapeGen{s: s, seed: seed, rng: &splitmix{state: seed ^ hashString(s.Name)},
		c: &Corpus{Paths: make(map[string]CorpusPath)}}
	g.levels()
	g.dependencies()
	g.privateChains()
	before := g.emit(nil)
	g.images(before)
	g.mixedUpdate(before)
	g.c.prune()
	if err := g.c.init(); err != nil {
		panic(err)
	}
	return g.c
}

// shapeGen is the state of Generate. Its steps draw from rng in a fixed
// order, so the same shape and seed give the same corpus.
type shapeGen struct {
	s    Shape
	seed uint64
	rng  *splitmix
	pkgs []shapePkg
	// byLevel holds the indexes of the packages of each level.
	byLevel [][]int
	// packages is the number of packages, without their private helpers.
	packages int
	c        *Corpus
}

// shapePkg is one package or private helper path of Generate.
type shapePkg struct {
	name    string
	level   int
	size    int64
	deps    []int
	private bool
}

// size draws a path size: log-normal, or Pareto for the tail.
func (g *shapeGen) size() int64 {
	s := g.s
	if g.rng.float() < s.TailFrac {
		u := 1 - g.rng.float()
		return int64(s.SizeMedian * math.Pow(u, -1/s.TailAlpha))
	}
	v := s.SizeMedian * math.Exp(s.SizeSigma*g.rng.norm())
	if v < 512 {
		v = 512
	}
	return int64(v)
}

// levels creates the packages, level by level: level sizes grow
// geometrically from a single base package.
func (g *shapeGen) levels() {
	s := g.s
	counts := make([]int, s.Depth)
	counts[0] = 1
	rest := s.Packages - 1
	var weight float64
	for l := 1; l < s.Depth; l++ {
		weight += math.Pow(1.6, float64(l))
	}
	for l := 1; l < s.Depth; l++ {
		counts[l] = int(math.Round(float64(rest) * math.Pow(1.6, float64(l)) / weight))
		if counts[l] < 1 {
			counts[l] = 1
		}
	}
	for l, n := range counts {
		var ids []int
		for i := 0; i < n; i++ {
			ids = append(ids, len(g.pkgs))
			g.pkgs = append(g.pkgs, shapePkg{name: pkgName(len(g.pkgs)), level: l, size: g.size()})
		}
		g.byLevel = append(g.byLevel, ids)
	}
}

// dependencies draws each package's dependencies: a Zipf choice over the
// packages of lower levels, each package's rank fixed by its index, so some
// are popular everywhere; nearly everything refers to the base.
func (g *shapeGen) dependencies() {
	s := g.s
	var lower []int
	for l := 1; l < s.Depth; l++ {
		lower = append(lower, g.byLevel[l-1]...)
		cum := make([]float64, len(lower))
		var tot float64
		for i := range lower {
			tot += 1 / math.Pow(float64(i+1), s.PopSkew)
			cum[i] = tot
		}
		for _, id := range g.byLevel[l] {
			k := int(g.rng.float() * 2 * s.DepsMean)
			deps := map[int]bool{}
			if g.rng.float() < 0.9 {
				deps[0] = true
			}
			for j := 0; j < k; j++ {
				x := g.rng.float() * tot
				i := sort.SearchFloat64s(cum, x)
				if i >= len(lower) {
					i = len(lower) - 1
				}
				// Rank i is the i-th package of the lower levels, base
				// first, so the low levels are the popular ones.
				deps[lower[i]] = true
			}
			for d := range deps {
				g.pkgs[id].deps = append(g.pkgs[id].deps, d)
			}
			sort.Ints(g.pkgs[id].deps)
		}
	}
	g.packages = len(g.pkgs)
}

// privateChains gives PrivateFrac of the packages a chain of one to three
// private helper paths that only they refer to.
func (g *shapeGen) privateChains() {
	for id := 0; id < g.packages; id++ {
		if g.rng.float() >= g.s.PrivateFrac {
			continue
		}
		parent, orig := id, append([]int(nil), g.pkgs[id].deps...)
		for j := 0; j < 1+int(g.rng.next()%3); j++ {
			sz := g.size() / 4
			if sz < 256 {
				sz = 256
			}
			h := len(g.pkgs)
			g.pkgs = append(g.pkgs, shapePkg{name: g.pkgs[id].name + "-" + []string{"lib", "share", "wrapped"}[j], level: g.pkgs[id].level, size: sz, private: true})
			if len(orig) > 0 && g.rng.float() < 0.5 {
				g.pkgs[h].deps = []int{orig[0]}
			}
			g.pkgs[parent].deps = append(g.pkgs[parent].deps, h)
			parent = h
		}
	}
}

// emit adds every package's store path to the corpus, dependencies first,
// with the packages of bumped at their next version (2 % larger), and
// returns the paths by package index. Versions are fixed by the index.
func (g *shapeGen) emit(bumped map[int]bool) []string {
	version := func(i int) string { return fmt.Sprintf("%d.%d", 1+i%7, i%13) }
	paths := make([]string, len(g.pkgs))
	var visit func(i int) string
	visit = func(i int) string {
		if paths[i] != "" {
			return paths[i]
		}
		var refs []string
		for _, d := range g.pkgs[i].deps {
			refs = append(refs, visit(d))
		}
		sort.Strings(refs)
		v := version(i)
		sz := g.pkgs[i].size
		if bumped[i] {
			v = bumpVersion(v)
			sz += sz / 50
		}
		name := g.pkgs[i].name + "-" + v
		h := sha256.Sum256([]byte(fmt.Sprintf("strata-shape-%s-%d\x00%s\x00%s", g.s.Name, g.seed, name, strings.Join(refs, "\x00"))))
		paths[i] = "/nix/store/" + closure.EncodeBase32(h[:20]) + "-" + name
		g.c.Paths[paths[i]] = CorpusPath{NarSize: sz, References: refs}
		return paths[i]
	}
	for i := range g.pkgs {
		visit(i)
	}
	return paths
}

// images draws the images: roots from the upper half of the levels with a
// Zipf preference (a few applications are asked for often), and for
// ShellFrac of them a common shell of a few packages; each set of roots
// once.
func (g *shapeGen) images(before []string) {
	s := g.s
	var apps []int
	for l := s.Depth / 2; l < s.Depth; l++ {
		apps = append(apps, g.byLevel[l]...)
	}
	// Shuffle so that the popular applications spread over the levels.
	for i := len(apps) - 1; i > 0; i-- {
		j := int(g.rng.next() % uint64(i+1))
		apps[i], apps[j] = apps[j], apps[i]
	}
	appCum := make([]float64, len(apps))
	var appTot float64
	for i := range apps {
		appTot += 1 / math.Pow(float64(i+1), 0.8)
		appCum[i] = appTot
	}
	pick := func() int {
		i := sort.SearchFloat64s(appCum, g.rng.float()*appTot)
		if i >= len(apps) {
			i = len(apps) - 1
		}
		return apps[i]
	}
	shell := []int{}
	for len(shell) < 4 && len(shell) < len(g.byLevel[1]) {
		shell = append(shell, g.byLevel[1][len(shell)])
	}
	seen := map[string]bool{}
	for len(g.c.Images) < s.Images {
		roots := map[int]bool{pick(): true}
		extra := 0
		for g.rng.float() < s.RootsMean/(1+s.RootsMean) && extra < 40 {
			roots[pick()] = true
			extra++
		}
		if g.rng.float() < s.ShellFrac {
			for _, id := range shell {
				roots[id] = true
			}
		}
		var rs, names []string
		for id := range roots {
			rs = append(rs, before[id])
			names = append(names, g.pkgs[id].name)
		}
		sort.Strings(rs)
		sort.Strings(names)
		key := strings.Join(names, "/")
		if seen[key] {
			continue
		}
		seen[key] = true
		g.c.Images = append(g.c.Images, CorpusImage{Name: key, Roots: rs})
	}
}

// mixedUpdate bumps Spread packages that images hold, from every level but
// the base, and records every changed path in the corpus's "updated".
func (g *shapeGen) mixedUpdate(before []string) {
	used := g.c.needed()
	var cands []int
	for id := 1; id < g.packages; id++ {
		if used[before[id]] {
			cands = append(cands, id)
		}
	}
	bumped := map[int]bool{}
	for len(bumped) < g.s.Spread && len(bumped) < len(cands) {
		bumped[cands[g.rng.next()%uint64(len(cands))]] = true
	}
	after := g.emit(bumped)
	g.c.Updated = make(map[string]string)
	for i := range g.pkgs {
		if before[i] != after[i] {
			g.c.Updated[before[i]] = after[i]
		}
	}
}

// needed is the set of paths in the closure of some image's roots, and of
// the updated versions of those roots.
func (c *Corpus) needed() map[string]bool {
	keep := make(map[string]bool)
	var visit func(p string)
	visit = func(p string) {
		if keep[p] {
			return
		}
		keep[p] = true
		for _, r := range c.Paths[p].References {
			visit(r)
		}
	}
	for _, im := range c.Images {
		for _, r := range im.Roots {
			visit(r)
			if to, ok := c.Updated[r]; ok {
				visit(to)
			}
		}
	}
	return keep
}

// prune drops the paths no image needs, before or after the update.
func (c *Corpus) prune() {
	keep := c.needed()
	for p := range c.Paths {
		if !keep[p] {
			delete(c.Paths, p)
		}
	}
	for from := range c.Updated {
		if !keep[from] {
			delete(c.Updated, from)
		}
	}
}

// pkgName gives package i a pronounceable name of letters only, so that
// version parsing (layering.PName) keeps packages apart.
func pkgName(i int) string {
	const cons, vow = "bcdfghklmnprstvz", "aeiou"
	var b strings.Builder
	b.WriteString("lib")
	for {
		b.WriteByte(cons[i%len(cons)])
		i /= len(cons)
		b.WriteByte(vow[i%len(vow)])
		i /= len(vow)
		if i == 0 {
			break
		}
	}
	return b.String()
}

func hashString(s string) uint64 {
	h := sha256.Sum256([]byte(s))
	var v uint64
	for _, b := range h[:8] {
		v = v<<8 | uint64(b)
	}
	return v
}
