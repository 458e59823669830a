package web

import (
	"sync"

	"strata/internal/builder"
)

// Recent is the bounded list of recent builds the page shows, newest
// first. It is the builder's BuildLog (builder.Options.Builds): the
// builder tells it of each build, the page reads it.
type Recent struct {
	mu   sync.Mutex
	max  int
	list []builder.Record
}

var _ builder.BuildLog = (*Recent)(nil)

// NewRecent returns a list that keeps max records.
func NewRecent(max int) *Recent { return &Recent{max: max} }

// Add records a build.
func (r *Recent) Add(rec builder.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append([]builder.Record{rec}, r.list...)
	if len(r.list) > r.max {
		r.list = r.list[:r.max]
	}
}

// List returns the records, newest first.
func (r *Recent) List() []builder.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]builder.Record(nil), r.list...)
}
