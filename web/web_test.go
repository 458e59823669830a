package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"strata/internal/builder"
	"strata/internal/nix"
)

type fakeBuilds struct{ recent *Recent }

func (f fakeBuilds) Recent() *Recent { return f.recent }
func (f fakeBuilds) Platforms() []v1.Platform {
	return []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
}

func serve(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.Host = "registry.example:5000"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestPage(t *testing.T) {
	r := NewRecent(10)
	r.Add(builder.Record{Name: "hello", Ref: "latest", Time: time.Now().Add(-time.Minute), Duration: 1500 * time.Millisecond,
		Digest: "sha256:" + strings.Repeat("ab", 32)})
	r.Add(builder.Record{Name: "failingbuild", Time: time.Now(), Duration: time.Second,
		Err: fmt.Errorf("linux/amd64: %w", &nix.BuildError{Log: strings.Repeat("noise\n", 40) + "error: <script>alert(1)</script> & 'quotes'\n"})})
	r.Add(builder.Record{Name: "nosuch", Time: time.Now(), Err: errors.New(`unknown package(s): "nosuch"`)})
	h := Handler(Options{Builder: fakeBuilds{r}, Source: "a local package set", PushPrefix: "pushed"})

	rec := serve(t, h, "GET", "/", nil)
	body := rec.Body.String()
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{
		"podman pull --tls-verify=false registry.example:5000/shell/hello",
		"docker pull registry.example:5000/shell/hello",
		"linux/amd64", "linux/arm64",
		"registry.example:5000/hello@sha256:" + strings.Repeat("ab", 32),
		"error: &lt;script&gt;alert(1)&lt;/script&gt; &amp; &#39;quotes&#39;",
		"unknown package(s): &#34;nosuch&#34;",
		"3 shown, 2 failed",
		"registry.example:5000/pushed/",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>alert") {
		t.Error("the Nix log is not escaped")
	}
	if n := strings.Count(body, "noise"); n != 24 {
		t.Errorf("%d log lines of noise shown, want the last 25 lines (24 noise)", n)
	}
	if i, j := strings.Index(body, `mono">nosuch<`), strings.Index(body, `mono">hello<`); i < 0 || i > j {
		t.Error("not newest first")
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}

	// Over TLS (as a proxy says), no --tls-verify=false.
	body = serve(t, h, "GET", "/", map[string]string{"X-Forwarded-Proto": "https"}).Body.String()
	if strings.Contains(body, "--tls-verify=false") {
		t.Error("--tls-verify=false offered over https")
	}
	if rec := serve(t, h, "HEAD", "/", nil); rec.Code != 200 || rec.Body.Len() != 0 {
		t.Errorf("HEAD /: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	if rec := serve(t, h, "GET", "/nope", nil); rec.Code != 404 {
		t.Errorf("GET /nope: %d", rec.Code)
	}
	if rec := serve(t, h, "POST", "/", nil); rec.Code != 405 {
		t.Errorf("POST /: %d", rec.Code)
	}
}

func TestEmptyPage(t *testing.T) {
	h := Handler(Options{Builder: fakeBuilds{NewRecent(1)}, Versioned: true})
	body := serve(t, h, "GET", "/", nil).Body.String()
	if !strings.Contains(body, "No builds yet") || !strings.Contains(body, "a branch, tag or commit") {
		t.Error("empty, versioned page text missing")
	}
}

func TestPageRenamedPackage(t *testing.T) {
	r := NewRecent(10)
	r.Add(builder.Record{Name: "shell/mysql", Ref: "latest", Time: time.Now(), Err: fmt.Errorf("linux/amd64: %w", &nix.UnknownPackagesError{
		Packages: []nix.UnknownPackage{{Name: "mysql", Replacement: "mariadb", Message: "'mysql' has been renamed to/replaced by 'mariadb'"}}})})
	r.Add(builder.Record{Name: "oldtool", Ref: "latest", Time: time.Now(), Err: &nix.UnknownPackagesError{
		Packages: []nix.UnknownPackage{{Name: "oldtool", Message: "'oldtool' has been removed from nixpkgs, as it was unmaintained"}}}})
	h := Handler(Options{Builder: fakeBuilds{r}})
	body := serve(t, h, "GET", "/", nil).Body.String()
	for _, want := range []string{
		"mysql was renamed to mariadb: pull registry.example:5000/shell/mariadb",
		"&#39;oldtool&#39; has been removed from nixpkgs, as it was unmaintained",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
