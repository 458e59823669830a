package eval

import (
	"sort"

	"strata/internal/closure"
	"strata/internal/layering"
)

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
	// UpdateNewBytes is the size of the layers that the images after the
	// corpus's own ("mixed") update need and that were not stored before
	// it.
	UpdateNewBytes *int64 `json:"updateNewBytes,omitempty"`
	// UpdateChangedBytes is the size of the changed paths that the
	// updated images hold: the least any layering must upload.
	UpdateChangedBytes *int64 `json:"updateChangedBytes,omitempty"`
	// UpdateCost is UpdateNewBytes/UpdateChangedBytes (1 is perfect): what
	// the registry stores anew per changed byte.
	UpdateCost *float64 `json:"updateCost,omitempty"`
	// ClientUpdateCost is, for the mixed update, the bytes that clients
	// holding the old images fetch to get the new ones (the layers of
	// each new image that its old image lacks) over the bytes of the
	// changed paths of those images (1 is perfect).
	ClientUpdateCost *float64 `json:"clientUpdateCost,omitempty"`
	// Updates holds the figures of every update kind evaluated (see
	// EvaluateUpdates), the corpus's own update as "mixed".
	Updates map[string]*UpdateSummary `json:"updates,omitempty"`
}

// UpdateSummary is the cost of one update for a strategy.
type UpdateSummary struct {
	// Bumped are the store names of the bumped packages (their dependents
	// change too, as in Nix).
	Bumped []string `json:"bumped,omitempty"`
	// ChangedPaths is the number of changed paths the images hold.
	ChangedPaths int `json:"changedPaths"`
	// Images is the number of images the update changes.
	Images int `json:"images"`
	// NewBytes, ChangedBytes and Cost are the registry's view: bytes of
	// layers not stored before, bytes of changed paths, their ratio.
	NewBytes     int64   `json:"newBytes"`
	ChangedBytes int64   `json:"changedBytes"`
	Cost         float64 `json:"cost"`
	// ClientBytes, ClientChangedBytes and ClientCost are a client's view,
	// summed over the changed images: the bytes of the new image's layers
	// the old image lacks, the bytes of its changed paths, their ratio.
	ClientBytes        int64   `json:"clientBytes"`
	ClientChangedBytes int64   `json:"clientChangedBytes"`
	ClientCost         float64 `json:"clientCost"`
}

// layered is one image grouped by a strategy.
type layered struct {
	report ImageReport
	keys   map[string]int64
}

// layerImage groups the closure of roots with s and reports it; problems
// are appended to *probs.
func layerImage(g *closure.Graph, s layering.Strategy, budget int, name string, roots []string, probs *[]string) layered {
	sub := g.Sub(roots...)
	groups := s.Layers(sub, budget-1)
	*probs = append(*probs, layering.CheckGroups(sub, groups, budget-1)...)
	l := layered{report: ImageReport{Name: name, Paths: len(sub.Paths), Bytes: sub.TotalSize()}, keys: make(map[string]int64, len(groups))}
	for _, gr := range groups {
		var n int64
		for _, p := range gr.Paths {
			if pp, ok := sub.Paths[p]; ok {
				n += pp.NarSize
			}
		}
		k := gr.Key()
		l.keys[k] = n
		l.report.Layers = append(l.report.Layers, LayerReport{Key: k, Bytes: n, Paths: gr.Paths})
	}
	return l
}

// Evaluate groups every image of c with s for an image budget of budget
// layers (budget-1 store-path groups, the last layer being the
// customisation layer) and measures sharing and, when c has updates, the
// cost of the update (as "mixed" in Summary.Updates).
func Evaluate(c *Corpus, s layering.Strategy, budget int) Report {
	return EvaluateUpdates(c, s, budget, nil)
}

// EvaluateUpdates is Evaluate that also measures each update of updates
// (by kind; see Corpus.UpdateKinds) against the images of c.
func EvaluateUpdates(c *Corpus, s layering.Strategy, budget int, updates map[string]*Update) Report {
	if budget < 2 {
		budget = 2
	}
	r := Report{Strategy: s.Name(), Budget: budget}
	g := c.Graph()
	stored := make(map[string]int64)
	before := make([]layered, len(c.Images))
	for i, im := range c.Images {
		before[i] = layerImage(g, s, budget, im.Name, im.Roots, &r.Problems)
		r.Images = append(r.Images, before[i].report)
		for k, n := range before[i].keys {
			stored[k] = n
		}
		if n := len(before[i].keys) + 1; n > r.Summary.MaxLayers {
			r.Summary.MaxLayers = n
		}
	}
	r.Summary.Images = len(c.Images)
	r.Summary.IdealBytes = idealBytes(c)
	for _, n := range stored {
		r.Summary.StoredBytes += n
	}
	r.Summary.DistinctLayers = len(stored)
	if r.Summary.StoredBytes > 0 {
		r.Summary.Efficiency = float64(r.Summary.IdealBytes) / float64(r.Summary.StoredBytes)
	}
	measure := func(u *Update, keepImages bool) *UpdateSummary {
		gu := u.graph
		sum := &UpdateSummary{Bumped: u.Bumped}
		after := make(map[string]int64)
		changed := make(map[string]bool)
		for i, im := range c.Images {
			roots, moved := u.newRoots(im.Roots)
			if !moved {
				// The closure of unmoved roots can still hold changed
				// paths only if a root's dependency changed, and then
				// the root itself changed: nothing to do.
				if keepImages {
					r.UpdatedImages = append(r.UpdatedImages, before[i].report)
				}
				continue
			}
			l := layerImage(gu, s, budget, im.Name, roots, &r.Problems)
			if keepImages {
				r.UpdatedImages = append(r.UpdatedImages, l.report)
			}
			sum.Images++
			var fetch int64
			for k, n := range l.keys {
				after[k] = n
				if _, ok := before[i].keys[k]; !ok {
					fetch += n
				}
			}
			var ch int64
			for _, p := range gu.Closure(roots...) {
				if u.isNew[p] {
					ch += gu.Paths[p].NarSize
					changed[p] = true
				}
			}
			sum.ClientBytes += fetch
			sum.ClientChangedBytes += ch
		}
		for k, n := range after {
			if _, ok := stored[k]; !ok {
				sum.NewBytes += n
			}
		}
		for p := range changed {
			sum.ChangedBytes += gu.Paths[p].NarSize
		}
		sum.ChangedPaths = len(changed)
		sum.Cost = ratio(sum.NewBytes, sum.ChangedBytes)
		sum.ClientCost = ratio(sum.ClientBytes, sum.ClientChangedBytes)
		return sum
	}
	if len(c.Updated) > 0 {
		m := measure(c.ownUpdate(), true)
		r.Summary.UpdateNewBytes, r.Summary.UpdateChangedBytes = &m.NewBytes, &m.ChangedBytes
		r.Summary.UpdateCost, r.Summary.ClientUpdateCost = &m.Cost, &m.ClientCost
		r.Summary.Updates = map[string]*UpdateSummary{UpdateMixed: m}
	}
	kinds := make([]string, 0, len(updates))
	for k := range updates {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		if r.Summary.Updates == nil {
			r.Summary.Updates = make(map[string]*UpdateSummary)
		}
		r.Summary.Updates[k] = measure(updates[k], false)
	}
	sort.Strings(r.Problems)
	return r
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
