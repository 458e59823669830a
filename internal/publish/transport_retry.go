package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
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
		wait, again := t.delay(r, resp, err, backoff)
		if !again {
			return resp, err
		}
		if resp != nil {
			drain(resp)
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

// delay tells whether r is worth another try after the answer resp (or
// the error err), and how long to wait before it: what Retry-After asks
// for, else backoff with jitter.
func (t *retrier) delay(r *http.Request, resp *http.Response, err error, backoff time.Duration) (time.Duration, bool) {
	switch {
	case err != nil:
		if !temporaryNetError(err) || isUploadSession(r) {
			return 0, false
		}
		return jitter(backoff), true
	case retryStatus(resp.StatusCode):
		ra, hasRA := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		if isUploadSession(r) && resp.StatusCode != http.StatusTooManyRequests && !hasRA {
			return 0, false
		}
		if !hasRA {
			return jitter(backoff), true
		}
		return ra, ra <= t.opts.MaxRetryAfter
	}
	return 0, false
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
