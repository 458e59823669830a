package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"strata/internal/closure"
	"strata/internal/layering"
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
		return nil, fmt.Errorf("corpus: %w", err)
	}
	if dec.More() {
		return nil, errors.New("corpus: trailing data after the JSON object")
	}
	if err := c.init(); err != nil {
		return nil, err
	}
	return &c, nil
}

// init checks the corpus and builds its graph.
func (c *Corpus) init() error {
	if len(c.Paths) == 0 {
		return errors.New("corpus has no paths")
	}
	nodes := make([]*closure.Path, 0, len(c.Paths))
	for p, cp := range c.Paths {
		if p == "" {
			return errors.New("corpus has a path with an empty name")
		}
		if cp.NarSize < 0 {
			return fmt.Errorf("corpus path %s has a negative narSize", p)
		}
		nodes = append(nodes, &closure.Path{Path: p, NarSize: cp.NarSize, References: append([]string(nil), cp.References...)})
	}
	g, err := closure.New(nodes, nil)
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	if cyc := findCycle(g); cyc != "" {
		return fmt.Errorf("corpus: the references of %s form a cycle", cyc)
	}
	for i, im := range c.Images {
		if len(im.Roots) == 0 {
			return fmt.Errorf("corpus image %d (%q) has no roots", i, im.Name)
		}
		for _, r := range im.Roots {
			if _, ok := g.Paths[r]; !ok {
				return fmt.Errorf("corpus image %q: root %s is not among the paths", im.Name, r)
			}
		}
	}
	for from, to := range c.Updated {
		if _, ok := g.Paths[from]; !ok {
			return fmt.Errorf("corpus update of %s: not among the paths", from)
		}
		if _, ok := g.Paths[to]; !ok {
			return fmt.Errorf("corpus update to %s: not among the paths", to)
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

// Stats is layering.StatsFromGraph over the corpus's package set.
func (c *Corpus) Stats() layering.SetStats {
	return layering.StatsFromGraph(c.PackageSet())
}

// Popularity is PopularityFromGraph over the corpus's package set.
func (c *Corpus) Popularity() layering.Popularity {
	return layering.PopularityFromGraph(c.PackageSet())
}
