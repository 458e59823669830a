package e2e

import (
	"strings"
	"testing"
	"time"
)

// A pull of a package that the package set renamed (an alias that throws,
// as nixpkgs keeps them) answers 404 MANIFEST_UNKNOWN naming the
// replacement, with the pull command for this host; so do the page, the
// metrics and strata build. The replacement is never served silently.
func TestPullRenamedPackage(t *testing.T) {
	s := startServer(t, serverOpts{})
	p := newPodman(t)
	out, err := p.run(5*time.Minute, "pull", "--tls-verify=false", s.Addr+"/shell/mysql")
	if err == nil {
		t.Fatalf("podman pull shell/mysql succeeded:\n%s", out)
	}
	want := "mysql was renamed to mariadb: pull " + s.Addr + "/shell/mariadb"
	if !strings.Contains(out, want) || !strings.Contains(out, "manifest unknown") {
		t.Fatalf("podman pull shell/mysql: output lacks %q and manifest unknown:\n%s", want, out)
	}
	resp, body := rawGet(t, s.Addr, "/v2/shell/mysql/manifests/latest")
	if resp.StatusCode != 404 || !strings.Contains(string(body), `"code":"MANIFEST_UNKNOWN"`) ||
		!strings.Contains(string(body), `"replacement":"mariadb"`) {
		t.Fatalf("GET shell/mysql: %d %s", resp.StatusCode, body)
	}
	// The removal's own text.
	resp, body = rawGet(t, s.Addr, "/v2/oldtool/manifests/latest")
	if resp.StatusCode != 404 || !strings.Contains(string(body), `'oldtool' has been removed from nixpkgs, as it was unmaintained`) {
		t.Fatalf("GET oldtool: %d %s", resp.StatusCode, body)
	}
	// The command in the message works.
	p.must(5*time.Minute, "pull", "--tls-verify=false", s.Addr+"/shell/mariadb")

	code, page := httpGet(t, "http://"+s.Addr+"/")
	if code != 200 || !strings.Contains(page, want) {
		t.Errorf("the page lacks %q", want)
	}
	code, m := httpGet(t, "http://"+s.Addr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for series, want := range map[string]float64{
		`strata_builds_failed_total{kind="renamed"}`:         1,
		`strata_builds_failed_total{kind="removed"}`:         1,
		`strata_builds_failed_total{kind="unknown_package"}`: 0,
	} {
		if got := metricValue(m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	// strata build says the same.
	_, stderr, err := strataBuild(t, 5*time.Minute, "--cache-dir", t.TempDir(), "busybox", "mysql")
	if err == nil || !strings.Contains(stderr, `mysql was renamed to mariadb: use "mariadb" instead`) {
		t.Fatalf("strata build mysql: %v\n%s", err, stderr)
	}
}
