// Package metrics is the Prometheus instrumentation of strata serve: HTTP
// requests by endpoint class, method and status, request latency, builds
// started, succeeded and failed (by failure kind), build durations, layers
// packed or taken from the cache, blob bytes served, storage faults by
// kind, and the Go runtime and process collectors, all in a private
// registry served by Handler.
//
// Cardinality is bounded: every label value comes from a small fixed set
// (never a repository name or a tag). The per-request path is cheap: the
// histogram children are created up front, the counter children once per
// (endpoint, method, status), and an observation takes a read lock and a
// map lookup, with no allocation.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"strata/internal/nix"
	"strata/internal/storage"
)

// Endpoint classes, the values of the endpoint label.
const (
	EndpointManifest  = "manifest"
	EndpointBlob      = "blob"
	EndpointTags      = "tags"
	EndpointUpload    = "upload"
	EndpointReferrers = "referrers"
	EndpointOther     = "other"
)

var endpoints = [...]string{EndpointManifest, EndpointBlob, EndpointTags, EndpointUpload, EndpointReferrers, EndpointOther}

var methods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost,
	http.MethodPatch, http.MethodDelete, "other",
}

// Failure kinds, the values of the kind label of strata_builds_failed_total.
const (
	FailureUnknownPackage = "unknown_package"
	FailureRenamed        = "renamed"     // an alias that throws naming the replacement
	FailureRemoved        = "removed"     // an alias that throws: removed from the set
	FailureEval           = "eval_failed" // an attribute that throws something else
	FailureBuild          = "build_failed"
	FailureTimeout        = "timeout"
	FailureOther          = "other"
)

// Metrics holds strata's metrics. It implements the registry's and the
// builder's observer interfaces. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests  *prometheus.CounterVec
	latency   [len(endpoints)][len(methods)]prometheus.Observer
	blobBytes prometheus.Counter

	buildsStarted   prometheus.Counter
	buildsSucceeded prometheus.Counter
	buildsFailed    *prometheus.CounterVec
	buildDuration   *prometheus.HistogramVec
	layersPacked    prometheus.Counter
	layersCached    prometheus.Counter
	storageFaults   map[string]prometheus.Counter

	mu       sync.RWMutex
	counters map[uint32]prometheus.Counter
}

// New returns the metrics, registered in a registry of their own together
// with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), counters: make(map[uint32]prometheus.Counter)}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_http_requests_total",
		Help: "HTTP requests served, by endpoint class (manifest, blob, tags, upload, referrers, other), method and status code.",
	}, []string{"endpoint", "method", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "strata_http_request_duration_seconds",
		Help:    "Time to serve an HTTP request, by endpoint class and method (an on-demand build included).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"endpoint", "method"})
	for i, e := range endpoints {
		for j, meth := range methods {
			m.latency[i][j] = latency.WithLabelValues(e, meth)
		}
	}
	m.blobBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_blob_bytes_served_total",
		Help: "Bytes of blob bodies sent to clients (GET /v2/<name>/blobs/<digest>).",
	})
	m.buildsStarted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_builds_started_total",
		Help: "Image builds started (a cached image is not a build).",
	})
	m.buildsSucceeded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_builds_succeeded_total",
		Help: "Image builds that succeeded.",
	})
	m.buildsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_builds_failed_total",
		Help: "Image builds that failed, by kind: unknown_package, renamed, removed, eval_failed, build_failed, timeout, other.",
	}, []string{"kind"})
	for _, k := range []string{FailureUnknownPackage, FailureRenamed, FailureRemoved, FailureEval, FailureBuild, FailureTimeout, FailureOther} {
		m.buildsFailed.WithLabelValues(k)
	}
	m.buildDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "strata_build_duration_seconds",
		Help:    "Duration of image builds, by result (success, failure).",
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
	}, []string{"result"})
	m.buildDuration.WithLabelValues("success")
	m.buildDuration.WithLabelValues("failure")
	layers := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_layers_total",
		Help: "Layers an image build needed, by source: packed (compressed and stored now) or cached (stored before).",
	}, []string{"source"})
	m.layersPacked = layers.WithLabelValues("packed")
	m.layersCached = layers.WithLabelValues("cached")

	faults := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_storage_faults_total",
		Help: "Requests that failed because storage did: no_space (ENOSPC), quota (EDQUOT), read_only (EROFS), io (EIO).",
	}, []string{"kind"})
	m.storageFaults = map[string]prometheus.Counter{}
	for _, k := range storage.FaultKinds {
		m.storageFaults[k] = faults.WithLabelValues(k)
	}

	m.reg.MustRegister(m.requests, latency, m.blobBytes, m.buildsStarted, m.buildsSucceeded,
		m.buildsFailed, m.buildDuration, layers, faults,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the private registry the metrics are registered in, for
// more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func endpointIndex(e string) int {
	switch e {
	case EndpointManifest:
		return 0
	case EndpointBlob:
		return 1
	case EndpointTags:
		return 2
	case EndpointUpload:
		return 3
	case EndpointReferrers:
		return 4
	}
	return 5
}

func methodIndex(m string) int {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPut:
		return 2
	case http.MethodPost:
		return 3
	case http.MethodPatch:
		return 4
	case http.MethodDelete:
		return 5
	}
	return 6
}

// ObserveRequest records one served request: endpoint is one of the
// Endpoint classes (anything else counts as other), bytes is the size of
// the body sent.
func (m *Metrics) ObserveRequest(endpoint, method string, status int, bytes int64, d time.Duration) {
	e, meth := endpointIndex(endpoint), methodIndex(method)
	if status < 100 || status > 999 {
		status = 0
	}
	key := uint32(e)<<16 | uint32(meth)<<12 | uint32(status)
	m.mu.RLock()
	c, ok := m.counters[key]
	m.mu.RUnlock()
	if !ok {
		c = m.requests.WithLabelValues(endpoints[e], methods[meth], strconv.Itoa(status))
		m.mu.Lock()
		m.counters[key] = c
		m.mu.Unlock()
	}
	c.Inc()
	m.latency[e][meth].Observe(d.Seconds())
	if e == 1 && meth == 0 && bytes > 0 {
		m.blobBytes.Add(float64(bytes))
	}
}

// ObserveStorageFault counts a request that failed because storage did;
// kind is one of storage.FaultKinds (others are ignored).
func (m *Metrics) ObserveStorageFault(kind string) {
	if c, ok := m.storageFaults[kind]; ok {
		c.Inc()
	}
}

// BuildStarted records the start of an image build.
func (m *Metrics) BuildStarted() { m.buildsStarted.Inc() }

// BuildFinished records the end of an image build that took d; err is nil
// on success.
func (m *Metrics) BuildFinished(d time.Duration, err error) {
	if err == nil {
		m.buildsSucceeded.Inc()
		m.buildDuration.WithLabelValues("success").Observe(d.Seconds())
		return
	}
	m.buildsFailed.WithLabelValues(FailureKind(err)).Inc()
	m.buildDuration.WithLabelValues("failure").Observe(d.Seconds())
}

// LayerPacked records a layer that was packed and stored.
func (m *Metrics) LayerPacked() { m.layersPacked.Inc() }

// LayerCached records a layer that was found stored already.
func (m *Metrics) LayerCached() { m.layersCached.Inc() }

// FailureKind classifies a build error: FailureRenamed, FailureRemoved
// and FailureEval for attributes that throw (nixpkgs' aliases of renamed
// and removed packages, and other evaluation failures), FailureUnknownPackage for names
// the package set does not have (or a tag that selects no revision),
// FailureTimeout for a build that ran out of time, FailureBuild for a
// failed Nix build, FailureOther for anything else.
func FailureKind(err error) string {
	var (
		unknown   *nix.UnknownPackagesError
		ambiguous *nix.AmbiguousPackageError
		invalid   *nix.InvalidNameError
		ref       *nix.UnknownRefError
		be        *nix.BuildError
	)
	if errors.As(err, &unknown) {
		switch unknown.Cause() {
		case nix.CauseRenamed:
			return FailureRenamed
		case nix.CauseRemoved:
			return FailureRemoved
		case nix.CauseEvalFailed:
			return FailureEval
		}
	}
	switch {
	case errors.As(err, &unknown), errors.As(err, &ambiguous), errors.As(err, &invalid), errors.As(err, &ref):
		return FailureUnknownPackage
	case errors.As(err, &be) && be.Timeout, errors.Is(err, context.DeadlineExceeded):
		return FailureTimeout
	case errors.As(err, &be):
		return FailureBuild
	}
	return FailureOther
}
