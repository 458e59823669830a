package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"strata/internal/closure"
)

// Corpus is a package set and the images built from it, used to measure
// layering strategies. Its JSON form is
//
//	{"paths":   {PATH: {"narSize": N, "references": [PATH, ...]}, ...},
//	 "images":  [{"name": NAME, "roots": [PATH, ...]}, ...],
//	 "updated": {PATH: NEWPATH, ...}}
//
// "updated" is optional: it describes package updates, mapping every path
// that changed (the updated packages and, as Nix does, every path that
// depends on them) to its new path; the new paths are in "paths" too and
// refer to the new versions of their dependencies.
type Corpus struct {
	Paths   map[string]CorpusPath `json:"paths"`
	Images  []CorpusImage         `json:"images"`
	Updated map[string]string     `json:"updated,omitempty"`

	graph *closure.Graph
}

// CorpusPath is one store path of a corpus.
type CorpusPath struct {
	NarSize    int64    `json:"narSize"`
	References []string `json:"references"`
}

// CorpusImage is one image of a corpus: a name and the paths it was asked
// for.
type CorpusImage struct {
	Name  string   `json:"name"`
	Roots []string `json:"roots"`
}

// ParseCorpus parses and checks a corpus: every reference, root and update
// must name a path of the corpus and sizes must not be negative.
func ParseCorpus(data []byte) (*Corpus, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var c Corpus
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("layering: corpus: %w", err)
	}
	if dec.More() {
		return nil, errors.New("layering: corpus: trailing data after the JSON object")
	}
	if err := c.init(); err != nil {
		return nil, err
	}
	return &c, nil
}

// init checks the corpus and builds its graph.
func (c *Corpus) init() error {
	if len(c.Paths) == 0 {
		return errors.New("layering: corpus has no paths")
	}
	nodes := make([]*closure.Path, 0, len(c.Paths))
	for p, cp := range c.Paths {
		if p == "" {
			return errors.New("layering: corpus has a path with an empty name")
		}
		if cp.NarSize < 0 {
			return fmt.Errorf("layering: corpus path %s has a negative narSize", p)
		}
		nodes = append(nodes, &closure.Path{Path: p, NarSize: cp.NarSize, References: append([]string(nil), cp.References...)})
	}
	g, err := closure.New(nodes, nil)
	if err != nil {
		return fmt.Errorf("layering: corpus: %w", err)
	}
	if cyc := findCycle(g); cyc != "" {
		return fmt.Errorf("layering: corpus: the references of %s form a cycle", cyc)
	}
	for i, im := range c.Images {
		if len(im.Roots) == 0 {
			return fmt.Errorf("layering: corpus image %d (%q) has no roots", i, im.Name)
		}
		for _, r := range im.Roots {
			if _, ok := g.Paths[r]; !ok {
				return fmt.Errorf("layering: corpus image %q: root %s is not among the paths", im.Name, r)
			}
		}
	}
	for from, to := range c.Updated {
		if _, ok := g.Paths[from]; !ok {
			return fmt.Errorf("layering: corpus update of %s: not among the paths", from)
		}
		if _, ok := g.Paths[to]; !ok {
			return fmt.Errorf("layering: corpus update to %s: not among the paths", to)
		}
	}
	c.graph = g
	return nil
}

// findCycle returns a path on a reference cycle, or "".
func findCycle(g *closure.Graph) string {
	const (
		white = iota
		grey
		black
	)
	color := make(map[string]int, len(g.Paths))
	type frame struct {
		p string
		i int
	}
	for _, start := range g.Sorted() {
		if color[start] != white {
			continue
		}
		stack := []frame{{start, 0}}
		color[start] = grey
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			refs := g.Paths[f.p].References
			if f.i < len(refs) {
				r := refs[f.i]
				f.i++
				switch color[r] {
				case grey:
					return r
				case white:
					color[r] = grey
					stack = append(stack, frame{r, 0})
				}
				continue
			}
			color[f.p] = black
			stack = stack[:len(stack)-1]
		}
	}
	return ""
}

// Graph returns the graph of every path of the corpus (no roots).
func (c *Corpus) Graph() *closure.Graph {
	if c.graph == nil {
		if err := c.init(); err != nil {
			panic(err)
		}
	}
	return c.graph
}

// ImageGraph returns the closure of roots as a graph.
func (c *Corpus) ImageGraph(roots []string) *closure.Graph {
	return c.Graph().Sub(roots...)
}

// PackageSet returns the union of the closures of the corpus's images
// (before any update): the package set popularity is computed from.
func (c *Corpus) PackageSet() *closure.Graph {
	var roots []string
	for _, im := range c.Images {
		roots = append(roots, im.Roots...)
	}
	return c.ImageGraph(roots)
}

// Popularity is PopularityFromGraph over the corpus's package set.
func (c *Corpus) Popularity() Popularity { return PopularityFromGraph(c.PackageSet()) }

// Report is the result of Evaluate.
type Report struct {
	Strategy string        `json:"strategy"`
	Budget   int           `json:"budget"`
	Images   []ImageReport `json:"images"`
	// UpdatedImages are the images after the corpus's updates, when it has
	// any.
	UpdatedImages []ImageReport `json:"updatedImages,omitempty"`
	Summary       Summary       `json:"summary"`
	// Problems lists broken invariants (a path missing or in two layers,
	// an image over budget, unsorted groups); empty for a correct strategy.
	Problems []string `json:"problems,omitempty"`
}

// ImageReport is the layering of one image.
type ImageReport struct {
	Name   string        `json:"name"`
	Paths  int           `json:"paths"`
	Bytes  int64         `json:"bytes"`
	Layers []LayerReport `json:"layers"`
}

// LayerReport is one layer group of an image.
type LayerReport struct {
	Key   string   `json:"key"`
	Bytes int64    `json:"bytes"`
	Paths []string `json:"paths"`
}

// Summary holds the corpus-wide figures of a Report.
type Summary struct {
	Images int `json:"images"`
	// IdealBytes is the sum of the NAR sizes of the distinct paths of all
	// images: what a registry would store with perfect sharing.
	IdealBytes int64 `json:"idealBytes"`
	// StoredBytes is the sum, over the distinct layers (by path set) of
	// all images, of the NAR sizes of their paths.
	StoredBytes int64 `json:"storedBytes"`
	// Efficiency is IdealBytes/StoredBytes (1 is perfect sharing).
	Efficiency float64 `json:"efficiency"`
	// DistinctLayers is the number of distinct layers stored.
	DistinctLayers int `json:"distinctLayers"`
	// MaxLayers is the largest layer count of any image, the
	// customisation layer included (so it compares with the budget).
	MaxLayers int `json:"maxLayers"`
	// UpdateNewBytes is the size of the layers that the updated images
	// need and that were not stored before the update.
	UpdateNewBytes *int64 `json:"updateNewBytes,omitempty"`
	// UpdateChangedBytes is the size of the changed paths that the
	// updated images hold: the least any layering must upload.
	UpdateChangedBytes *int64 `json:"updateChangedBytes,omitempty"`
	// UpdateCost is UpdateNewBytes/UpdateChangedBytes (1 is perfect).
	UpdateCost *float64 `json:"updateCost,omitempty"`
}

// Evaluate groups every image of c with s for an image budget of budget
// layers (budget-1 store-path groups, the last layer being the
// customisation layer) and measures sharing and, when c has updates, the
// cost of the update.
func Evaluate(c *Corpus, s Strategy, budget int) Report {
	if budget < 2 {
		budget = 2
	}
	r := Report{Strategy: s.Name(), Budget: budget}
	g := c.Graph()
	stored := make(map[string]int64)
	ideal := make(map[string]bool)
	var idealBytes int64
	layerImages := func(images []CorpusImage, layers map[string]int64) []ImageReport {
		var out []ImageReport
		for _, im := range images {
			sub := g.Sub(im.Roots...)
			groups := s.Layers(sub, budget-1)
			r.Problems = append(r.Problems, CheckGroups(sub, groups, budget-1)...)
			ir := ImageReport{Name: im.Name, Paths: len(sub.Paths), Bytes: sub.TotalSize()}
			for _, gr := range groups {
				var n int64
				for _, p := range gr.Paths {
					if pp, ok := sub.Paths[p]; ok {
						n += pp.NarSize
					}
				}
				k := gr.Key()
				layers[k] = n
				ir.Layers = append(ir.Layers, LayerReport{Key: k, Bytes: n, Paths: gr.Paths})
			}
			if len(groups)+1 > r.Summary.MaxLayers {
				r.Summary.MaxLayers = len(groups) + 1
			}
			out = append(out, ir)
		}
		return out
	}
	r.Images = layerImages(c.Images, stored)
	for _, im := range c.Images {
		for _, p := range g.Closure(im.Roots...) {
			if !ideal[p] {
				ideal[p] = true
				idealBytes += g.Paths[p].NarSize
			}
		}
	}
	r.Summary.Images = len(c.Images)
	r.Summary.IdealBytes = idealBytes
	for _, n := range stored {
		r.Summary.StoredBytes += n
	}
	r.Summary.DistinctLayers = len(stored)
	if r.Summary.StoredBytes > 0 {
		r.Summary.Efficiency = float64(idealBytes) / float64(r.Summary.StoredBytes)
	}
	if len(c.Updated) > 0 {
		updated := make([]CorpusImage, len(c.Images))
		newPaths := make(map[string]bool, len(c.Updated))
		for _, to := range c.Updated {
			newPaths[to] = true
		}
		for i, im := range c.Images {
			roots := make([]string, len(im.Roots))
			for j, p := range im.Roots {
				if to, ok := c.Updated[p]; ok {
					p = to
				}
				roots[j] = p
			}
			updated[i] = CorpusImage{Name: im.Name, Roots: roots}
		}
		after := make(map[string]int64)
		r.UpdatedImages = layerImages(updated, after)
		var newBytes, changed int64
		for k, n := range after {
			if _, ok := stored[k]; !ok {
				newBytes += n
			}
		}
		var roots []string
		for _, im := range updated {
			roots = append(roots, im.Roots...)
		}
		for _, p := range g.Closure(roots...) {
			if newPaths[p] {
				changed += g.Paths[p].NarSize
			}
		}
		cost := 0.0
		if changed > 0 {
			cost = float64(newBytes) / float64(changed)
		}
		r.Summary.UpdateNewBytes, r.Summary.UpdateChangedBytes, r.Summary.UpdateCost = &newBytes, &changed, &cost
	}
	sort.Strings(r.Problems)
	return r
}

// CheckGroups reports how groups break the contract of Strategy.Layers for
// the closure g and a budget of groups: missing or duplicated paths, paths
// not in g, unsorted or empty groups, too many groups.
func CheckGroups(g *closure.Graph, groups []Group, budget int) []string {
	var out []string
	if budget < 1 {
		budget = 1
	}
	if len(groups) > budget {
		out = append(out, fmt.Sprintf("%d groups for a budget of %d", len(groups), budget))
	}
	seen := make(map[string]bool, len(g.Paths))
	for i, gr := range groups {
		if len(gr.Paths) == 0 {
			out = append(out, fmt.Sprintf("group %d is empty", i))
		}
		if !sort.StringsAreSorted(gr.Paths) {
			out = append(out, fmt.Sprintf("group %d is not sorted", i))
		}
		for _, p := range gr.Paths {
			if _, ok := g.Paths[p]; !ok {
				out = append(out, fmt.Sprintf("group %d holds %s, which is not in the closure", i, p))
			}
			if seen[p] {
				out = append(out, fmt.Sprintf("%s is in more than one group", p))
			}
			seen[p] = true
		}
	}
	for p := range g.Paths {
		if !seen[p] {
			out = append(out, fmt.Sprintf("%s is in no group", p))
		}
	}
	return out
}
