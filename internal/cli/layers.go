package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"strata/internal/layering"
	"strata/internal/layering/eval"
)

func init() {
	register(func(env *Env) *cobra.Command {
		var (
			budget   int
			strategy string
			popSrc   string
			summary  bool
			explain  string
		)
		cmd := &cobra.Command{
			Use:   "layers [flags] CORPUS.json",
			Short: "Group the images of a corpus into layers and measure sharing",
			Long: `Layers reads a corpus (a package set's store paths and the images built from
it, as in testdata/corpus/nixpkgs.json), groups every image's closure into
layers with a strategy and prints JSON: each image's layer groups and a
"summary" with idealBytes, storedBytes, efficiency (idealBytes/storedBytes),
maxLayers and, when the corpus has updates, updateNewBytes,
updateChangedBytes and updateCost (what the registry stores anew per changed
byte) and clientUpdateCost (what a client holding the old images fetches per
changed byte). "updates" has the same for each update kind: leaf (three leaf
applications), mid (a library a few percent of the package set depends on),
base (the path nearly everything depends on) and mixed (the corpus's own).

With --explain IMAGE it prints, for that image of the corpus, each layer with
why its paths are together (a layer of its own with its folded private chain,
or a popularity tier of the paths that got none) and which update re-uploads
which layers.

Popularity comes from --popularity (a file or http(s) URL in Nixery's format),
else from NIX_POPULARITY_URL, else it is computed from the corpus's package set.`,
			Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if budget < 2 {
					return fmt.Errorf("--budget %d: an image needs at least 2 layers (store paths and the customisation layer)", budget)
				}
				data, err := os.ReadFile(args[0])
				if err != nil {
					return fmt.Errorf("layers: %w", err)
				}
				c, err := eval.ParseCorpus(data)
				if err != nil {
					return err
				}
				if popSrc == "" && env.Getenv != nil {
					popSrc = env.Getenv("NIX_POPULARITY_URL")
				}
				st := c.Stats()
				if popSrc != "" {
					if st.Popularity, err = layering.LoadPopularity(cmd.Context(), popSrc); err != nil {
						return err
					}
				}
				s, err := layering.NewFor(strategy, st)
				if err != nil {
					return err
				}
				kinds := c.UpdateKinds()
				if explain != "" {
					x, err := eval.Explain(c, s, budget, explain, kinds)
					if err != nil {
						return err
					}
					x.Write(env.Stdout)
					return nil
				}
				r := eval.EvaluateUpdates(c, s, budget, kinds)
				if len(r.Problems) > 0 {
					return fmt.Errorf("layers: strategy %s broke its contract: %s", s.Name(), strings.Join(r.Problems, "; "))
				}
				var out any = r
				if summary {
					out = map[string]any{"strategy": r.Strategy, "budget": r.Budget, "summary": r.Summary}
				}
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			},
		}
		cmd.Flags().IntVar(&budget, "budget", layering.DefaultBudget, "layers per image, the customisation layer included")
		cmd.Flags().StringVar(&strategy, "strategy", "strata", "layering strategy: "+strings.Join(layering.Names(), ", "))
		cmd.Flags().StringVar(&popSrc, "popularity", "", "popularity data in Nixery's format, a file or an http(s) URL (default $NIX_POPULARITY_URL, else computed from the corpus)")
		cmd.Flags().BoolVar(&summary, "summary-only", false, "print only the summary, not each image's layers")
		cmd.Flags().StringVar(&explain, "explain", "", "explain the layers of the corpus image `IMAGE` and what each update re-uploads")
		return cmd
	})
}
