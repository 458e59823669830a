package layering

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"strata/internal/closure"
)

// Popularity says how widely each store path is used across a package set:
// the number of paths of the set that refer to it. Keys are store names
// without the hash ("hello-2.12.1"), as in Nixery's popularity files, or
// full store paths; a lookup tries the full path, then the name, then the
// package name without its version (the largest count of any version), so
// data computed before a version bump still ranks the bumped package.
type Popularity map[string]int64

// PopularityLoadTimeout bounds fetching popularity data over HTTP.
const PopularityLoadTimeout = 30 * time.Second

// maxPopularityBytes bounds the size of a popularity file (Nixery's file for
// all of nixpkgs is a few MB).
const maxPopularityBytes = 256 << 20

// LoadPopularity reads popularity data in Nixery's format
// ({"name-version": count, ...}) from source, a file path or an http(s) URL
// (as in NIX_POPULARITY_URL). URLs are fetched with a timeout of
// PopularityLoadTimeout unless ctx ends first.
func LoadPopularity(ctx context.Context, source string) (Popularity, error) {
	if source == "" {
		return nil, errors.New("layering: popularity source is empty: give a file path or an http(s) URL")
	}
	var data []byte
	if strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://") {
		ctx, cancel := context.WithTimeout(ctx, PopularityLoadTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
		if err != nil {
			return nil, fmt.Errorf("layering: popularity URL: %w", err)
		}
		resp, err := (&http.Client{Timeout: PopularityLoadTimeout}).Do(req)
		if err != nil {
			return nil, fmt.Errorf("layering: fetch popularity: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("layering: fetch popularity from %s: HTTP %s", redactURL(source), resp.Status)
		}
		data, err = io.ReadAll(io.LimitReader(resp.Body, maxPopularityBytes+1))
		if err != nil {
			return nil, fmt.Errorf("layering: fetch popularity from %s: %w", redactURL(source), err)
		}
	} else {
		f, err := os.Open(source)
		if err != nil {
			return nil, fmt.Errorf("layering: popularity file: %w", err)
		}
		defer f.Close()
		data, err = io.ReadAll(io.LimitReader(f, maxPopularityBytes+1))
		if err != nil {
			return nil, fmt.Errorf("layering: popularity file: %w", err)
		}
	}
	if len(data) > maxPopularityBytes {
		return nil, fmt.Errorf("layering: popularity data from %s exceeds %d bytes", redactURL(source), maxPopularityBytes)
	}
	return ParsePopularity(data)
}

// ParsePopularity parses popularity data in Nixery's JSON format.
func ParsePopularity(data []byte) (Popularity, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw map[string]json.Number
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("layering: popularity data is not a JSON object of name to count: %w", err)
	}
	if raw == nil {
		return nil, errors.New("layering: popularity data is null, want a JSON object of name to count")
	}
	if dec.More() {
		return nil, errors.New("layering: popularity data has trailing data after the JSON object")
	}
	pop := make(Popularity, len(raw))
	for k, v := range raw {
		n, err := v.Int64()
		if err != nil {
			f, ferr := v.Float64()
			if ferr != nil {
				return nil, fmt.Errorf("layering: popularity of %q is %q, not a number", k, v)
			}
			n = int64(f)
		}
		if n < 0 {
			return nil, fmt.Errorf("layering: popularity of %q is negative (%d)", k, n)
		}
		pop[k] = n
	}
	return pop, nil
}

// redactURL drops any userinfo and query from a URL for messages.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.IndexByte(rest, '@'); at >= 0 && at < strings.IndexAny(rest+"/", "/") {
			rest = rest[at+1:]
		}
		s = s[:i+3] + rest
	}
	if q := strings.IndexAny(s, "?#"); q >= 0 {
		s = s[:q]
	}
	return s
}

// PopularityFromGraph computes popularity from a package-set-wide graph (for
// example the merged closures of every image a package set serves): each
// path's count is the number of paths of g that refer to it, keyed by store
// name (summed over paths with the same name). Paths nothing refers to are
// present with count 0.
func PopularityFromGraph(g *closure.Graph) Popularity {
	pop := make(Popularity, len(g.Paths))
	for p := range g.Paths {
		n := StoreName(p)
		if _, ok := pop[n]; !ok {
			pop[n] = 0
		}
	}
	for _, p := range g.Paths {
		for _, r := range p.References {
			pop[StoreName(r)]++
		}
	}
	return pop
}

// popIndex answers popularity lookups for store paths.
type popIndex struct {
	pop     Popularity
	byPName map[string]int64
}

func newPopIndex(pop Popularity) *popIndex {
	if len(pop) == 0 {
		return nil
	}
	idx := &popIndex{pop: pop, byPName: make(map[string]int64, len(pop))}
	for k, v := range pop {
		pn := PName(StoreName(k))
		if old, ok := idx.byPName[pn]; !ok || v > old {
			idx.byPName[pn] = v
		}
	}
	return idx
}

// lookup returns the popularity of path and whether the data knows it.
func (x *popIndex) lookup(path string) (int64, bool) {
	if x == nil {
		return 0, false
	}
	if v, ok := x.pop[path]; ok {
		return v, true
	}
	name := StoreName(path)
	if v, ok := x.pop[name]; ok {
		return v, true
	}
	v, ok := x.byPName[PName(name)]
	return v, ok
}
