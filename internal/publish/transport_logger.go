package publish

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

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
