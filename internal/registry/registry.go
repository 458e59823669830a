// Package registry is strata's http.Handler for the OCI distribution API
// v1.1: exact status codes, headers and error bodies, one error table.
//
// Manifests by tag come from a Backend (which may build the image on
// demand); blobs, and manifests by digest, are read from a storage.Store
// under storage.BlobKey(digest).
//
// Namespaces and digests: strata's names are on-demand package lists, not
// owned repositories, so content is shared by every name, like Nixery: a
// digest request (manifest or blob) under any valid repository name is
// answered from the one content-addressed store, without checking that the
// name ever produced that digest. The name is still validated, so a bad
// name is NAME_INVALID before any storage access. A manifest by digest is
// served only if the stored bytes parse as an image manifest or index (a
// layer or config blob is never served as a manifest: MANIFEST_UNKNOWN).
//
// Routing: a name may hold slashes, so the endpoint is found from the end
// of the path (the last "/manifests/", "/blobs/", "/referrers/", or a
// trailing "/tags/list"). Each endpoint is a handler method in a route
// table keyed by endpoint and HTTP method.
//
// Push namespace: names whose first component(s) are Options.PushPrefix
// ("pushed" in strata serve) followed by at least one more component are
// pushed repositories; every other name is an on-demand image. The two
// never meet: the Backend is never asked about a pushed name, and a write
// (upload, manifest PUT, DELETE) to an on-demand name answers 403 DENIED
// with a message naming the rule. (A package attribute named like the
// prefix can therefore not be the first component of an on-demand name.)
// Pushes only ever add content-addressed blobs that do not exist yet, so a
// push can never overwrite an on-demand image's bytes. With an empty
// prefix the registry is pull-only and writes answer 405.
//
// Pushed repositories own their content, unlike on-demand names: a blob or
// manifest is visible in one only when linked there (see the key layout in
// repo.go), DELETE removes links, and the garbage collector (gc.go)
// removes bytes nothing links or references. Uploads keep their state in
// the store (uploads.go), so they work across replicas; the digest is
// verified before anything becomes visible under it.
//
// Pull hot path: manifests are cached in memory by digest (they are
// immutable) with their response header values built once, so a cached
// manifest is answered without a storage access or a per-request header
// allocation. A pushed tag or digest, and an on-demand name's tag, resolve
// through an in-memory cache of references with a TTL
// (Options.RefCacheTTL, 2s by default). Staleness bound: a push or delete
// is visible to the next request on the replica that served it (its
// references are dropped at once); on every other replica sharing the
// storage, after at most the TTL; an on-demand tag whose package set moved
// on, after at most the TTL too. Blobs are served from the *os.File the
// store opens, so http.ServeContent reaches the connection's sendfile.
// Options.AccessLog writes the access log with a hand-rolled encoder, as
// slog's costs more than the rest of the request, and group-commits it, so
// a busy server does not make a write system call per request.
//
// Access control (Options.Auth, package auth): GET and HEAD need pull,
// uploads and manifest PUT need push (and pull on a mount's source),
// DELETE needs delete; a 401 carries the WWW-Authenticate challenge of the
// scopes needed.
package registry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"strata/internal/auth"
	"strata/internal/storage"
)

// Manifest is a manifest as served.
type Manifest struct {
	Body      []byte
	MediaType string
	Digest    string // sha256:... of Body; computed when empty
}

// Backend resolves manifests by tag for on-demand names; blobs and
// manifests by digest are read from the Store directly.
type Backend interface {
	// Manifest returns the manifest of repo:tag, building it if needed.
	// accept is the client's parsed Accept list (media types). The
	// backend stores the manifest as a blob under its digest before it
	// returns, so a later pull by digest finds it in the Store.
	Manifest(ctx context.Context, repo, tag string, accept []string) (Manifest, error)
	// Tags lists the tags of repo.
	Tags(ctx context.Context, repo string) ([]string, error)
}

// Options configure the handler.
type Options struct {
	// Store holds blobs and manifests by digest. Required.
	Store storage.Store
	// Backend answers manifests by tag and tag lists. Required.
	Backend Backend
	// Log receives the access log (msg "request") and internal errors.
	// Default: discard.
	Log *slog.Logger
	// Redirect, when positive and the Store implements
	// storage.Redirector, answers blob GETs with a 307 to a URL valid
	// for this long. Default 0: blobs are served by this handler.
	Redirect time.Duration
	// PushPrefix is the push namespace: repositories named
	// "<PushPrefix>/..." accept pushes and deletes, and every other name
	// is an on-demand image name. Default "": no pushes.
	PushPrefix string
	// Auth checks every request. Default nil: no access control.
	Auth *auth.Service
	// MaxUploadSize is the largest blob accepted, in bytes. Default 0:
	// no limit.
	MaxUploadSize int64
	// MaxConcurrentUploads bounds the requests carrying upload data at
	// once; more answer 429 TOOMANYREQUESTS. Default 64.
	MaxConcurrentUploads int
	// AccessLog, when set, receives the access log as JSON lines in the
	// shape of slog's JSON handler (msg "request"), written by a fast
	// encoder and group-committed (the lines waiting go out in one Write,
	// by a goroutine of the handler), instead of through Log. Default nil:
	// through Log.
	AccessLog io.Writer
	// RefCacheTTL is how long a resolved reference is cached in memory: a
	// pushed repository's tags and links (writes through this handler drop
	// them at once) and an on-demand name's tags. It bounds staleness
	// across replicas: another replica's push or delete, or a package set
	// that moved on, is seen after at most the TTL. Default 2s; negative:
	// no cache.
	RefCacheTTL time.Duration
	// Now is the clock of the caches. Default time.Now.
	Now func() time.Time
	// Metrics, when set, observes every request once it is served.
	// Default nil: none.
	Metrics Metrics
}

// Metrics observes served requests. endpoint is one of "manifest",
// "blob", "tags", "upload", "referrers" or "other" (the API base and
// unparsable paths); bytes is the size of the body sent. It is called on
// every request, from many goroutines at once: it must be cheap.
type Metrics interface {
	ObserveRequest(endpoint, method string, status int, bytes int64, d time.Duration)
}

// FaultMetrics is implemented by a Metrics that also counts storage
// faults (see storage.FaultOf); kind is one of storage.FaultKinds.
type FaultMetrics interface {
	ObserveStorageFault(kind string)
}

// endpointClasses are the Metrics endpoint classes of the route kinds.
var endpointClasses = [numRouteKinds]string{
	routeBase: "other", routeManifest: "manifest", routeBlob: "blob", routeUploads: "upload",
	routeUpload: "upload", routeTags: "tags", routeReferrers: "referrers",
}

// MaxManifestSize is the largest manifest served or accepted (4 MiB, the
// size the spec says registries should accept at least).
const MaxManifestSize = 4 << 20

var apiVersion = []string{"registry/2.0"}

// handlerFunc serves one endpoint. A returned error is written with the
// error table; it must not have written a response itself then.
type handlerFunc func(w http.ResponseWriter, r *http.Request, rt route) error

// handler is the registry http.Handler.
type handler struct {
	store    storage.Store
	backend  Backend
	log      *slog.Logger
	redirect time.Duration
	routes   [numRouteKinds]map[string]handlerFunc

	pushPrefix string
	auth       *auth.Service
	autoMount  bool // mount without "from" (every blob is readable anyway)
	maxUpload  int64
	uploadSem  chan struct{}
	uploadMu   [64]sync.Mutex
	cache      *cache
	flight     singleflight.Group // on-demand tag lookups in progress
	now        func() time.Time
	access     *accessLog
	metrics    Metrics
	// gcMu is held for reading by writes that link content and for
	// writing by an online garbage collection.
	gcMu sync.RWMutex
}

// New returns the registry handler. It panics if Store or Backend is nil.
func New(opts Options) http.Handler {
	if opts.Store == nil || opts.Backend == nil {
		panic("registry: Options.Store and Options.Backend are required")
	}
	h := &handler{store: opts.Store, backend: opts.Backend, log: opts.Log, redirect: opts.Redirect,
		pushPrefix: strings.Trim(opts.PushPrefix, "/"), auth: opts.Auth, maxUpload: opts.MaxUploadSize}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxConcurrentUploads <= 0 {
		opts.MaxConcurrentUploads = 64
	}
	h.uploadSem = make(chan struct{}, opts.MaxConcurrentUploads)
	ttl := opts.RefCacheTTL
	if ttl == 0 {
		ttl = 2 * time.Second
	}
	h.cache = newCache(ttl, 64<<20)
	h.now = opts.Now
	if h.now == nil {
		h.now = time.Now
	}
	h.autoMount = h.auth == nil || h.auth.AnonymousPull()
	h.metrics = opts.Metrics
	if opts.AccessLog != nil {
		h.access = newAccessLog(opts.AccessLog)
	}
	h.routes[routeBase] = map[string]handlerFunc{
		http.MethodGet:  h.base,
		http.MethodHead: h.base,
	}
	h.routes[routeManifest] = map[string]handlerFunc{
		http.MethodGet:    h.getManifest,
		http.MethodHead:   h.getManifest,
		http.MethodPut:    h.putManifest,
		http.MethodDelete: h.deleteManifest,
	}
	h.routes[routeBlob] = map[string]handlerFunc{
		http.MethodGet:    h.getBlob,
		http.MethodHead:   h.getBlob,
		http.MethodDelete: h.deleteBlob,
	}
	h.routes[routeTags] = map[string]handlerFunc{
		http.MethodGet: h.listTags,
	}
	h.routes[routeUploads] = map[string]handlerFunc{
		http.MethodPost: h.startUpload,
	}
	h.routes[routeUpload] = map[string]handlerFunc{
		http.MethodGet:    h.uploadStatus,
		http.MethodPatch:  h.patchUpload,
		http.MethodPut:    h.finishUpload,
		http.MethodDelete: h.cancelUpload,
	}
	h.routes[routeReferrers] = map[string]handlerFunc{
		http.MethodGet: h.getReferrers,
	}
	if h.pushPrefix == "" {
		// A pull-only registry: writes answer 405 UNSUPPORTED.
		delete(h.routes[routeManifest], http.MethodPut)
		delete(h.routes[routeManifest], http.MethodDelete)
		delete(h.routes[routeBlob], http.MethodDelete)
		clear(h.routes[routeUploads])
		clear(h.routes[routeUpload])
	}
	return h
}

// ServeHTTP implements http.Handler: parse, dispatch, map errors, log.
func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// Pooled: a response writer per request is an allocation the pull hot
	// path can do without. Nothing keeps it past ServeHTTP.
	w := rwPool.Get().(*responseWriter)
	*w = responseWriter{ResponseWriter: rw}
	defer func() {
		*w = responseWriter{}
		rwPool.Put(w)
	}()
	w.Header()["Docker-Distribution-Api-Version"] = apiVersion
	err := h.serve(w, r)
	if err != nil {
		e, internal := mapError(err)
		e = addressed(e, err, r)
		if f, ok := storage.FaultOf(err); ok && !isRegistryError(err) {
			// The client learns that storage failed, never where or how;
			// the operator gets the path and the error, once.
			e, internal = faultError(f), false
			h.log.LogAttrs(r.Context(), slog.LevelError, "storage fault",
				slog.String("kind", f.Kind),
				slog.String("file", f.Path),
				slog.String("method", r.Method),
				slog.String("path", truncate(r.URL.Path, 1024)),
				slog.String("error", err.Error()))
			if fm, ok := h.metrics.(FaultMetrics); ok {
				fm.ObserveStorageFault(f.Kind)
			}
		}
		if internal {
			h.log.LogAttrs(r.Context(), slog.LevelError, "internal error",
				slog.String("method", r.Method),
				slog.String("path", truncate(r.URL.Path, 1024)),
				slog.String("error", err.Error()))
		}
		if w.status == 0 {
			writeError(w, r, e)
		}
	}
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	if h.metrics != nil {
		endpoint := "other"
		if w.routed {
			endpoint = endpointClasses[w.kind]
		}
		h.metrics.ObserveRequest(endpoint, r.Method, status, w.bytes, time.Since(start))
	}
	if h.access != nil {
		now := time.Now()
		h.access.write(now, r.Method, truncate(r.URL.EscapedPath(), 1024), status, w.bytes, now.Sub(start), r.RemoteAddr)
		return
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", r.Method),
		slog.String("path", truncate(r.URL.EscapedPath(), 1024)),
		slog.Int("status", status),
		slog.Int64("bytes", w.bytes),
		slog.Duration("duration", time.Since(start)),
		slog.String("remote", r.RemoteAddr))
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) error {
	if len(r.RequestURI) > MaxURILength || len(r.URL.EscapedPath()) > MaxURILength {
		return NewError(CodeNameInvalid, "request URI too long").WithStatus(http.StatusRequestURITooLong)
	}
	rt, err := parsePath(r.URL.EscapedPath())
	if err != nil {
		return err
	}
	if rw, ok := w.(*responseWriter); ok {
		rw.kind, rw.routed = rt.kind, true
	}
	methods := h.routes[rt.kind]
	f, ok := methods[r.Method]
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		sort.Strings(allow)
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
		}
		return NewError(CodeUnsupported, "method "+truncate(r.Method, 32)+" is not supported on this endpoint")
	}
	if h.auth != nil {
		if err := h.authorize(w, r, rt); err != nil {
			return err
		}
	}
	return f(w, r, rt)
}

// authorize checks the request's credential for the action its route and
// method need: pull to read, push to upload or put a manifest, delete to
// delete.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request, rt route) error {
	var res auth.Result
	switch {
	case rt.kind == routeBase:
		res = h.auth.Check(r, "")
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		if rt.kind == routeUpload {
			res = h.auth.Check(r, rt.name, auth.Push)
		} else {
			res = h.auth.Check(r, rt.name, auth.Pull)
		}
	case r.Method == http.MethodDelete && rt.kind != routeUpload:
		res = h.auth.Check(r, rt.name, auth.Delete)
	case rt.kind == routeUploads && r.URL.Query().Get("mount") != "" && ValidName(r.URL.Query().Get("from")):
		// A mount reads from the source: ask for both scopes at once.
		res = h.auth.CheckScopes(r, []auth.Access{
			{Type: "repository", Name: rt.name, Actions: []string{auth.Pull, auth.Push}},
			{Type: "repository", Name: r.URL.Query().Get("from"), Actions: []string{auth.Pull}},
		})
	default:
		res = h.auth.Check(r, rt.name, auth.Pull, auth.Push)
	}
	if res.Allowed {
		return nil
	}
	if res.Status == http.StatusForbidden {
		return NewError(CodeDenied, "")
	}
	w.Header().Set("WWW-Authenticate", res.Challenge)
	return NewError(CodeUnauthorized, "")
}

// base answers GET /v2/: the API version check.
func (h *handler) base(w http.ResponseWriter, r *http.Request, _ route) error {
	writeJSON(w, r, http.StatusOK, []byte("{}\n"))
	return nil
}

// writeJSON writes a JSON body with its length (no body for HEAD).
func writeJSON(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

var rwPool = sync.Pool{New: func() any { return new(responseWriter) }}

// responseWriter records the status and body size for the access log.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	kind   routeKind // the endpoint, once routed (for Options.Metrics)
	routed bool
}

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the sendfile fast path of the underlying writer.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

// Flush implements http.Flusher when the underlying writer does.
func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
