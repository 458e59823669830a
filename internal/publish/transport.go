package publish

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// transportOptions configures newTransport.
type transportOptions struct {
	Insecure  bool
	Retry     RetryOptions
	ChunkSize int64
	Log       *slog.Logger
}

// newTransport returns strata's HTTP stack for registries, below ggcr's
// authentication (outermost first), one file per layer:
//
//	tokenPOST   password grant POST to the token realm, GET fallback (transport_token.go)
//	chunker     chunked upload fallback on 413, or always above ChunkSize (transport_chunk.go)
//	retrier     408/429/5xx with Retry-After, network errors, bounded (transport_retry.go)
//	logger      --debug request log, Authorization redacted (transport_logger.go)
//	guard       plain HTTP only to loopback, or with Insecure (transport_guard.go)
//	base        net/http with connection reuse
func newTransport(o transportOptions) http.RoundTripper {
	base := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   50,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       256 << 10,
		ReadBufferSize:        256 << 10,
	}
	if o.Insecure {
		base.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --insecure asked for it
	}
	log := o.Log
	if log == nil {
		log = slog.New(discardHandler{})
	}
	var rt http.RoundTripper = &guard{inner: base, insecure: o.Insecure}
	rt = &logger{inner: rt, log: log}
	rt = &retrier{inner: rt, opts: o.Retry.withDefaults(), log: log}
	rt = &chunker{inner: rt, size: o.ChunkSize}
	rt = &tokenPOST{inner: rt, realms: map[string]bool{}}
	return rt
}

type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }

// drain reads what is left of a response body that is not passed on (at
// most 64 KiB, so the connection can be reused) and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
