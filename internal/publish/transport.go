package publish

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RetryOptions bounds the retries of one HTTP request.
type RetryOptions struct {
	// Attempts is the total number of tries of one request. Default 5.
	Attempts int
	// Backoff is the first wait when the registry gives no Retry-After; it
	// triples on every further try (with 10% jitter). Default 200ms.
	Backoff time.Duration
	// MaxRetryAfter is the longest Retry-After honoured; a registry asking
	// for longer gets its answer passed on as an error. Default 60s.
	MaxRetryAfter time.Duration
}

func (o RetryOptions) withDefaults() RetryOptions {
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 200 * time.Millisecond
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 60 * time.Second
	}
	return o
}

// transportOptions configures newTransport.
type transportOptions struct {
	Insecure  bool
	Retry     RetryOptions
	ChunkSize int64
	Log       *slog.Logger
}

// defaultChunkSize is the chunk size of the chunked upload fallback.
const defaultChunkSize = 8 << 20

// minChunkSize is the smallest chunk the fallback halves down to.
const minChunkSize = 64 << 10

// newTransport returns strata's HTTP stack for registries, below ggcr's
// authentication (outermost first):
//
//	tokenPOST   password grant POST to the token realm, GET fallback
//	chunker     chunked upload fallback on 413, or always above ChunkSize
//	retrier     408/429/5xx with Retry-After, network errors, bounded
//	logger      --debug request log, Authorization redacted
//	guard       plain HTTP only to loopback, or with Insecure
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

// guard refuses plain HTTP except to loopback hosts or with --insecure: ggcr
// would otherwise fall back to HTTP for private (RFC 1918) and .local hosts.
type guard struct {
	inner    http.RoundTripper
	insecure bool
}

func (g *guard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !g.insecure && !IsLoopback(r.URL.Host) {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("refusing plain HTTP to %s: pass --insecure if you trust this registry and the network to it", r.URL.Host)
	}
	return g.inner.RoundTrip(r)
}

// sensitiveHeaders never appear in logs.
var sensitiveHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Registry-Auth"}

// sensitiveParams are query parameters whose values never appear in logs.
var sensitiveParams = []string{"password", "refresh_token", "access_token", "token", "client_secret", "code", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "sig", "Signature"}

// RedactURL returns u as a string with the values of credential-bearing query
// parameters replaced by REDACTED.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	q := c.Query()
	changed := false
	for _, p := range sensitiveParams {
		for k := range q {
			if strings.EqualFold(k, p) {
				q[k] = []string{"REDACTED"}
				changed = true
			}
		}
	}
	if changed {
		c.RawQuery = q.Encode()
	}
	return c.String()
}

// RedactHeader returns a copy of h with credential headers replaced by their
// scheme (e.g. "Bearer REDACTED").
func RedactHeader(h http.Header) http.Header {
	out := h.Clone()
	for _, k := range sensitiveHeaders {
		vs := out.Values(k)
		if len(vs) == 0 {
			continue
		}
		red := make([]string, len(vs))
		for i, v := range vs {
			scheme, _, found := strings.Cut(v, " ")
			if found && !strings.Contains(scheme, "=") {
				red[i] = scheme + " REDACTED"
			} else {
				red[i] = "REDACTED"
			}
		}
		out[http.CanonicalHeaderKey(k)] = red
	}
	return out
}

// logger logs every request at debug level, with credentials redacted and
// never a body.
type logger struct {
	inner http.RoundTripper
	log   *slog.Logger
}

func (l *logger) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	if !l.log.Enabled(ctx, slog.LevelDebug) {
		return l.inner.RoundTrip(r)
	}
	start := time.Now()
	resp, err := l.inner.RoundTrip(r)
	attrs := []any{"method", r.Method, "url", RedactURL(r.URL),
		"request_headers", headerString(RedactHeader(r.Header)),
		"duration", time.Since(start).Round(time.Microsecond).String()}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	} else {
		attrs = append(attrs, "status", resp.StatusCode,
			"response_headers", headerString(RedactHeader(resp.Header)))
	}
	l.log.DebugContext(ctx, "http", attrs...)
	return resp, err
}

func headerString(h http.Header) string {
	var b strings.Builder
	for k, vs := range h {
		for _, v := range vs {
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(k + ": " + v)
		}
	}
	return b.String()
}

// replayable reports whether r's body can be sent again.
func replayable(r *http.Request) bool {
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}

// rewind returns a copy of r with a fresh body.
func rewind(r *http.Request) (*http.Request, error) {
	c := r.Clone(r.Context())
	if r.Body != nil && r.Body != http.NoBody {
		b, err := r.GetBody()
		if err != nil {
			return nil, err
		}
		c.Body = b
	}
	return c, nil
}

// isUploadSession reports whether r writes to a blob upload session, which
// must not be replayed after the registry may have taken part of it.
func isUploadSession(r *http.Request) bool {
	return (r.Method == http.MethodPatch || r.Method == http.MethodPut) && strings.Contains(r.URL.Path, "/blobs/uploads/")
}

// retryStatus reports whether a status is worth another try.
func retryStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// parseRetryAfter reads a Retry-After header (seconds or an HTTP date).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		if s > 1<<31 {
			s = 1 << 31
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// retrier retries 408, 429 and 5xx answers and network errors with bounded
// exponential back-off, waiting what Retry-After asks for when present.
// ggcr's own retries ignore Retry-After and never retry 429.
//
// A write to an upload session (PATCH/PUT .../blobs/uploads/...) is retried
// only when the registry said it did not take it (429, or any status with
// Retry-After); other failures there go back to ggcr, which restarts the
// whole blob upload.
type retrier struct {
	inner http.RoundTripper
	opts  RetryOptions
	log   *slog.Logger
}

func (t *retrier) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	canReplay := replayable(r)
	backoff := t.opts.Backoff
	req := r
	for attempt := 1; ; attempt++ {
		resp, err := t.inner.RoundTrip(req)
		if attempt >= t.opts.Attempts || !canReplay || ctx.Err() != nil {
			return resp, err
		}
		var wait time.Duration
		switch {
		case err != nil:
			if !temporaryNetError(err) || isUploadSession(r) {
				return resp, err
			}
			wait = jitter(backoff)
		case retryStatus(resp.StatusCode):
			ra, hasRA := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			if isUploadSession(r) && resp.StatusCode != http.StatusTooManyRequests && !hasRA {
				return resp, nil
			}
			if hasRA {
				if ra > t.opts.MaxRetryAfter {
					return resp, nil
				}
				wait = ra
			} else {
				wait = jitter(backoff)
			}
		default:
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		t.log.DebugContext(ctx, "retrying request", "method", r.Method, "url", RedactURL(r.URL),
			"attempt", attempt+1, "wait", wait.String())
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		backoff *= 3
		if req, err = rewind(r); err != nil {
			return nil, fmt.Errorf("retry %s: %w", r.Method, err)
		}
	}
}

func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

// temporaryNetError reports whether err is a network failure worth retrying.
func temporaryNetError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// chunker uploads a blob in PATCH chunks with Content-Range when a registry
// (or a proxy in front of it) refuses the single PATCH ggcr sends with 413,
// or always for blobs above a configured chunk size. It answers ggcr with the
// registry's last 202, whose Location ggcr then commits with PUT ?digest=.
// After a 413 it starts again from offset 0 on the same upload location (a
// refused request body was not taken); a registry that disagrees answers 416
// and ggcr restarts the whole upload. Each chunk is retried on its own.
type chunker struct {
	inner http.RoundTripper
	size  int64 // forced chunk size; 0: only as a fallback
}

func (c *chunker) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPatch || !strings.Contains(r.URL.Path, "/blobs/uploads/") ||
		r.Header.Get("Content-Range") != "" || r.ContentLength <= 0 || r.GetBody == nil {
		return c.inner.RoundTrip(r)
	}
	if c.size > 0 && r.ContentLength > c.size {
		if r.Body != nil {
			r.Body.Close()
		}
		return c.upload(r, c.size)
	}
	resp, err := c.inner.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	size := int64(defaultChunkSize)
	if c.size > 0 {
		size = c.size
	}
	for size >= r.ContentLength && size > minChunkSize {
		size /= 2
	}
	return c.upload(r, size)
}

// upload sends r's body from offset 0 in chunks of size bytes, halving the
// size (down to minChunkSize) whenever a chunk is refused with 413.
func (c *chunker) upload(r *http.Request, size int64) (*http.Response, error) {
	body, err := r.GetBody()
	if err != nil {
		return nil, fmt.Errorf("chunked upload: %w", err)
	}
	defer body.Close()
	loc := r.URL
	var off int64
	var last *http.Response
	for off < r.ContentLength {
		n := min(size, r.ContentLength-off)
		// A fresh buffer per chunk: net/http may still read a request body
		// after RoundTrip returns, so a sent chunk is never written again.
		data := make([]byte, n)
		if _, err := io.ReadFull(body, data); err != nil {
			return nil, fmt.Errorf("chunked upload: read blob at %d: %w", off, err)
		}
		for {
			chunk := data[:n]
			req := r.Clone(r.Context())
			req.URL = loc
			req.Host = ""
			req.Body = io.NopCloser(bytes.NewReader(chunk))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(chunk)), nil }
			req.ContentLength = n
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+n-1))
			resp, err := c.inner.RoundTrip(req)
			if err != nil {
				if last != nil {
					last.Body.Close()
				}
				return nil, err
			}
			if resp.StatusCode == http.StatusRequestEntityTooLarge && n > minChunkSize {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				// Send the first half now; the second half is read again
				// first in the next round.
				body = io.NopCloser(io.MultiReader(bytes.NewReader(data[n/2:n]), body))
				n /= 2
				size = n
				continue
			}
			if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusCreated {
				if last != nil {
					last.Body.Close()
				}
				return resp, nil
			}
			next, err := nextLocation(loc, resp)
			if err != nil {
				resp.Body.Close()
				return nil, err
			}
			if last != nil {
				last.Body.Close()
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			last = resp
			loc = next
			break
		}
		off += n
	}
	return last, nil
}

func nextLocation(base *url.URL, resp *http.Response) (*url.URL, error) {
	l := resp.Header.Get("Location")
	if l == "" {
		return nil, errors.New("chunked upload: registry answered without a Location header")
	}
	u, err := url.Parse(l)
	if err != nil {
		return nil, fmt.Errorf("chunked upload: bad Location: %w", err)
	}
	return base.ResolveReference(u), nil
}

// tokenPOST makes the Bearer token flow POST first: ggcr exchanges a user
// name and password with GET and Basic auth only (it POSTs only identity
// tokens). When ggcr GETs a token realm (learned from a WWW-Authenticate
// challenge) with Basic credentials, tokenPOST first POSTs the OAuth2
// password grant (with access_type=offline, so a refresh token comes back
// and ggcr POSTs refresh_token grants from then on) and falls back to the
// original GET when the token server does not take POST (any answer but 200,
// 401 or 403).
type tokenPOST struct {
	inner  http.RoundTripper
	mu     sync.Mutex
	realms map[string]bool
}

func realmKey(u *url.URL) string { return u.Scheme + "://" + u.Host + u.Path }

func (t *tokenPOST) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet {
		t.mu.Lock()
		isRealm := t.realms[realmKey(r.URL)]
		t.mu.Unlock()
		if user, pass, ok := r.BasicAuth(); ok && isRealm && user != "" && pass != "" {
			resp, err := t.post(r, user, pass)
			if err == nil {
				switch resp.StatusCode {
				case http.StatusOK, http.StatusUnauthorized, http.StatusForbidden:
					return resp, nil
				}
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
			} else if r.Context().Err() != nil {
				return nil, err
			}
		}
	}
	resp, err := t.inner.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		for _, v := range resp.Header.Values("WWW-Authenticate") {
			if realm, ok := bearerRealm(v); ok {
				if u, err := url.Parse(realm); err == nil {
					t.mu.Lock()
					t.realms[realmKey(u)] = true
					t.mu.Unlock()
				}
			}
		}
	}
	return resp, err
}

func (t *tokenPOST) post(r *http.Request, user, pass string) (*http.Response, error) {
	q := r.URL.Query()
	form := url.Values{}
	form.Set("grant_type", "password")
	form.Set("username", user)
	form.Set("password", pass)
	form.Set("client_id", "strata")
	form.Set("access_type", "offline")
	if s := q.Get("service"); s != "" {
		form.Set("service", s)
	}
	form.Set("scope", strings.Join(q["scope"], " "))
	u := *r.URL
	u.RawQuery = ""
	enc := form.Encode()
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, u.String(), strings.NewReader(enc))
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		if k != "Authorization" {
			req.Header[k] = vs
		}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return t.inner.RoundTrip(req)
}

// bearerRealm extracts the realm of a Bearer challenge.
func bearerRealm(challenge string) (string, bool) {
	scheme, params, _ := strings.Cut(strings.TrimSpace(challenge), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	for params != "" {
		var kv string
		kv, params = cutParam(params)
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "realm") {
			v = strings.TrimSpace(v)
			v = strings.TrimSuffix(strings.TrimPrefix(v, `"`), `"`)
			return v, v != ""
		}
	}
	return "", false
}

// cutParam splits off the first comma-separated auth parameter, honouring
// quoted strings.
func cutParam(s string) (string, string) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if inQuote {
				i++
			}
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				return s[:i], strings.TrimLeft(s[i+1:], " ")
			}
		}
	}
	return s, ""
}
