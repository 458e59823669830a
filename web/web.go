// Package web is the landing page of strata serve: how to use the
// instance (the image name grammar, tags, platforms), copyable pull
// commands for the host the page was asked through, and the recent builds
// with their digests, and for failures the error and the end of the Nix
// log.
//
// The page is one html/template with inline CSS and script: it loads
// nothing from elsewhere, so it works offline, and its Content-Security-
// Policy forbids any other source.
package web

import (
	_ "embed"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"strata/internal/nix"
)

//go:embed index.html
var indexHTML string

var page = template.Must(template.New("index").Funcs(template.FuncMap{
	"ago": ago,
	"dur": func(d time.Duration) string {
		if d >= time.Second {
			return d.Round(100 * time.Millisecond).String()
		}
		return d.Round(time.Millisecond).String()
	},
	"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"short": func(d string) string { return shortDigest(d) },
}).Parse(indexHTML))

// Builds is what the page shows of the builder.
type Builds interface {
	// Recent returns the record of recent builds, newest first.
	Recent() *Recent
	// Platforms returns the configured platforms.
	Platforms() []v1.Platform
}

// Options configure the page.
type Options struct {
	// Builder supplies the recent builds and the platforms. Required.
	Builder Builds
	// Source describes the package set for people ("nixpkgs channel
	// nixos-24.05"); default none.
	Source string
	// Versioned says the tag selects a package-set revision (a git
	// repository: a branch, tag or commit); default false: the tag is
	// only a label.
	Versioned bool
	// PushPrefix is the push namespace, "" when pushes are off.
	PushPrefix string
	// NixCacheKey is the public key of the Nix binary cache served beside
	// the registry (see internal/nixcache), "" when there is none.
	NixCacheKey string
	// LogLines is how many lines of a failed build's Nix log are shown;
	// default 25.
	LogLines int
}

// build is one row of the recent builds.
type build struct {
	Name, Ref, Digest, Error, Log string
	Time                          time.Time
	Duration                      time.Duration
}

// data is the template's input.
type data struct {
	Host       string
	Insecure   bool
	Platforms  []string
	Source     string
	Versioned  bool
	PushPrefix string
	NixKey     string
	Builds     []build
	Failed     int
}

// Handler serves the page at "/" (GET and HEAD) and 404 elsewhere.
func Handler(o Options) http.Handler {
	if o.LogLines <= 0 {
		o.LogLines = 25
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		d := data{Host: r.Host, Insecure: !secure(r), Source: o.Source, Versioned: o.Versioned, PushPrefix: o.PushPrefix, NixKey: o.NixCacheKey}
		if d.Host == "" {
			d.Host = "localhost"
		}
		for _, p := range o.Builder.Platforms() {
			d.Platforms = append(d.Platforms, p.String())
		}
		for _, rec := range o.Builder.Recent().List() {
			b := build{Name: rec.Name, Ref: rec.Ref, Digest: rec.Digest, Time: rec.Time, Duration: rec.Duration}
			if b.Ref == "" {
				b.Ref = "latest"
			}
			if rec.Err != nil {
				d.Failed++
				b.Error = failureMessage(rec.Err, d.Host, rec.Name, b.Ref)
				b.Log = lastLines(nixLog(rec.Err), o.LogLines)
			}
			d.Builds = append(d.Builds, b)
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'")
		var buf strings.Builder
		if err := page.Execute(&buf, d); err != nil {
			http.Error(w, "rendering the page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write([]byte(buf.String()))
	})
}

// secure reports whether the client reached the page over TLS, directly
// or through a proxy that says so.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// failureMessage is a failed build's error as a client of this host would
// see it: a renamed package comes with the pull command of the image with
// its replacement (an error with MessageFor, as the registry answers).
func failureMessage(err error, host, name, ref string) string {
	var af interface {
		MessageFor(host, repo, ref string) string
	}
	if errors.As(err, &af) {
		return af.MessageFor(host, name, ref)
	}
	return err.Error()
}

// nixLog is the end of the Nix output carried by err, if any.
func nixLog(err error) string {
	var be *nix.BuildError
	if errors.As(err, &be) {
		return be.Log
	}
	var ee *nix.EvalError
	if errors.As(err, &ee) {
		return ee.Log
	}
	return ""
}

func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// shortDigest is "sha256:0123456789ab" of a digest.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	}
	return t.UTC().Format("2006-01-02")
}
