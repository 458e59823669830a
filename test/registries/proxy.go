package registries

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// BearerOptions makes a Proxy enforce the Docker token flow: every /v2/
// request needs "Authorization: Bearer TOKEN" with a token from the proxy's
// own token endpoint at /token, which answers both the OAuth2 POST form
// (grant_type password or refresh_token) and GET with Basic credentials.
type BearerOptions struct {
	// Users are the accepted user → password pairs.
	Users map[string]string
	// RefreshTokens are accepted for grant_type=refresh_token (identity
	// tokens), each granting every scope asked for.
	RefreshTokens []string
	// StaticTokens are accepted directly as Bearer tokens on /v2/ with every
	// scope (registry tokens, as in $REGISTRY_TOKEN).
	StaticTokens []string
	// NoPOST makes the token endpoint answer POST with 404, as token
	// servers without OAuth2 support do, so clients must fall back to GET.
	NoPOST bool
}

// TokenRequest is one call of the token endpoint.
type TokenRequest struct {
	Method    string
	GrantType string // POST only
	Scopes    []string
	Status    int
}

// ProxyOptions configures StartProxy.
type ProxyOptions struct {
	// Bearer, when set, enforces the token flow. Default: no auth added.
	Bearer *BearerOptions
	// MaxBody answers 413 to requests whose body is larger. Default 0: no
	// limit.
	MaxBody int64
	// Intercept runs first for every request; when it returns true it has
	// answered the request and the backend never sees it. Default: nil.
	Intercept func(w http.ResponseWriter, r *http.Request) bool
}

// Proxy is a reverse proxy on 127.0.0.1 in front of a registry.
type Proxy struct {
	// Host is "127.0.0.1:PORT".
	Host string
	// Log records every request the proxy received, with its status.
	Log *AccessLog

	opts    ProxyOptions
	backend *url.URL
	rp      *httputil.ReverseProxy

	mu     sync.Mutex
	tokens map[string][]string // token → granted scopes
	treqs  []TokenRequest
}

// StartProxy starts a proxy in front of backendHost ("127.0.0.1:PORT") and
// closes it at t.Cleanup.
func StartProxy(t testing.TB, backendHost string, opts ProxyOptions) *Proxy {
	t.Helper()
	p := &Proxy{Log: &AccessLog{}, opts: opts, tokens: map[string][]string{},
		backend: &url.URL{Scheme: "http", Host: backendHost}}
	p.rp = &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(p.backend)
		pr.Out.Host = pr.In.Host // the backend builds Location URLs from Host
		pr.Out.Header.Del("Authorization")
	}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	p.Host = l.Addr().String()
	return p
}

// TokenRequests returns the token endpoint calls so far.
func (p *Proxy) TokenRequests() []TokenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]TokenRequest(nil), p.treqs...)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	defer func() { p.Log.add(Request{Method: r.Method, URI: r.URL.RequestURI(), Status: rec.status}) }()
	if p.opts.Intercept != nil && p.opts.Intercept(rec, r) {
		return
	}
	if p.opts.MaxBody > 0 && r.ContentLength > p.opts.MaxBody {
		http.Error(rec, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if b := p.opts.Bearer; b != nil {
		if r.URL.Path == "/token" {
			p.token(rec, r)
			return
		}
		if !p.authorized(r) {
			scope := requiredScope(r)
			ch := fmt.Sprintf(`Bearer realm="http://%s/token",service="strata-test"`, r.Host)
			if scope != "" {
				ch += fmt.Sprintf(`,scope="%s"`, scope)
			}
			rec.Header().Set("WWW-Authenticate", ch)
			rec.Header().Set("Content-Type", "application/json")
			rec.WriteHeader(http.StatusUnauthorized)
			_, _ = rec.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
			return
		}
	}
	p.rp.ServeHTTP(rec, r)
}

// requiredScope is the scope a /v2/ request needs, "" for the base endpoint.
func requiredScope(r *http.Request) string {
	path := strings.TrimPrefix(r.URL.Path, "/v2/")
	for _, kw := range []string{"/blobs/", "/manifests/", "/tags/"} {
		if i := strings.Index(path, kw); i > 0 {
			action := "pull"
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				action = "pull,push"
			}
			return "repository:" + path[:i] + ":" + action
		}
	}
	return ""
}

func (p *Proxy) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	for _, s := range p.opts.Bearer.StaticTokens {
		if tok == s {
			return true
		}
	}
	p.mu.Lock()
	granted, ok := p.tokens[tok]
	p.mu.Unlock()
	if !ok {
		return false
	}
	need := requiredScope(r)
	if need == "" {
		return true
	}
	repo, actions := splitScope(need)
	for _, act := range strings.Split(actions, ",") {
		if !hasScope(granted, repo, act) {
			return false
		}
	}
	return true
}

func splitScope(s string) (repo, actions string) {
	s = strings.TrimPrefix(s, "repository:")
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i+1:]
}

func hasScope(granted []string, repo, action string) bool {
	for _, g := range granted {
		gr, acts := splitScope(g)
		if gr != repo {
			continue
		}
		for _, a := range strings.Split(acts, ",") {
			if a == action || a == "*" {
				return true
			}
		}
	}
	return false
}

func (p *Proxy) token(w http.ResponseWriter, r *http.Request) {
	b := p.opts.Bearer
	tr := TokenRequest{Method: r.Method}
	defer func() {
		p.mu.Lock()
		p.treqs = append(p.treqs, tr)
		p.mu.Unlock()
	}()
	fail := func(code int, msg string) {
		tr.Status = code
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	var ok, offline bool
	switch r.Method {
	case http.MethodGet:
		tr.Scopes = r.URL.Query()["scope"]
		user, pass, has := r.BasicAuth()
		ok = has && user != "" && b.Users[user] == pass
	case http.MethodPost:
		if b.NoPOST {
			fail(http.StatusNotFound, "not found")
			return
		}
		if err := r.ParseForm(); err != nil {
			fail(http.StatusBadRequest, "bad form")
			return
		}
		tr.GrantType = r.PostForm.Get("grant_type")
		tr.Scopes = strings.Fields(r.PostForm.Get("scope"))
		switch tr.GrantType {
		case "password":
			user := r.PostForm.Get("username")
			ok = user != "" && b.Users[user] == r.PostForm.Get("password")
			offline = r.PostForm.Get("access_type") == "offline"
		case "refresh_token":
			p.mu.Lock()
			for _, rt := range b.RefreshTokens {
				ok = ok || r.PostForm.Get("refresh_token") == rt
			}
			p.mu.Unlock()
		default:
			fail(http.StatusBadRequest, "unsupported_grant_type")
			return
		}
	default:
		fail(http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if !ok {
		fail(http.StatusUnauthorized, "invalid credentials")
		return
	}
	var scopes []string
	for _, s := range tr.Scopes {
		scopes = append(scopes, strings.Fields(s)...)
	}
	tok := randomHex()
	p.mu.Lock()
	p.tokens[tok] = scopes
	p.mu.Unlock()
	resp := map[string]any{"token": tok, "access_token": tok, "expires_in": 300}
	if offline {
		rt := randomHex()
		p.mu.Lock()
		b.RefreshTokens = append(b.RefreshTokens, rt)
		p.mu.Unlock()
		resp["refresh_token"] = rt
	}
	tr.Status = http.StatusOK
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
