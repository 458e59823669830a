package eval

import (
	"crypto/sha256"
	"fmt"
	"sort"

	"strata/internal/closure"
	"strata/internal/layering"
)

// The update kinds measured apart.
const (
	// UpdateLeaf bumps three leaf applications: image roots nothing else
	// depends on.
	UpdateLeaf = "leaf"
	// UpdateMid bumps one mid-graph library, openssl-like: the largest
	// path that between 1 % and 10 % of the package set depends on.
	UpdateMid = "mid"
	// UpdateBase bumps the path most of the package set depends on,
	// glibc-like.
	UpdateBase = "base"
	// UpdateMixed is the corpus's own update ("updated").
	UpdateMixed = "mixed"
)

// UpdateKindNames lists the update kinds in report order.
func UpdateKindNames() []string { return []string{UpdateLeaf, UpdateMid, UpdateBase, UpdateMixed} }

// Update is a set of package bumps applied to a corpus.
type Update struct {
	// Bumped are the store names of the bumped paths.
	Bumped []string
	// Map maps every changed path (the bumped ones and, as in Nix, every
	// path depending on them) to its new path.
	Map map[string]string

	graph *closure.Graph  // the corpus's paths and the new ones
	isNew map[string]bool // the new paths
}

// newRoots maps roots through the update: each root that changed becomes
// its new path; moved reports whether any did.
func (u *Update) newRoots(roots []string) (out []string, moved bool) {
	out = make([]string, len(roots))
	for i, p := range roots {
		if to, ok := u.Map[p]; ok {
			p, moved = to, true
		}
		out[i] = p
	}
	return out, moved
}

// ownUpdate is the corpus's own update.
func (c *Corpus) ownUpdate() *Update {
	u := &Update{Map: c.Updated, graph: c.Graph(), isNew: make(map[string]bool, len(c.Updated))}
	changedBy := make(map[string]bool)
	for from, to := range c.Updated {
		u.isNew[to] = true
		for _, r := range c.Graph().Paths[from].References {
			if _, ok := c.Updated[r]; ok {
				changedBy[from] = true
			}
		}
	}
	// The bumped paths are the changed ones whose change does not come
	// from a changed dependency.
	for from := range c.Updated {
		if !changedBy[from] {
			u.Bumped = append(u.Bumped, layering.StoreName(from))
		}
	}
	sort.Strings(u.Bumped)
	return u
}

// UpdateKinds synthesises the leaf, mid and base updates of c (see the
// Update constants) from its package set. A kind the package set has no
// candidate for is left out.
func (c *Corpus) UpdateKinds() map[string]*Update {
	set := c.PackageSet()
	paths := set.Sorted()
	rev := make(map[string][]string, len(paths))
	for _, p := range paths {
		for _, r := range set.Paths[p].References {
			rev[r] = append(rev[r], p)
		}
	}
	dependents := func(p string) map[string]bool {
		seen := map[string]bool{}
		stack := []string{p}
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, d := range rev[x] {
				if !seen[d] {
					seen[d] = true
					stack = append(stack, d)
				}
			}
		}
		return seen
	}
	nDeps := make(map[string]int, len(paths))
	for _, p := range paths {
		nDeps[p] = len(dependents(p))
	}
	out := make(map[string]*Update)
	// base: the most depended-on path.
	base := ""
	for _, p := range paths {
		if base == "" || nDeps[p] > nDeps[base] || nDeps[p] == nDeps[base] && set.Paths[p].NarSize > set.Paths[base].NarSize {
			base = p
		}
	}
	if base != "" && nDeps[base] > 0 {
		out[UpdateBase] = c.bump(UpdateBase, []string{base}, rev)
	}
	// mid: the largest path with 1–10 % of the package set depending on it.
	mid := ""
	lo, hi := (len(paths)+99)/100, len(paths)/10
	for _, p := range paths {
		if n := nDeps[p]; n >= lo && n <= hi && p != base {
			if mid == "" || set.Paths[p].NarSize > set.Paths[mid].NarSize {
				mid = p
			}
		}
	}
	if mid != "" {
		out[UpdateMid] = c.bump(UpdateMid, []string{mid}, rev)
	}
	// leaf: three image roots nothing depends on, in an order fixed by
	// their names' hashes.
	isRoot := make(map[string]bool)
	for _, im := range c.Images {
		for _, r := range im.Roots {
			isRoot[r] = true
		}
	}
	var leaves []string
	for _, p := range paths {
		if isRoot[p] && nDeps[p] == 0 {
			leaves = append(leaves, p)
		}
	}
	sort.Slice(leaves, func(i, j int) bool {
		a, b := sha256.Sum256([]byte(layering.StoreName(leaves[i]))), sha256.Sum256([]byte(layering.StoreName(leaves[j])))
		if a != b {
			return string(a[:]) < string(b[:])
		}
		return leaves[i] < leaves[j]
	})
	if len(leaves) > 3 {
		leaves = leaves[:3]
	}
	if len(leaves) > 0 {
		out[UpdateLeaf] = c.bump(UpdateLeaf, leaves, rev)
	}
	return out
}

// bump builds the update that bumps the paths of bumped (a new version, 2 %
// larger) and gives every path depending on them a new path of the same
// size, as input addressing does.
func (c *Corpus) bump(kind string, bumped []string, rev map[string][]string) *Update {
	g := c.Graph()
	changed := make(map[string]bool)
	stack := append([]string(nil), bumped...)
	for _, b := range bumped {
		changed[b] = true
	}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range rev[x] {
			if !changed[d] {
				changed[d] = true
				stack = append(stack, d)
			}
		}
	}
	isBumped := make(map[string]bool, len(bumped))
	u := &Update{Map: make(map[string]string, len(changed)), isNew: make(map[string]bool, len(changed))}
	for _, b := range bumped {
		isBumped[b] = true
		u.Bumped = append(u.Bumped, layering.StoreName(b))
	}
	sort.Strings(u.Bumped)
	for p := range changed {
		name := layering.StoreName(p)
		if isBumped[p] {
			name = bumpVersion(name)
		}
		h := sha256.Sum256([]byte(fmt.Sprintf("strata-update-%s\x00%s", kind, p)))
		to := "/nix/store/" + closure.EncodeBase32(h[:20]) + "-" + name
		u.Map[p] = to
		u.isNew[to] = true
	}
	nodes := make([]*closure.Path, 0, len(g.Paths)+len(changed))
	for _, n := range g.Paths {
		nodes = append(nodes, n)
	}
	for p, to := range u.Map {
		old := g.Paths[p]
		size := old.NarSize
		if isBumped[p] {
			size += size / 50
		}
		refs := make([]string, len(old.References))
		for i, r := range old.References {
			if n, ok := u.Map[r]; ok {
				r = n
			}
			refs[i] = r
		}
		nodes = append(nodes, &closure.Path{Path: to, NarSize: size, References: refs})
	}
	gu, err := closure.New(nodes, nil)
	if err != nil {
		panic(fmt.Sprintf("eval: update %s: %v", kind, err))
	}
	u.graph = gu
	return u
}
