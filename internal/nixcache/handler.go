package nixcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"strata/internal/storage"
)

// Options configure the Handler.
type Options struct {
	// Store holds what a Recorder recorded. Required.
	Store storage.Store
	// Priority is the cache's priority in /nix-cache-info (lower is
	// tried first; cache.nixos.org has 40); default 41.
	Priority int
	// Authorize, when set, decides whether a request may read the cache
	// (the same rule as a registry pull); when it refuses, it has written
	// the response. Default: every request may.
	Authorize func(w http.ResponseWriter, r *http.Request) bool
	// Registerer receives the hit and miss counters; default none.
	Registerer prometheus.Registerer
	// Log receives storage errors; default slog.Default().
	Log *slog.Logger
}

// Match reports whether an URL path is one the cache answers:
// /nix-cache-info, /<name>.narinfo, /nar/<name>. A router sends those to
// the Handler, which answers 404 for any that does not name a recorded
// object.
func Match(p string) bool {
	switch {
	case p == "/nix-cache-info", strings.HasPrefix(p, "/nar/"):
		return true
	case strings.HasSuffix(p, ".narinfo") && strings.Count(p, "/") == 1:
		return true
	}
	return false
}

var zeroTime time.Time

type handler struct {
	o        Options
	requests *prometheus.CounterVec
}

// New returns the cache's http.Handler: GET and HEAD of /nix-cache-info,
// /<hash>.narinfo and /nar/<filehash>.nar.zst, with Range on all of them.
func New(o Options) (http.Handler, error) {
	if o.Store == nil {
		return nil, errors.New("nixcache: the Handler needs a Store")
	}
	if o.Priority == 0 {
		o.Priority = 41
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	h := &handler{o: o, requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_nixcache_requests_total",
		Help: "Nix binary cache requests by file kind (narinfo, nar, info) and result (hit; miss: not recorded; invalid: not a store or file hash, nothing read).",
	}, []string{"kind", "result"})}
	for _, k := range []string{"narinfo", "nar", "info"} {
		for _, r := range []string{"hit", "miss", "invalid"} {
			h.requests.WithLabelValues(k, r)
		}
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(h.requests); err != nil {
			return nil, fmt.Errorf("nixcache: metrics: %w", err)
		}
	}
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the Nix binary cache is read-only: use GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	if h.o.Authorize != nil && !h.o.Authorize(w, r) {
		return
	}
	p := r.URL.Path
	switch {
	case p == "/nix-cache-info":
		h.requests.WithLabelValues("info", "hit").Inc()
		w.Header().Set("Content-Type", "text/x-nix-cache-info")
		body := fmt.Sprintf("StoreDir: %s\nWantMassQuery: 1\nPriority: %d\n", StoreDir, h.o.Priority)
		http.ServeContent(w, r, "", zeroTime, strings.NewReader(body))
	case strings.HasPrefix(p, "/nar/"):
		name, ok := strings.CutSuffix(strings.TrimPrefix(p, "/nar/"), ".nar.zst")
		if !ok || !validBase32(name, fileHashLen) {
			h.notFound(w, "nar", "invalid")
			return
		}
		h.serve(w, r, "nar", storage.NARKey(name), "application/x-nix-nar")
	default:
		name, ok := strings.CutSuffix(strings.TrimPrefix(p, "/"), ".narinfo")
		if !ok || !validBase32(name, hashLen) {
			h.notFound(w, "narinfo", "invalid")
			return
		}
		h.serve(w, r, "narinfo", storage.NarinfoKey(name), "text/x-nix-narinfo")
	}
}

func (h *handler) notFound(w http.ResponseWriter, kind, result string) {
	h.requests.WithLabelValues(kind, result).Inc()
	http.Error(w, "not in this cache: strata serves the store paths of the images it has built", http.StatusNotFound)
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, kind, key, contentType string) {
	ctx := r.Context()
	info, err := h.o.Store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		h.notFound(w, kind, "miss")
		return
	}
	if err != nil {
		h.fail(ctx, w, key, err)
		return
	}
	f, err := h.o.Store.Open(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		h.notFound(w, kind, "miss")
		return
	}
	if err != nil {
		h.fail(ctx, w, key, err)
		return
	}
	defer f.Close()
	h.requests.WithLabelValues(kind, "hit").Inc()
	w.Header().Set("Content-Type", contentType)
	if kind == "nar" {
		// A NAR is named by its content: it never changes.
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	http.ServeContent(w, r, "", info.ModTime, &sized{ReadSeeker: f, size: info.Size})
}

func (h *handler) fail(ctx context.Context, w http.ResponseWriter, key string, err error) {
	h.o.Log.ErrorContext(ctx, "nix cache: storage", "key", key, "error", err.Error())
	http.Error(w, "storage error; see the server log", http.StatusInternalServerError)
}

// sized answers http.ServeContent's Seek(0, End) from the known size, so a
// backend whose Seek to the end is costly is not asked for it.
type sized struct {
	io.ReadSeeker
	size int64
	pos  int64
}

func (s *sized) Seek(off int64, whence int) (int64, error) {
	if whence == io.SeekEnd && off == 0 {
		s.pos = s.size
		return s.size, nil
	}
	if whence == io.SeekStart && off == s.pos {
		return off, nil
	}
	n, err := s.ReadSeeker.Seek(off, whence)
	s.pos = n
	return n, err
}

func (s *sized) Read(p []byte) (int, error) {
	n, err := s.ReadSeeker.Read(p)
	s.pos += int64(n)
	return n, err
}
