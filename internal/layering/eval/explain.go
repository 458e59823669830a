package eval

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"strata/internal/layering"
)

// ImageExplanation is the layering of one image of a corpus, each layer
// with why its paths are together, and what each update would re-upload.
type ImageExplanation struct {
	Image    string             `json:"image"`
	Strategy string             `json:"strategy"`
	Budget   int                `json:"budget"`
	Paths    int                `json:"paths"`
	Bytes    int64              `json:"bytes"`
	Layers   []LayerExplanation `json:"layers"`
	Updates  []UpdateEffect     `json:"updates,omitempty"`
}

// LayerExplanation is one layer of an ImageExplanation.
type LayerExplanation struct {
	layering.Explanation
	Bytes int64 `json:"bytes"`
	// Triggers is the number of paths whose change re-uploads the layer:
	// its paths and everything they depend on (a path changes when any of
	// its dependencies does).
	Triggers int `json:"triggers"`
}

// UpdateEffect is what one update does to the image.
type UpdateEffect struct {
	Kind   string   `json:"kind"`
	Bumped []string `json:"bumped"`
	// Replaced are the indices (from 1) of the image's layers the update
	// replaces; empty when the update does not touch the image.
	Replaced []int `json:"replaced"`
	// FetchBytes are the bytes of the new image's layers the old one
	// lacks; ChangedBytes the bytes of its changed paths.
	FetchBytes   int64   `json:"fetchBytes"`
	ChangedBytes int64   `json:"changedBytes"`
	Cost         float64 `json:"cost"`
}

// Explain explains how s groups the image called name of c for an image
// budget of budget layers (the customisation layer included), and what
// each update of updates (and the corpus's own, as "mixed") re-uploads.
func Explain(c *Corpus, s layering.Strategy, budget int, name string, updates map[string]*Update) (*ImageExplanation, error) {
	if budget < 2 {
		budget = 2
	}
	var im *CorpusImage
	var names []string
	for i := range c.Images {
		names = append(names, c.Images[i].Name)
		if c.Images[i].Name == name {
			im = &c.Images[i]
		}
	}
	if im == nil {
		sort.Strings(names)
		return nil, fmt.Errorf("eval: the corpus has no image %q (images: %s)", name, strings.Join(names, ", "))
	}
	g := c.Graph()
	sub := g.Sub(im.Roots...)
	var exps []layering.Explanation
	if ex, ok := s.(layering.Explainer); ok {
		exps = ex.Explain(sub, budget-1)
	} else {
		for _, gr := range s.Layers(sub, budget-1) {
			exps = append(exps, layering.Explanation{Group: gr, Kind: layering.KindGroup,
				Reason: fmt.Sprintf("strategy %s does not explain its groups", s.Name())})
		}
	}
	out := &ImageExplanation{Image: name, Strategy: s.Name(), Budget: budget, Paths: len(sub.Paths), Bytes: sub.TotalSize()}
	index := make(map[string]int)
	for i, e := range exps {
		le := LayerExplanation{Explanation: e, Triggers: len(sub.Closure(e.Paths...))}
		for _, p := range e.Paths {
			le.Bytes += sub.Paths[p].NarSize
		}
		out.Layers = append(out.Layers, le)
		index[e.Key()] = i + 1
	}
	all := make(map[string]*Update, len(updates)+1)
	for k, u := range updates {
		all[k] = u
	}
	if len(c.Updated) > 0 {
		all[UpdateMixed] = c.ownUpdate()
	}
	for _, kind := range UpdateKindNames() {
		u := all[kind]
		if u == nil {
			continue
		}
		eff := UpdateEffect{Kind: kind, Bumped: u.Bumped, Replaced: []int{}}
		roots := make([]string, len(im.Roots))
		for j, p := range im.Roots {
			if to, ok := u.Map[p]; ok {
				p = to
			}
			roots[j] = p
		}
		after := u.graph.Sub(roots...)
		kept := make(map[string]bool)
		for _, gr := range s.Layers(after, budget-1) {
			k := gr.Key()
			kept[k] = true
			if index[k] == 0 {
				for _, p := range gr.Paths {
					eff.FetchBytes += after.Paths[p].NarSize
				}
			}
		}
		for k, i := range index {
			if !kept[k] {
				eff.Replaced = append(eff.Replaced, i)
			}
		}
		sort.Ints(eff.Replaced)
		for p := range after.Paths {
			if u.isNew[p] {
				eff.ChangedBytes += after.Paths[p].NarSize
			}
		}
		eff.Cost = ratio(eff.FetchBytes, eff.ChangedBytes)
		out.Updates = append(out.Updates, eff)
	}
	return out, nil
}

// Write prints the explanation for people.
func (x *ImageExplanation) Write(w io.Writer) {
	fmt.Fprintf(w, "image %s: %d paths, %s; strategy %s, budget %d: %d store-path layers + the customisation layer\n",
		x.Image, x.Paths, mb(x.Bytes), x.Strategy, x.Budget, len(x.Layers))
	for i, l := range x.Layers {
		var what string
		switch l.Kind {
		case layering.KindOwn:
			what = "own layer: " + layering.StoreName(l.Root)
			if len(l.Folded) > 0 {
				var fs []string
				for _, p := range l.Folded {
					fs = append(fs, layering.StoreName(p))
				}
				what += " + folded private chain: " + strings.Join(fs, ", ")
			}
		case layering.KindTier:
			var ns []string
			for _, p := range l.Paths {
				ns = append(ns, layering.StoreName(p))
			}
			what = fmt.Sprintf("tier %q (%d paths): %s", l.Tier, len(l.Paths), strings.Join(ns, ", "))
		default:
			var ns []string
			for _, p := range l.Paths {
				ns = append(ns, layering.StoreName(p))
			}
			what = fmt.Sprintf("group (%d paths): %s", len(l.Paths), strings.Join(ns, ", "))
		}
		fmt.Fprintf(w, "layer %2d  %10s  %s\n", i+1, mb(l.Bytes), what)
		fmt.Fprintf(w, "          why: %s\n", l.Reason)
		fmt.Fprintf(w, "          re-uploaded when any of %d paths changes (its paths and their dependencies)\n", l.Triggers)
	}
	for _, u := range x.Updates {
		if len(u.Replaced) == 0 {
			fmt.Fprintf(w, "update %-5s (bumps %s): does not touch this image\n", u.Kind, strings.Join(u.Bumped, ", "))
			continue
		}
		var ls []string
		for _, i := range u.Replaced {
			ls = append(ls, fmt.Sprint(i))
		}
		fmt.Fprintf(w, "update %-5s (bumps %s): re-uploads layers %s: fetch %s for %s changed (cost %.2f)\n",
			u.Kind, strings.Join(u.Bumped, ", "), strings.Join(ls, ", "), mb(u.FetchBytes), mb(u.ChangedBytes), u.Cost)
	}
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
