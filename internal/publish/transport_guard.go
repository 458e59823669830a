package publish

import (
	"fmt"
	"net/http"
)

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
