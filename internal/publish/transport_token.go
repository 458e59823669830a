package publish

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
)

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
				drain(resp)
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
