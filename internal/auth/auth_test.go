package auth

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func newTestService(t *testing.T, now *time.Time) *Service {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Users: map[string][]byte{"alice": h}, Bearer: true, Now: func() time.Time { return *now },
		CanPush: func(repo string) bool { return strings.HasPrefix(repo, "pushed/") }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenScopesAndExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newTestService(t, &now)
	tok, _, err := s.issue("alice", s.grant("alice", []Access{
		{Type: "repository", Name: "pushed/a", Actions: []string{Pull}},
		{Type: "repository", Name: "hello", Actions: []string{Pull, Push}}, // push not allowed there
	}))
	if err != nil {
		t.Fatal(err)
	}
	check := func(repo string, acts ...string) Result {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return s.Check(r, repo, acts...)
	}
	if !check("pushed/a", Pull).Allowed || !check("hello", Pull).Allowed {
		t.Fatal("granted pulls refused")
	}
	for _, c := range []struct {
		repo string
		act  string
	}{{"pushed/a", Push}, {"pushed/b", Pull}, {"hello", Push}} {
		if res := check(c.repo, c.act); res.Allowed || res.Status != 401 || !strings.Contains(res.Challenge, "insufficient_scope") {
			t.Errorf("%s %s: %+v", c.repo, c.act, res)
		}
	}
	now = now.Add(6 * time.Minute)
	if res := check("pushed/a", Pull); res.Allowed {
		t.Error("an expired token was accepted")
	}
}

func TestTamperedToken(t *testing.T) {
	now := time.Now()
	s := newTestService(t, &now)
	tok, _, _ := s.issue("alice", []Access{{Type: "repository", Name: "pushed/a", Actions: []string{Pull}}})
	parts := strings.Split(tok, ".")
	forged, _, _ := (&Service{o: Options{Key: []byte(strings.Repeat("k", 32)), Service: "strata", TTL: time.Minute, Now: time.Now}}).
		issue("alice", []Access{{Type: "repository", Name: "pushed/a", Actions: []string{Push}}})
	for _, bad := range []string{parts[0] + "." + parts[1] + ".AAAA", forged, "", "a.b", tok + "x"} {
		if _, ok := s.verify(bad); ok {
			t.Errorf("verify accepted %q", bad)
		}
	}
	if _, ok := s.verify(tok); !ok {
		t.Error("verify refused a good token")
	}
}

func TestLogin(t *testing.T) {
	now := time.Now()
	s := newTestService(t, &now)
	if !s.login("alice", "pw") || s.login("alice", "nope") || s.login("bob", "pw") {
		t.Fatal("login")
	}
	if !s.login("alice", "pw") { // the cached path
		t.Fatal("cached login")
	}
}

func TestParseHtpasswd(t *testing.T) {
	if _, err := ParseHtpasswd(strings.NewReader("bob:{SHA}abc\n")); err == nil {
		t.Error("a SHA1 hash was accepted")
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	users, err := ParseHtpasswd(strings.NewReader("# c\n\nbob:" + string(h) + "\n"))
	if err != nil || len(users) != 1 {
		t.Fatalf("%v %v", users, err)
	}
}

// FuzzParseScope: no panic, and a parsed scope round-trips its name.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"repository:a/b:pull,push", "repository(plugin):x:*", "registry:catalog:*", "a:b", ":::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseScope(s)
		if err == nil && !strings.Contains(s, a.Name) {
			t.Fatalf("ParseScope(%q) name %q", s, a.Name)
		}
	})
}

// TestPullsEverything: valid credentials (Basic or a signed token, whatever
// its scopes) may pull every repository; none or bad ones may not, unless
// anonymous pull is on.
func TestPullsEverything(t *testing.T) {
	now := time.Now()
	s := newTestService(t, &now)
	tok, _, _ := s.issue("alice", []Access{{Type: "repository", Name: "pushed/a", Actions: []string{Push}}})
	for _, c := range []struct {
		authz string
		want  bool
	}{
		{"", false},
		{"Basic YWxpY2U6cHc=", true},      // alice:pw
		{"Basic YWxpY2U6bm9wZQ==", false}, // alice:nope
		{"Bearer " + tok, true},
		{"Bearer " + tok + "x", false},
	} {
		r := httptest.NewRequest("POST", "/v2/pushed/b/blobs/uploads/", nil)
		if c.authz != "" {
			r.Header.Set("Authorization", c.authz)
		}
		if got := s.PullsEverything(r); got != c.want {
			t.Errorf("%q: PullsEverything = %v, want %v", c.authz, got, c.want)
		}
	}
	s.o.AnonymousPull = true
	if !s.PullsEverything(httptest.NewRequest("GET", "/v2/", nil)) {
		t.Error("anonymous pull on: an anonymous request may not pull everything")
	}
}
