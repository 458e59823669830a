// Package auth is strata's access control for the registry: Basic
// credentials from an htpasswd file (bcrypt only), a built-in token
// service for the Docker/OCI Bearer flow, and one policy that says who may
// do what.
//
// Policy: anonymous clients may pull when anonymous pull is on; a user of
// the htpasswd file may pull everything, and push and delete in the
// repositories for which Options.CanPush answers true (strata's push
// namespace). A token carries the scopes granted when it was issued (the
// intersection of what was asked and what the policy allows), so a
// pull-only token cannot push, and a token for one repository cannot read
// another when pulls are private.
//
// Tokens are JWTs signed with HMAC-SHA256 under a key read from a file or
// generated at start (then tokens do not survive a restart, and replicas
// need a shared key file). They expire after Options.TTL (5 minutes by
// default).
//
// Secrets: passwords and tokens are never logged, echoed or put in an
// error. A failed login answers the same way, after comparable work, for an
// unknown user and a wrong password: an unknown user's password is compared
// against a dummy bcrypt hash of the same cost.
package auth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"strata/internal/errcode"
)

// Actions of the repository scope.
const (
	Pull   = "pull"
	Push   = "push"
	Delete = "delete"
)

// Options configure a Service.
type Options struct {
	// Users maps user names to bcrypt hashes (see LoadHtpasswd). Empty:
	// nobody can log in.
	Users map[string][]byte
	// AnonymousPull lets clients without credentials pull. Default false
	// here; strata serve's flag defaults to true.
	AnonymousPull bool
	// CanPush reports whether a repository accepts pushes and deletes at
	// all. Default nil: none does.
	CanPush func(repo string) bool
	// Bearer makes 401 responses challenge with the token service
	// (Bearer realm=...) instead of Basic. Basic credentials are accepted
	// either way.
	Bearer bool
	// Realm is the token service's URL for Bearer challenges. Default "":
	// http://<request host>/token.
	Realm string
	// Service is the service name of tokens and challenges. Default
	// "strata".
	Service string
	// Key signs tokens (at least 32 bytes). Default nil: 32 random bytes.
	Key []byte
	// TTL is how long a token is valid. Default 5 minutes.
	TTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Service checks credentials and issues tokens.
type Service struct {
	o     Options
	dummy []byte // bcrypt hash compared for unknown users

	mu sync.Mutex
	ok map[[32]byte]time.Time // recent successful logins (hash of user, password, salt)
	// salt keys the login cache so its keys reveal nothing.
	salt [32]byte
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Service == "" {
		o.Service = "strata"
	}
	if o.TTL <= 0 {
		o.TTL = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CanPush == nil {
		o.CanPush = func(string) bool { return false }
	}
	if o.Key == nil {
		o.Key = make([]byte, 32)
		if _, err := rand.Read(o.Key); err != nil {
			return nil, fmt.Errorf("auth: token key: %w", err)
		}
	}
	if len(o.Key) < 32 {
		return nil, errors.New("auth: the token key must be at least 32 bytes")
	}
	s := &Service{o: o, ok: map[[32]byte]time.Time{}}
	if _, err := rand.Read(s.salt[:]); err != nil {
		return nil, fmt.Errorf("auth: salt: %w", err)
	}
	cost := bcrypt.DefaultCost
	for _, h := range o.Users {
		if c, err := bcrypt.Cost(h); err == nil {
			cost = c
		}
		break
	}
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	d, err := bcrypt.GenerateFromPassword(pw, cost)
	if err != nil {
		return nil, fmt.Errorf("auth: dummy hash: %w", err)
	}
	s.dummy = d
	return s, nil
}

// LoadHtpasswd reads an htpasswd file of "user:hash" lines. Only bcrypt
// hashes ($2y$, $2a$, $2b$) are accepted; blank lines and # comments are
// skipped.
func LoadHtpasswd(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: htpasswd: %w", err)
	}
	defer f.Close()
	return ParseHtpasswd(f)
}

// ParseHtpasswd parses htpasswd content (see LoadHtpasswd).
func ParseHtpasswd(r io.Reader) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("auth: htpasswd line %d: want user:hash", n)
		}
		if !strings.HasPrefix(hash, "$2y$") && !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") {
			return nil, fmt.Errorf("auth: htpasswd line %d (user %q): only bcrypt hashes are supported; create them with htpasswd -B", n, user)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("auth: htpasswd line %d (user %q): %w", n, user, err)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: htpasswd: %w", err)
	}
	return users, nil
}

// login checks a user name and password. It does the same bcrypt work for
// unknown users as for known ones.
func (s *Service) login(user, password string) bool {
	h := sha256.New()
	h.Write(s.salt[:])
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var key [32]byte
	h.Sum(key[:0])
	now := s.o.Now()
	s.mu.Lock()
	exp, cached := s.ok[key]
	s.mu.Unlock()
	if cached && now.Before(exp) {
		return true
	}
	hash, known := s.o.Users[user]
	if !known {
		hash = s.dummy
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil && known
	if ok {
		s.mu.Lock()
		if len(s.ok) > 10000 {
			clear(s.ok)
		}
		s.ok[key] = now.Add(time.Minute)
		s.mu.Unlock()
	}
	return ok
}

// Access is one granted scope: a repository and actions on it.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// ParseScope parses "repository:NAME:ACTION[,ACTION]" (the name may hold
// colons only in the resource type's class, as in "repository(plugin)").
// "*" expands to pull, push and delete.
func ParseScope(scope string) (Access, error) {
	typ, rest, ok := strings.Cut(scope, ":")
	if !ok {
		return Access{}, errors.New("auth: scope: want type:name:actions")
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 {
		return Access{}, errors.New("auth: scope: want type:name:actions")
	}
	name, acts := rest[:i], rest[i+1:]
	if len(name) > 255 {
		return Access{}, errors.New("auth: scope: name too long")
	}
	if j := strings.IndexByte(typ, '('); j >= 0 {
		typ = typ[:j]
	}
	a := Access{Type: typ, Name: name}
	for _, act := range strings.Split(acts, ",") {
		switch act {
		case "*":
			a.Actions = append(a.Actions, Pull, Push, Delete)
		case "":
		default:
			a.Actions = append(a.Actions, act)
		}
	}
	slices.Sort(a.Actions)
	a.Actions = slices.Compact(a.Actions)
	return a, nil
}

// allowed reports whether the policy lets user ("" for anonymous) do
// action on repo.
func (s *Service) allowed(user, repo, action string) bool {
	switch action {
	case Pull:
		return user != "" || s.o.AnonymousPull
	case Push, Delete:
		return user != "" && s.o.CanPush(repo)
	}
	return false
}

// grant narrows the requested scopes to what the policy allows user.
func (s *Service) grant(user string, scopes []Access) []Access {
	var out []Access
	for _, a := range scopes {
		if a.Type != "repository" {
			continue
		}
		g := Access{Type: a.Type, Name: a.Name}
		for _, act := range a.Actions {
			if s.allowed(user, a.Name, act) {
				g.Actions = append(g.Actions, act)
			}
		}
		if len(g.Actions) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// claims are a token's JWT claims.
type claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	ExpiresAt int64    `json:"exp"`
	NotBefore int64    `json:"nbf"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
	Access    []Access `json:"access"`
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// issue signs a token for user with the granted access.
func (s *Service) issue(user string, access []Access) (string, time.Time, error) {
	now := s.o.Now()
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	c := claims{Issuer: "strata", Subject: user, Audience: s.o.Service, IssuedAt: now.Unix(), NotBefore: now.Unix() - 1,
		ExpiresAt: now.Add(s.o.TTL).Unix(), ID: base64.RawURLEncoding.EncodeToString(id), Access: access}
	if c.Access == nil {
		c.Access = []Access{}
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: encode token: %w", err)
	}
	signing := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, s.o.Key)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), now, nil
}

// verify checks a token's signature, audience and time, and returns its
// claims.
func (s *Service) verify(token string) (claims, bool) {
	var c claims
	if len(token) > 16<<10 {
		return c, false
	}
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return c, false
	}
	signing, sig := token[:i], token[i+1:]
	h, payload, ok := strings.Cut(signing, ".")
	if !ok || h != jwtHeader {
		return c, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return c, false
	}
	mac := hmac.New(sha256.New, s.o.Key)
	mac.Write([]byte(signing))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return c, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return c, false
	}
	now := s.o.Now().Unix()
	if c.Audience != s.o.Service || now >= c.ExpiresAt || now < c.NotBefore {
		return c, false
	}
	return c, true
}

// Result is the outcome of Check.
type Result struct {
	// Allowed: go on with the request.
	Allowed bool
	// Status is 401 (no or bad credential, or a token without the scope:
	// send Challenge) or 403 (a valid login that the policy refuses).
	Status int
	// Challenge is the WWW-Authenticate value for a 401.
	Challenge string
	// User is the authenticated user, "" for anonymous.
	User string
}

// Check decides whether request r may do actions on repo ("" for the
// /v2/ base endpoint, which needs a valid credential and challenges
// anonymous clients, so that they learn the realm).
func (s *Service) Check(r *http.Request, repo string, actions ...string) Result {
	if repo == "" {
		return s.CheckScopes(r, nil)
	}
	return s.CheckScopes(r, []Access{{Type: "repository", Name: repo, Actions: actions}})
}

// PullsEverything reports whether request r's credentials may pull every
// repository: under this policy, any valid credential (Basic, or a token
// the service signed) may, and no credential may when anonymous pull is on.
// The registry uses it to mount a blob without naming its source.
func (s *Service) PullsEverything(r *http.Request) bool {
	if s.o.AnonymousPull {
		return true
	}
	return s.CheckScopes(r, nil).Allowed
}

// CheckScopes decides whether request r may do everything in scopes (none:
// the base endpoint). A 401's challenge names every scope.
func (s *Service) CheckScopes(r *http.Request, scopes []Access) Result {
	authz := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(authz, " ")
	user, authenticated, bad := "", false, false
	var tokenAccess []Access
	bearer := false
	switch {
	case authz == "":
	case strings.EqualFold(scheme, "Basic"):
		u, p, ok := r.BasicAuth()
		if ok && s.login(u, p) {
			user, authenticated = u, true
		} else {
			bad = true
		}
	case strings.EqualFold(scheme, "Bearer"):
		c, ok := s.verify(strings.TrimSpace(cred))
		if ok {
			user, authenticated, bearer, tokenAccess = c.Subject, true, true, c.Access
		} else {
			bad = true
		}
	default:
		bad = true
	}
	challenge := func(errCode string) Result {
		return Result{Status: http.StatusUnauthorized, Challenge: s.challenge(r, scopes, errCode)}
	}
	if bad {
		return challenge("invalid_token")
	}
	if len(scopes) == 0 {
		if authenticated {
			return Result{Allowed: true, User: user}
		}
		return challenge("")
	}
	for _, sc := range scopes {
		for _, act := range sc.Actions {
			ok := false
			if bearer {
				for _, a := range tokenAccess {
					if a.Type == "repository" && a.Name == sc.Name && slices.Contains(a.Actions, act) {
						ok = true
					}
				}
			} else {
				ok = s.allowed(user, sc.Name, act)
			}
			if ok {
				continue
			}
			switch {
			case !authenticated:
				return challenge("")
			case bearer:
				return challenge("insufficient_scope") // a new token may hold it
			default:
				return Result{Status: http.StatusForbidden, User: user}
			}
		}
	}
	return Result{Allowed: true, User: user}
}

// challenge builds the WWW-Authenticate value.
func (s *Service) challenge(r *http.Request, scopes []Access, errCode string) string {
	if !s.o.Bearer {
		return `Basic realm="` + s.o.Service + `"`
	}
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	b.WriteString(s.realm(r))
	b.WriteString(`",service="`)
	b.WriteString(s.o.Service)
	b.WriteByte('"')
	if len(scopes) > 0 {
		b.WriteString(`,scope="`)
		for i, sc := range scopes {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString("repository:" + sc.Name + ":" + strings.Join(sc.Actions, ","))
		}
		b.WriteByte('"')
	}
	if errCode != "" {
		b.WriteString(`,error="` + errCode + `"`)
	}
	return b.String()
}

func (s *Service) realm(r *http.Request) string {
	if s.o.Realm != "" {
		return s.o.Realm
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if strings.ContainsAny(host, "\"\\ \r\n") {
		host = "localhost"
	}
	return scheme + "://" + host + "/token"
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// ServeHTTP is the token endpoint: GET with optional Basic credentials
// (the Docker token flow), or POST with grant_type=password (OAuth2). It
// answers a token holding the granted subset of the requested scopes;
// anonymous requests get what anonymous clients may do. Bad credentials
// answer 401.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var user, password string
	var hasCred bool
	var scopes []string
	switch r.Method {
	case http.MethodGet:
		user, password, hasCred = r.BasicAuth()
		scopes = r.URL.Query()["scope"]
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			tokenError(w, http.StatusBadRequest, "invalid_request")
			return
		}
		switch r.PostForm.Get("grant_type") {
		case "password":
			user, password, hasCred = r.PostForm.Get("username"), r.PostForm.Get("password"), true
		default:
			tokenError(w, http.StatusBadRequest, "unsupported_grant_type")
			return
		}
		scopes = r.PostForm["scope"]
	default:
		w.Header().Set("Allow", "GET, POST")
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request")
		return
	}
	if hasCred && !s.login(user, password) {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+s.o.Service+`"`)
		tokenError(w, http.StatusUnauthorized, "invalid_grant")
		return
	}
	if !hasCred {
		user = ""
	}
	var req []Access
	for _, sc := range scopes {
		for _, one := range strings.Fields(sc) {
			if a, err := ParseScope(one); err == nil {
				req = append(req, a)
			}
		}
	}
	tok, iat, err := s.issue(user, s.grant(user, req))
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error")
		return
	}
	body, _ := json.Marshal(tokenResponse{Token: tok, AccessToken: tok, ExpiresIn: int(s.o.TTL / time.Second),
		IssuedAt: iat.UTC().Format(time.RFC3339)})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(append(body, '\n'))
}

func tokenError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(map[string]any{"error": code,
		"errors": []map[string]string{{"code": string(errcode.Unauthorized), "message": code}}})
	w.Write(b.Bytes())
}

// AnonymousPull reports whether clients without credentials may pull.
func (s *Service) AnonymousPull() bool { return s.o.AnonymousPull }
