package layering

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"strata/internal/closure"
)

// DefaultBudget is the default total number of layers of an image,
// customisation layer included. Store-path groups get DefaultBudget-1.
const DefaultBudget = 100

// Group is one layer's worth of store paths. A layer's identity is its set of
// paths: two images share a layer exactly when they chose the same group.
type Group struct {
	// Paths are the store paths of the group, sorted.
	Paths []string `json:"paths"`
}

// Key is the group's stable identity: the hex sha256 of its sorted paths
// joined by "\n".
func (g Group) Key() string {
	h := sha256.New()
	for i, p := range g.Paths {
		if i > 0 {
			h.Write([]byte{'\n'})
		}
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Strategy splits a closure into layer groups.
type Strategy interface {
	// Name is the name New knows the strategy by.
	Name() string
	// Layers splits the closure g into at most budget groups (budget < 1
	// counts as 1). Every path of g is in exactly one group, each group's
	// paths are sorted, and the order of the groups is deterministic: the
	// most widely shared (base) groups first, the image-specific ones last.
	// The result depends only on g, budget and the strategy's
	// configuration, never on what the strategy grouped before.
	Layers(g *closure.Graph, budget int) []Group
}

// Names lists the strategies New knows, the default first.
func Names() []string {
	return []string{"strata", "popularity", "dockertools", "nix2container", "nixery"}
}

// New returns the strategy called name configured with popularity data pop.
// pop may be nil: each strategy then falls back to reference counts within
// the closure it is grouping (see PopularityFromGraph). An empty name is the
// default strategy.
func New(name string, pop Popularity) (Strategy, error) {
	return NewFor(name, SetStats{Popularity: pop})
}

// SetStats describes the package set that images are built from: what the
// strata strategy derives its thresholds and ranking from.
type SetStats struct {
	// Popularity is each path's number of referrers in the package set
	// (see Popularity); nil falls back to counts within each closure.
	Popularity Popularity
	// ImageBytes is the median closure size, in bytes, of the package
	// set's top-level paths (those nothing in the set refers to): the
	// size of a typical image. 0 when unknown.
	ImageBytes int64
	// ImagePaths is the median number of paths of the same closures.
	ImagePaths int
}

// StatsFromGraph computes SetStats from a package-set-wide graph (for
// example the merged closures of every image a package set serves).
func StatsFromGraph(g *closure.Graph) SetStats {
	st := SetStats{Popularity: PopularityFromGraph(g)}
	rin := referrers(g)
	var sizes []int64
	var counts []int
	for _, p := range g.Sorted() {
		if rin[p] > 0 {
			continue
		}
		var n int64
		cl := g.Closure(p)
		for _, q := range cl {
			n += g.Paths[q].NarSize
		}
		sizes = append(sizes, n)
		counts = append(counts, len(cl))
	}
	if len(sizes) > 0 {
		sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
		sort.Ints(counts)
		st.ImageBytes = sizes[len(sizes)/2]
		st.ImagePaths = counts[len(counts)/2]
	}
	return st
}

// NewFor returns the strategy called name configured for the package set
// described by st. An empty name is the default strategy.
func NewFor(name string, st SetStats) (Strategy, error) {
	idx := newPopIndex(st.Popularity)
	fp := configured{st.Fingerprint()}
	switch name {
	case "", "strata":
		s := newStrata(idx, st)
		s.configured = fp
		return s, nil
	case "popularity":
		return &popularityStrategy{pop: idx, configured: configured{fp.popularityOnly(st)}}, nil
	case "dockertools":
		return &dockerTools{}, nil
	case "nix2container":
		return &nix2container{}, nil
	case "nixery":
		return &nixery{pop: idx, configured: configured{fp.popularityOnly(st)}}, nil
	}
	return nil, fmt.Errorf("layering: unknown strategy %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Fingerprint identifies the package-set data of st: equal data give equal
// fingerprints, and no data (the zero SetStats) gives "". Builders put it
// in their cache keys, so that layers grouped with other data are not
// reused.
func (st SetStats) Fingerprint() string {
	if len(st.Popularity) == 0 && st.ImageBytes == 0 && st.ImagePaths == 0 {
		return ""
	}
	return fingerprint(st.Popularity, fmt.Sprintf("imageBytes=%d imagePaths=%d", st.ImageBytes, st.ImagePaths))
}

func fingerprint(pop Popularity, extra string) string {
	keys := make([]string, 0, len(pop))
	for k := range pop {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s\x00%d\n", k, pop[k])
	}
	fmt.Fprintf(h, "%s\n", extra)
	return hex.EncodeToString(h.Sum(nil))
}

// Fingerprinter is implemented by strategies configured with package-set
// data: Fingerprint identifies that data ("" when there is none).
type Fingerprinter interface {
	Fingerprint() string
}

// FingerprintOf returns s's Fingerprint, or "" when s uses no package-set
// data.
func FingerprintOf(s Strategy) string {
	if f, ok := s.(Fingerprinter); ok {
		return f.Fingerprint()
	}
	return ""
}

type configured struct{ fp string }

func (c configured) Fingerprint() string { return c.fp }

// popularityOnly is the fingerprint of the data the popularity and nixery
// strategies use: the popularity alone.
func (configured) popularityOnly(st SetStats) string {
	if len(st.Popularity) == 0 {
		return ""
	}
	return fingerprint(st.Popularity, "")
}

// Default returns the default strategy ("strata") without popularity data.
func Default() Strategy {
	s, _ := New("", nil)
	return s
}

// StoreName returns the name part of a store path: "hello-2.12.1" for
// "/nix/store/<hash>-hello-2.12.1". A string without a slash is taken to be
// a name already and returned unchanged.
func StoreName(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return path
	}
	base := path[i+1:]
	if j := strings.IndexByte(base, '-'); j > 0 && j+1 < len(base) {
		return base[j+1:]
	}
	return base
}

// PName returns the package name of a store name without its version, as
// Nix's parseDrvName splits it: the version starts at the first dash that is
// followed by a character that is not a letter. "python3.11-numpy-1.26.4"
// gives "python3.11-numpy"; "hello" gives "hello".
func PName(name string) string {
	for i := 0; i+1 < len(name); i++ {
		if name[i] == '-' {
			c := name[i+1]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return name[:i]
			}
		}
	}
	return name
}

// finish sorts each group's paths, drops empty groups and returns them.
func finish(groups [][]string) []Group {
	out := make([]Group, 0, len(groups))
	for _, ps := range groups {
		if len(ps) == 0 {
			continue
		}
		ps = append([]string(nil), ps...)
		sort.Strings(ps)
		out = append(out, Group{Paths: ps})
	}
	return out
}

// splitTop gives the first n-1 paths of ranked a layer each and puts the rest
// into one final group, so that the result has at most n groups. It is the
// split dockerTools, nix2container and the "popularity" strategy use.
func splitTop(ranked []string, n int) []Group {
	if n < 1 {
		n = 1
	}
	var groups [][]string
	if len(ranked) <= n {
		for _, p := range ranked {
			groups = append(groups, []string{p})
		}
		return finish(groups)
	}
	for _, p := range ranked[:n-1] {
		groups = append(groups, []string{p})
	}
	groups = append(groups, ranked[n-1:])
	return finish(groups)
}

// referrers counts, for each path of g, the paths of g that refer to it.
func referrers(g *closure.Graph) map[string]int {
	n := make(map[string]int, len(g.Paths))
	for _, p := range g.Paths {
		for _, r := range p.References {
			n[r]++
		}
	}
	return n
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
