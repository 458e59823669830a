package publish

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

func TestResolveVersion(t *testing.T) {
	cases := []struct {
		env      []string
		fallback string
		want     string
		src      VersionSource
	}{
		{[]string{"VERSION", "1.2.3", "CI_COMMIT_TAG", "v9.9.9"}, "0.1.0", "1.2.3", FromEnv},
		{[]string{"VERSION", "v1.2.3"}, "", "v1.2.3", FromEnv},
		{[]string{"CI_COMMIT_TAG", "v2.0.0-rc.1"}, "0.1.0", "2.0.0-rc.1", FromGitLab},
		{[]string{"GITHUB_REF_TYPE", "tag", "GITHUB_REF_NAME", "v3.1.4"}, "", "3.1.4", FromGitHub},
		{[]string{"GITHUB_REF_TYPE", "branch", "GITHUB_REF_NAME", "main"}, "0.1.0", "0.1.0", FromFallback},
		{[]string{"GITHUB_REF", "refs/tags/v1.0.0"}, "", "1.0.0", FromGitHub},
		{[]string{"CI_COMMIT_TAG", "version-1"}, "", "version-1", FromGitLab},
		{nil, "0.0.0-dev", "0.0.0-dev", FromFallback},
	}
	for _, c := range cases {
		got, src, err := ResolveVersion(noEnv(c.env...), c.fallback)
		if err != nil || got != c.want || src != c.src {
			t.Errorf("%v fallback %q: got %q %q %v, want %q %q", c.env, c.fallback, got, src, err, c.want, c.src)
		}
	}
	for _, env := range [][]string{nil, {"VERSION", "latest"}, {"VERSION", "has space"}, {"CI_COMMIT_TAG", "-x"}} {
		if v, _, err := ResolveVersion(noEnv(env...), ""); err == nil {
			t.Errorf("%v: got %q, want an error", env, v)
		}
	}
}

func TestIsRelease(t *testing.T) {
	for v, want := range map[string]bool{
		"1.2.3": true, "0.0.0": true, "10.20.30": true,
		"1.2.3-rc.1": false, "0.0.0-dev": false, "1.2.3+dirty": false, "1.2.3+dev": false,
		"1.2": false, "01.2.3": false, "v1.2.3": false, "latest": false, "": false,
	} {
		if got := IsRelease(v); got != want {
			t.Errorf("IsRelease(%q) = %v, want %v", v, got, want)
		}
	}
	if tag, err := VersionTag("1.2.3+dirty"); err != nil || tag != "1.2.3_dirty" {
		t.Errorf("VersionTag(1.2.3+dirty) = %q, %v", tag, err)
	}
}

func TestParseConfig(t *testing.T) {
	good := `repository: r.example/team/app
build:
  name: app
  packages: [hello]
platforms: [linux/amd64, linux/arm64]
annotations: {a: b}
`
	c, err := ParseConfig("/x/publish.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if !c.MoveLatest() || c.BuildPath != "" || !strings.Contains(string(c.BuildInline), "packages: [hello]") {
		t.Fatalf("config: %+v\n%s", c, c.BuildInline)
	}
	// The inline description keeps the config's line numbers.
	if lines := strings.Split(string(c.BuildInline), "\n"); len(lines) < 4 || lines[3] != "packages: [hello]" {
		t.Fatalf("inline description lines: %q", lines)
	}
	c, err = ParseConfig("/x/publish.yaml", []byte("repository: r.example/ab\nbuild: image.yaml\nlatest: false\n"))
	if err != nil || c.BuildPath != "/x/image.yaml" || c.MoveLatest() {
		t.Fatalf("path build: %+v %v", c, err)
	}
	for cfg, want := range map[string]string{
		"build: x.yaml\n":                                       "line 1: repository is missing",
		"repository: team/app\nbuild: x.yaml\n":                 "names no registry",
		"repository: r.example/ab:1.0\nbuild: x.yaml\n":         "without tag or digest",
		"repository: r.example/ab\n":                            "build is missing",
		"repository: r.example/ab\nbuild: x\nplatform: [a]\n":   `line 3: unknown key "platform"`,
		"repository: r.example/ab\nbuild: x\nplatforms: [x]\n":  "line 3: platform",
		"repository: r.example/ab\nbuild: x\nversion: latest\n": "line 3: version",
		"repository: r.example/ab\nbuild: [x]\n":                "line 2: build must be",
	} {
		if _, err := ParseConfig("p.yaml", []byte(cfg)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", cfg, err, want)
		}
	}
}

func TestRelease(t *testing.T) {
	ctx := testCtx(t)
	var mu strings.Builder
	reg := httptest.NewServer(logRequests(&mu, registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	imgs := []PlatformImage{{Image: platformImage(t, 512, 1, arm64)}, {Image: platformImage(t, 512, 1, amd64)}}
	opts := ReleaseOptions{Repository: host + "/team/app", Version: "1.2.3", Images: imgs,
		Annotations: map[string]string{"k": "v"}, Require: []v1.Platform{amd64, arm64}, MoveLatest: true, DryRun: true}
	var planned []string
	opts.Step = func(s Step) { planned = append(planned, s.String()) }
	dry, err := Release(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if mu.Len() != 0 {
		t.Fatalf("a dry run made requests:\n%s", mu.String())
	}
	if len(planned) != 5 || !strings.HasPrefix(planned[0], "push image linux/amd64 → ") ||
		!strings.HasPrefix(planned[2], "push index → ") || !strings.HasSuffix(planned[4], ":latest → "+dry.Index) {
		t.Fatalf("plan: %q", planned)
	}

	opts.DryRun = false
	var done []string
	opts.Step = func(s Step) { done = append(done, s.String()) }
	res, err := Release(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Index != dry.Index || strings.Join(done, "\n") != strings.Join(planned, "\n") {
		t.Fatalf("made %q, planned %q", done, planned)
	}
	var puts []string
	for _, l := range strings.Split(mu.String(), "\n") {
		if strings.HasPrefix(l, "PUT ") && strings.Contains(l, "/manifests/") {
			puts = append(puts, l[strings.LastIndex(l, "/")+1:])
		}
	}
	if len(puts) != 5 || puts[3] != "1.2.3" || puts[4] != "latest" || puts[2] != res.Index {
		t.Fatalf("manifest PUTs: %q", puts)
	}
	for _, tag := range []string{"1.2.3", "latest"} {
		if d, _ := remoteDigest(t, host+"/team/app:"+tag); d != res.Index {
			t.Fatalf("%s is %s, want %s", tag, d, res.Index)
		}
	}

	// A missing required platform pushes nothing.
	mu.Reset()
	opts.Images = imgs[:1]
	if _, err := Release(ctx, opts); err == nil || !strings.Contains(err.Error(), "linux/amd64") {
		t.Fatalf("missing platform: %v", err)
	}
	if mu.Len() != 0 {
		t.Fatalf("requests with a platform missing:\n%s", mu.String())
	}
}

// logRequests records "METHOD PATH" lines; reads happen between releases.
func logRequests(b *strings.Builder, h http.Handler) http.Handler {
	var mu = make(chan struct{}, 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu <- struct{}{}
		b.WriteString(r.Method + " " + r.URL.Path + "\n")
		<-mu
		h.ServeHTTP(w, r)
	})
}

func TestPreflight(t *testing.T) {
	ctx := testCtx(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	t.Cleanup(down.Close)
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == "u" && p == "right" {
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(auth.Close)
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") + "/a/b" }
	fast := RetryOptions{Attempts: 2, Backoff: 10e6}
	kc := func(pass string) PreflightOptions {
		return PreflightOptions{Retry: fast, Keychain: Keychain(CredOptions{Getenv: noEnv(), Username: "u", Password: pass})}
	}
	for _, c := range []struct {
		name string
		repo string
		opts PreflightOptions
		want string
	}{
		{"5xx", host(down), PreflightOptions{Retry: fast, Keychain: Keychain(CredOptions{Getenv: noEnv()})}, "BLOCKER(registry-down)"},
		{"no creds", host(auth), PreflightOptions{Retry: fast, Keychain: Keychain(CredOptions{Getenv: noEnv()})}, "BLOCKER(empty-token)"},
		{"wrong", host(auth), kc("wrong"), "BLOCKER(auth-refused)"},
		{"right", host(auth), kc("right"), ""},
	} {
		_, err := Preflight(ctx, c.repo, c.opts)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "right") {
			t.Errorf("%s: the password is in the error", c.name)
		}
	}
}
