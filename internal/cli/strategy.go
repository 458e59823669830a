package cli

import (
	"context"
	"fmt"
	"os"

	"strata/internal/layering"
	"strata/internal/layering/eval"
)

// loadStrategy returns the layering strategy called name configured with the
// package-set data strata build and strata serve are given: packageSet, a
// corpus file (the package set's paths and images, the format of strata
// layers), gives the statistics of eval.Corpus.Stats, exactly what the
// layering benchmark measures the strategy with; popSrc (a file or URL in
// Nixery's format) then replaces the popularity. Without either the
// strategy runs without package-set data, as before.
func loadStrategy(ctx context.Context, name, popSrc, packageSet string) (layering.Strategy, error) {
	var st layering.SetStats
	if packageSet != "" {
		data, err := os.ReadFile(packageSet)
		if err != nil {
			return nil, fmt.Errorf("--package-set: %w", err)
		}
		c, err := eval.ParseCorpus(data)
		if err != nil {
			return nil, fmt.Errorf("--package-set %s: %w (want a corpus: {\"paths\": {...}, \"images\": [...]}, as strata layers reads)", packageSet, err)
		}
		st = c.Stats()
	}
	if popSrc != "" {
		pop, err := layering.LoadPopularity(ctx, popSrc)
		if err != nil {
			return nil, fmt.Errorf("--popularity: %w", err)
		}
		st.Popularity = pop
	}
	s, err := layering.NewFor(name, st)
	if err != nil {
		return nil, fmt.Errorf("--strategy: %w", err)
	}
	return s, nil
}
