// Package web is the landing page of strata serve: how to use the
// instance, copyable pull commands, and the recent builds with their
// failures.
package web

import (
	_ "embed"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"strata/internal/builder"
	"strata/internal/nix"
)

//go:embed index.html
var indexHTML string

var page = template.Must(template.New("index").Funcs(template.FuncMap{
	"ago": func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
	"dur": func(d time.Duration) string { return d.Round(time.Millisecond).String() },
}).Parse(indexHTML))

// Options configure the page.
type Options struct {
	Builder *builder.Builder
}

type build struct {
	Name, Ref, Digest, Error, Log string
	Time                          time.Time
	Duration                      time.Duration
}

// Handler serves the page at "/" and 404 elsewhere.
func Handler(o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		var builds []build
		for _, rec := range o.Builder.Recent().List() {
			b := build{Name: rec.Name, Ref: rec.Ref, Digest: rec.Digest, Time: rec.Time, Duration: rec.Duration}
			if rec.Err != nil {
				b.Error = rec.Err.Error()
				var be *nix.BuildError
				if errors.As(rec.Err, &be) {
					b.Log = lastLines(be.Log, 20)
				}
			}
			builds = append(builds, b)
		}
		var plats []string
		for _, p := range o.Builder.Platforms() {
			plats = append(plats, p.String())
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, map[string]any{
			"Host":      r.Host,
			"Builds":    builds,
			"Platforms": strings.Join(plats, ", "),
		})
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
