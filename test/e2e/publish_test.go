package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"strata/test/registries"
)

// The publish tests share one build cache, so hello+busybox is built once
// for both platforms.
var (
	pubCacheOnce sync.Once
	pubCache     string
)

func pubCacheDir(t *testing.T) string {
	t.Helper()
	pubCacheOnce.Do(func() {
		d, err := osMkdirTemp()
		if err != nil {
			t.Fatal(err)
		}
		pubCache = d
		atExit = append(atExit, func() { os.RemoveAll(d) })
	})
	return pubCache
}

// pubSecret returns a random secret with a recognisable prefix.
func pubSecret(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// pubCapture gathers everything the test's commands printed and, at the
// end of the test, fails it when a secret appears there or in the logs of
// the registries.
type pubCapture struct {
	mu      sync.Mutex
	out     strings.Builder
	secrets []string
}

func newPubCapture(t *testing.T, logs func() string, secrets ...string) *pubCapture {
	c := &pubCapture{secrets: secrets}
	t.Cleanup(func() {
		all := c.String() + logs()
		if all == "" {
			t.Error("no output captured: the secret check would prove nothing")
		}
		for _, s := range c.secrets {
			if strings.Contains(all, s) {
				t.Errorf("a secret (%s...) appears in the captured output or registry logs", s[:4])
			}
			if b64 := base64.StdEncoding.EncodeToString([]byte(s)); strings.Contains(all, b64) {
				t.Errorf("a secret appears base64-encoded in the captured output")
			}
		}
	})
	return c
}

func (c *pubCapture) add(s ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range s {
		c.out.WriteString(x)
		c.out.WriteByte('\n')
	}
}

func (c *pubCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

type pubResult struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// pubEnv is the environment of a strata run: the test's own HOME and no
// variable of the caller's that publish reads.
func pubEnv(home string, extra ...string) []string {
	drop := map[string]bool{"VERSION": true, "PUBLISH": true, "CI_COMMIT_TAG": true, "REGISTRY_TOKEN": true,
		"DOCKER_CONFIG": true, "REGISTRY_AUTH_FILE": true, "XDG_RUNTIME_DIR": true, "HOME": true,
		"NIXERY_PKGS_PATH": true, "NIXERY_CHANNEL": true, "SOURCE_DATE_EPOCH": true}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if drop[k] || strings.HasPrefix(k, "GITHUB_") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "HOME="+home), extra...)
}

// pubRun runs strata publish -f cfg with --debug (so every HTTP request is
// logged, redacted) and the shared cache.
func pubRun(t *testing.T, c *pubCapture, env []string, stdin string, cfg string, args ...string) pubResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	all := append([]string{"publish", "-f", cfg, "--pkgs-path", filepath.Join(repoRoot, "testdata", "pkgs"),
		"--cache-dir", pubCacheDir(t), "--debug"}, args...)
	cmd := exec.CommandContext(ctx, strataBin, all...)
	cmd.Dir = repoRoot
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := pubResult{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	c.add(r.stdout, r.stderr)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("strata publish: %v\n%s", err, r.stderr)
	}
	return r
}

func (r pubResult) mustSucceed(t *testing.T) pubResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("strata publish exited %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, pubTail(r.stderr))
	}
	return r
}

// pubTail is the end of a long --debug log.
func pubTail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

const pubDescription = `build:
  name: hello
  packages: [hello, busybox]
  config:
    cmd: [hello]
`

// pubConfig writes a publish config for repo; extra is appended.
func pubConfig(t *testing.T, repo, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "publish.yaml")
	cfg := "repository: " + repo + "\n" + pubDescription + `platforms: [linux/amd64, linux/arm64]
annotations:
  org.opencontainers.image.source: https://example.org/hello
  org.example.release-notes: two platforms
version: 0.0.0-dev
` + extra
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pubAuthFile writes a docker/podman auth file for host.
func pubAuthFile(t *testing.T, host, user, pass string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth.json")
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pubMutations are the requests to /v2/ after the first n that could
// change the registry.
func pubMutations(l *registries.AccessLog, n int) []registries.Request {
	return registries.Filter(l.Since(n), func(r registries.Request) bool {
		return r.Mutating() && strings.HasPrefix(r.Path(), "/v2/")
	})
}

// pubManifestPuts are the PUT .../manifests/REF requests among reqs, as REF.
func pubManifestPuts(reqs []registries.Request, repo string) []string {
	var out []string
	for _, r := range reqs {
		if r.Method == http.MethodPut && strings.HasPrefix(r.Path(), "/v2/"+repo+"/manifests/") {
			out = append(out, strings.TrimPrefix(r.Path(), "/v2/"+repo+"/manifests/"))
		}
	}
	return out
}

// pubJSON is the part of strata publish --json the tests read.
type pubJSON struct {
	Repository string `json:"repository"`
	Version    string `json:"version"`
	Index      string `json:"index"`
	Platforms  []struct {
		Platform  string   `json:"platform"`
		Digest    string   `json:"digest"`
		Referrers []string `json:"referrers"`
	} `json:"platforms"`
	Tags          []string `json:"tags"`
	DryRun        bool     `json:"dryRun"`
	VersionSource string   `json:"versionSource"`
	Release       bool     `json:"release"`
}

func pubParse(t *testing.T, r pubResult) pubJSON {
	t.Helper()
	var j pubJSON
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatalf("strata publish --json: %v\n%s", err, r.stdout)
	}
	return j
}

// pubInOrder fails unless every needle is in s, in this order.
func pubInOrder(t *testing.T, s string, needles ...string) {
	t.Helper()
	at := 0
	for _, n := range needles {
		i := strings.Index(s[at:], n)
		if i < 0 {
			t.Fatalf("%q missing (or out of order) in:\n%s", n, s)
		}
		at += i + len(n)
	}
}

// pubHeadDigest asks an unauthenticated registry for the digest of ref.
func pubHeadDigest(t *testing.T, host, repo, ref string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, "http://"+host+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// TestPublishBasicAuth publishes hello+busybox for linux/amd64 and
// linux/arm64 to docker-registry with htpasswd Basic auth: a dry run first
// (no mutation, every planned mutation printed in order), then with
// PUBLISH=1, checked with regctl, skopeo and podman.
func TestPublishBasicAuth(t *testing.T) {
	const repo = "team/hello"
	pass := pubSecret(t, "pw-basic-")
	d := registries.StartDistribution(t, registries.DistributionOptions{Users: map[string]string{"alice": pass}})
	c := newPubCapture(t, d.Log.Raw, pass)
	home := t.TempDir()
	auth := pubAuthFile(t, d.Host, "alice", pass)
	cfg := pubConfig(t, d.Host+"/"+repo, "")
	ref := d.Host + "/" + repo

	// A pre-release dry run never plans latest.
	r := pubRun(t, c, pubEnv(home, "REGISTRY_AUTH_FILE="+auth, "VERSION=1.2.3-rc.1"), "", cfg).mustSucceed(t)
	if strings.Contains(r.stdout, ":latest") {
		t.Fatalf("a pre-release plans to move latest:\n%s", r.stdout)
	}
	pubInOrder(t, r.stdout, "not a release", "dry run:", "tag "+ref+":1.2.3-rc.1 → sha256:")

	// The default is a dry run: it reads the registry, never mutates it.
	d.Sync(t)
	n := d.Log.Len()
	r = pubRun(t, c, pubEnv(home, "REGISTRY_AUTH_FILE="+auth, "VERSION=1.2.3"), "", cfg).mustSucceed(t)
	d.Sync(t)
	if m := pubMutations(d.Log, n); len(m) > 0 {
		t.Fatalf("the dry run mutated the registry: %v", m)
	}
	if len(registries.Filter(d.Log.Since(n), func(q registries.Request) bool { return q.Path() == "/v2/" })) == 0 {
		t.Fatal("no preflight GET /v2/ in the access log")
	}
	pubInOrder(t, r.stdout,
		"dry run: these mutations would be made",
		"push image linux/amd64 → "+ref+"@sha256:",
		"push image linux/arm64 → "+ref+"@sha256:",
		"push index → "+ref+"@sha256:",
		"tag "+ref+":1.2.3 → sha256:",
		"tag "+ref+":latest → sha256:",
		"nothing was pushed")
	planned := r.stdout[strings.Index(r.stdout, "push index → "+ref+"@")+len("push index → "+ref+"@"):]
	planned = planned[:strings.IndexByte(planned, '\n')]

	// PUBLISH=1 mutates; latest is the very last mutation.
	n = d.Log.Len()
	r = pubRun(t, c, pubEnv(home, "REGISTRY_AUTH_FILE="+auth, "VERSION=1.2.3", "PUBLISH=1"), "", cfg, "--json").mustSucceed(t)
	j := pubParse(t, r)
	if j.DryRun || j.Version != "1.2.3" || j.VersionSource != "$VERSION" || !j.Release || len(j.Platforms) != 2 ||
		strings.Join(j.Tags, ",") != "1.2.3,latest" {
		t.Fatalf("summary: %+v", j)
	}
	if j.Index != planned {
		t.Fatalf("published index %s, the dry run planned %s", j.Index, planned)
	}
	d.Sync(t)
	muts := pubMutations(d.Log, n)
	if len(muts) == 0 || muts[len(muts)-1].Method != http.MethodPut || muts[len(muts)-1].Path() != "/v2/"+repo+"/manifests/latest" {
		t.Fatalf("the last mutation is not PUT manifests/latest: %v", muts)
	}
	// Each image, its SBOM (and, on docker-registry, the referrers tag
	// schema's tag), then the index and the tags.
	puts := pubManifestPuts(muts, repo)
	var want []string
	for _, p := range j.Platforms {
		if len(p.Referrers) != 1 {
			t.Fatalf("%s: referrers %v, want its SBOM", p.Platform, p.Referrers)
		}
		want = append(want, p.Digest, p.Referrers[0], strings.Replace(p.Digest, ":", "-", 1))
	}
	want = append(want, j.Index, "1.2.3", "latest")
	if strings.Join(puts, " ") != strings.Join(want, " ") {
		t.Fatalf("manifest PUTs %v, want %v", puts, want)
	}

	// regctl (its config in a temp HOME) sees the index with annotations.
	regctlBin := need(t, "regctl")
	rhome := t.TempDir()
	regctl := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(regctlBin, args...)
		cmd.Env = append(pubEnv(rhome), "REGCTL_CONFIG="+filepath.Join(rhome, "regctl.json"))
		cmd.Stdin = strings.NewReader(stdin)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		c.add(so.String(), se.String())
		if err != nil {
			t.Fatalf("regctl %s: %v\n%s%s", strings.Join(args, " "), err, so.String(), se.String())
		}
		return so.String()
	}
	regctl("", "registry", "set", "--tls", "disabled", "--skip-check", d.Host)
	regctl(pass+"\n", "registry", "login", d.Host, "-u", "alice", "--pass-stdin")
	var idx indexManifest
	raw := regctl("", "manifest", "get", ref+":1.2.3", "--format", "raw-body")
	if err := json.Unmarshal([]byte(raw), &idx); err != nil {
		t.Fatalf("regctl manifest get: %v\n%s", err, raw)
	}
	if idx.MediaType != "application/vnd.oci.image.index.v1+json" || len(idx.Manifests) != 2 ||
		idx.Manifests[0].Platform.Architecture != "amd64" || idx.Manifests[1].Platform.Architecture != "arm64" ||
		idx.Manifests[0].Digest != j.Platforms[0].Digest || idx.Manifests[1].Digest != j.Platforms[1].Digest {
		t.Fatalf("index by regctl: %+v", idx)
	}
	if idx.Annotations["org.opencontainers.image.source"] != "https://example.org/hello" ||
		idx.Annotations["org.example.release-notes"] != "two platforms" ||
		idx.Annotations["org.opencontainers.image.version"] != "1.2.3" {
		t.Fatalf("index annotations: %v", idx.Annotations)
	}

	// skopeo reads latest: the same bytes as the index.
	skopeo := need(t, "skopeo")
	cmd := exec.Command(skopeo, "inspect", "--raw", "--tls-verify=false", "--authfile", auth, "docker://"+ref+":latest")
	cmd.Env = pubEnv(t.TempDir())
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	c.add(so.String(), se.String())
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, se.String())
	}
	if sum := sha256.Sum256(so.Bytes()); "sha256:"+hex.EncodeToString(sum[:]) != j.Index {
		t.Fatalf("skopeo: latest is not the index %s:\n%s", j.Index, so.String())
	}

	// podman pulls latest with the credentials and runs the amd64 image.
	p := newPodman(t)
	p.env = append(p.env, "REGISTRY_AUTH_FILE="+auth)
	out, err := p.run(5*time.Minute, "run", "--rm", "--tls-verify=false", ref+":latest")
	c.add(out)
	if err != nil || !strings.Contains(out, greeting) {
		t.Fatalf("podman run %s:latest: %v\n%s", ref, err, out)
	}
}

// TestPublishBearer publishes through a proxy that enforces the Bearer
// token flow: a wrong password stops before any mutation, a pre-release from
// a GitLab tag does not move latest, and a release from a GitHub tag with
// $REGISTRY_TOKEN moves it last.
func TestPublishBearer(t *testing.T) {
	const repo = "team/hello"
	pass := pubSecret(t, "pw-bearer-")
	wrong := pubSecret(t, "pw-wrong-")
	tok := pubSecret(t, "tok-static-")
	d := registries.StartDistribution(t, registries.DistributionOptions{})
	px := registries.StartProxy(t, d.Host, registries.ProxyOptions{Bearer: &registries.BearerOptions{
		Users: map[string]string{"bob": pass}, StaticTokens: []string{tok}}})
	c := newPubCapture(t, func() string { return d.Log.Raw() + px.Log.Raw() }, pass, wrong, tok)
	home := t.TempDir()
	cfg := pubConfig(t, px.Host+"/"+repo, "")

	// A wrong password: a clear error, no mutation.
	d.Sync(t)
	n, pn := d.Log.Len(), px.Log.Len()
	r := pubRun(t, c, pubEnv(home, "PUBLISH=1", "VERSION=1.0.0"), wrong+"\n", cfg, "--username", "bob", "--password-stdin")
	if r.code == 0 || !strings.Contains(r.stderr, "BLOCKER(auth-refused)") || !strings.Contains(r.stderr, "check the user name and password") {
		t.Fatalf("wrong password: exit %d\n%s", r.code, pubTail(r.stderr))
	}
	d.Sync(t)
	if m := append(pubMutations(d.Log, n), pubMutations(px.Log, pn)...); len(m) > 0 {
		t.Fatalf("a wrong password mutated the registry: %v", m)
	}
	if len(px.TokenRequests()) == 0 {
		t.Fatal("the token endpoint was never asked: the Bearer flow was not exercised")
	}

	// A pre-release from a GitLab tag (leading v stripped): no latest.
	n = d.Log.Len()
	r = pubRun(t, c, pubEnv(home, "PUBLISH=1", "CI_COMMIT_TAG=v2.0.0-rc.1"), pass+"\n", cfg,
		"--username", "bob", "--password-stdin", "--json").mustSucceed(t)
	j := pubParse(t, r)
	if j.Version != "2.0.0-rc.1" || j.VersionSource != "$CI_COMMIT_TAG" || j.Release || strings.Join(j.Tags, ",") != "2.0.0-rc.1" {
		t.Fatalf("pre-release summary: %+v", j)
	}
	d.Sync(t)
	puts := pubManifestPuts(pubMutations(d.Log, n), repo)
	if len(puts) == 0 || puts[len(puts)-1] != "2.0.0-rc.1" {
		t.Fatalf("pre-release manifest PUTs: %v", puts)
	}
	if got := pubHeadDigest(t, d.Host, repo, "latest"); got != "" {
		t.Fatalf("a pre-release moved latest to %s", got)
	}
	if got := pubHeadDigest(t, d.Host, repo, "2.0.0-rc.1"); got != j.Index {
		t.Fatalf("2.0.0-rc.1 is %q, want %s", got, j.Index)
	}

	// A release from a GitHub tag with a registry token: latest moves, last.
	n = d.Log.Len()
	r = pubRun(t, c, pubEnv(home, "REGISTRY_TOKEN="+tok, "GITHUB_REF_TYPE=tag", "GITHUB_REF_NAME=v2.0.0"), "", cfg,
		"--publish").mustSucceed(t)
	pubInOrder(t, r.stdout, "version 2.0.0 (from $GITHUB_REF_NAME): a release",
		"push image linux/amd64", "push image linux/arm64", "push index", "tag "+px.Host+"/"+repo+":2.0.0",
		"tag "+px.Host+"/"+repo+":latest", "published")
	d.Sync(t)
	muts := pubMutations(d.Log, n)
	if len(muts) == 0 || muts[len(muts)-1].Path() != "/v2/"+repo+"/manifests/latest" || muts[len(muts)-1].Method != http.MethodPut {
		t.Fatalf("the last mutation is not PUT manifests/latest: %v", muts)
	}
	rel, latest := pubHeadDigest(t, d.Host, repo, "2.0.0"), pubHeadDigest(t, d.Host, repo, "latest")
	if rel == "" || rel != latest {
		t.Fatalf("2.0.0 is %q and latest %q: want the same index", rel, latest)
	}
}

// TestPublishBlockers: the preflight stops with a named blocker and a
// non-zero exit before any build or mutation, and a missing required
// platform stops before anything is pushed.
func TestPublishBlockers(t *testing.T) {
	pass := pubSecret(t, "pw-block-")
	d := registries.StartDistribution(t, registries.DistributionOptions{Users: map[string]string{"carol": pass}})
	failing := registries.StartProxy(t, d.Host, registries.ProxyOptions{Intercept: func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return true
	}})
	c := newPubCapture(t, func() string { return d.Log.Raw() + failing.Log.Raw() }, pass)
	home := t.TempDir()
	auth := pubAuthFile(t, d.Host, "carol", pass)
	pubAuth := "REGISTRY_AUTH_FILE=" + auth

	blocked := func(t *testing.T, r pubResult, name string) {
		t.Helper()
		if r.code != 2 || !strings.Contains(r.stderr, "BLOCKER("+name+")") {
			t.Fatalf("want BLOCKER(%s) and exit 2, got exit %d\nstdout:\n%s\nstderr:\n%s", name, r.code, r.stdout, pubTail(r.stderr))
		}
		if strings.Contains(r.stdout, "built ") || strings.Contains(r.stdout, "push image") {
			t.Fatalf("BLOCKER(%s) came after the build:\n%s", name, r.stdout)
		}
	}
	t.Run("registry-down", func(t *testing.T) {
		down := fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t))
		r := pubRun(t, c, pubEnv(home, pubAuth, "PUBLISH=1", "VERSION=1.0.0"), "", pubConfig(t, down+"/team/hello", ""))
		blocked(t, r, "registry-down")
		if r.took > time.Minute {
			t.Fatalf("registry-down took %v", r.took)
		}
	})
	t.Run("registry-5xx", func(t *testing.T) {
		r := pubRun(t, c, pubEnv(home, "PUBLISH=1", "VERSION=1.0.0"), "", pubConfig(t, failing.Host+"/team/hello", ""))
		blocked(t, r, "registry-down")
		if m := pubMutations(failing.Log, 0); len(m) > 0 {
			t.Fatalf("mutations sent to a failing registry: %v", m)
		}
	})
	t.Run("empty-token", func(t *testing.T) {
		d.Sync(t)
		n := d.Log.Len()
		r := pubRun(t, c, pubEnv(home, "PUBLISH=1", "VERSION=1.0.0"), "", pubConfig(t, d.Host+"/team/hello", ""))
		blocked(t, r, "empty-token")
		d.Sync(t)
		if m := pubMutations(d.Log, n); len(m) > 0 {
			t.Fatalf("mutations without credentials: %v", m)
		}
	})
	t.Run("missing-required-platform", func(t *testing.T) {
		d.Sync(t)
		n := d.Log.Len()
		cfg := pubConfig(t, d.Host+"/team/hello", "require: [linux/amd64, linux/arm64]\n")
		r := pubRun(t, c, pubEnv(home, pubAuth, "PUBLISH=1", "VERSION=1.0.0"), "", cfg, "--platform", "linux/amd64")
		if r.code == 0 || !strings.Contains(r.stderr, "required platform linux/arm64 missing") {
			t.Fatalf("want an error naming linux/arm64, got exit %d\n%s", r.code, pubTail(r.stderr))
		}
		d.Sync(t)
		if m := pubMutations(d.Log, n); len(m) > 0 {
			t.Fatalf("mutations with a required platform missing: %v", m)
		}
	})
}
