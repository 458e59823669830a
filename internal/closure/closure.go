// Package closure holds the closure graph of a set of Nix store paths: each
// path with its NAR size and references, as Nix reports them. It is the
// common language between the Nix driver, the layering strategies and the
// layer packer.
package closure

import (
	"fmt"
	"slices"
	"sort"
)

// Path is one store path of a closure.
type Path struct {
	// Path is the absolute store path, e.g. /nix/store/<hash>-hello-2.12.
	Path string `json:"path"`
	// NarSize is the size of the path's NAR serialisation in bytes.
	NarSize int64 `json:"narSize"`
	// NarHash is Nix's hash of the NAR ("sha256:..."), empty when unknown.
	NarHash string `json:"narHash,omitempty"`
	// References are the store paths this path refers to, self excluded,
	// sorted.
	References []string `json:"references"`
}

// Graph is a closed set of store paths: every reference of every path is
// itself in Paths.
type Graph struct {
	// Paths maps each store path to its node.
	Paths map[string]*Path `json:"paths"`
	// Roots are the paths the closure was computed from, sorted.
	Roots []string `json:"roots"`
}

// New builds a graph from nodes and roots. References to self are dropped,
// references and roots are sorted and de-duplicated. It fails when a
// reference or a root is not among the nodes.
func New(nodes []*Path, roots []string) (*Graph, error) {
	g := &Graph{Paths: make(map[string]*Path, len(nodes))}
	for _, n := range nodes {
		g.Paths[n.Path] = n
	}
	for _, n := range nodes {
		refs := make([]string, 0, len(n.References))
		for _, r := range n.References {
			if r == n.Path {
				continue
			}
			if _, ok := g.Paths[r]; !ok {
				return nil, fmt.Errorf("closure: %s references %s, which is not in the closure", n.Path, r)
			}
			refs = append(refs, r)
		}
		n.References = sortedUnique(refs)
	}
	for _, r := range roots {
		if _, ok := g.Paths[r]; !ok {
			return nil, fmt.Errorf("closure: root %s is not in the closure", r)
		}
	}
	g.Roots = sortedUnique(append([]string(nil), roots...))
	return g, nil
}

// Sorted returns every path of the graph in lexical order.
func (g *Graph) Sorted() []string {
	out := make([]string, 0, len(g.Paths))
	for p := range g.Paths {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Closure returns the sorted set of paths reachable from roots (roots
// included).
func (g *Graph) Closure(roots ...string) []string {
	seen := make(map[string]bool)
	stack := append([]string(nil), roots...)
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[p] {
			continue
		}
		n, ok := g.Paths[p]
		if !ok {
			continue
		}
		seen[p] = true
		stack = append(stack, n.References...)
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Sub returns the graph restricted to the closure of roots.
func (g *Graph) Sub(roots ...string) *Graph {
	paths := g.Closure(roots...)
	s := &Graph{Paths: make(map[string]*Path, len(paths)), Roots: sortedUnique(append([]string(nil), roots...))}
	for _, p := range paths {
		s.Paths[p] = g.Paths[p]
	}
	return s
}

// Merge returns a graph holding the paths and roots of all graphs.
func Merge(gs ...*Graph) *Graph {
	m := &Graph{Paths: make(map[string]*Path)}
	var roots []string
	for _, g := range gs {
		for p, n := range g.Paths {
			m.Paths[p] = n
		}
		roots = append(roots, g.Roots...)
	}
	m.Roots = sortedUnique(roots)
	return m
}

// TotalSize is the sum of the NAR sizes of all paths.
func (g *Graph) TotalSize() int64 {
	var n int64
	for _, p := range g.Paths {
		n += p.NarSize
	}
	return n
}

// sortedUnique sorts s in place and returns it without duplicates.
func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
