package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
)

// tagList is the body of a tags/list response.
type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// listTags answers GET /v2/<name>/tags/list[?n=N][&last=T]: tags in
// lexical order after last, at most n of them, with a Link header to the
// next page when more remain.
func (h *handler) listTags(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	n := -1
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return NewError(CodePaginationNumberInvalid, "n must be a non-negative integer").WithDetail(map[string]string{"n": truncate(s, 32)})
		}
		n = v
	}
	last := q.Get("last")

	var tags []string
	var err error
	if h.pushed(rt.name) {
		tags, err = h.pushedTags(r.Context(), rt.name)
	} else {
		tags, err = h.backend.Tags(r.Context(), rt.name)
	}
	if err != nil {
		return err
	}
	tags = slices.Clone(tags)
	sort.Strings(tags)
	tags = slices.Compact(tags)
	if last != "" {
		i := sort.SearchStrings(tags, last)
		if i < len(tags) && tags[i] == last {
			i++
		}
		tags = tags[i:]
	}
	if n >= 0 && n < len(tags) {
		tags = tags[:n]
		if n > 0 {
			v := url.Values{"n": {strconv.Itoa(n)}, "last": {tags[n-1]}}
			w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, rt.name, v.Encode()))
		}
	}
	if tags == nil {
		tags = []string{}
	}
	body, err := json.Marshal(tagList{Name: rt.name, Tags: tags})
	if err != nil {
		return fmt.Errorf("registry: encode tag list: %w", err)
	}
	writeJSON(w, r, http.StatusOK, append(body, '\n'))
	return nil
}
