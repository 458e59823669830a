package e2e

import (
	"context"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// nixClient runs Nix 2.8 (Debian's nix-bin) as a binary-cache client with
// an empty store of its own and its own narinfo disk cache, so that one
// test's answers never leak into another's.
type nixClient struct {
	t     *testing.T
	store string
	env   []string
	opts  []string
}

func newNixClient(t *testing.T, cacheURL, publicKey, netrc string) *nixClient {
	t.Helper()
	need(t, "nix-store")
	dir := t.TempDir()
	c := &nixClient{t: t, store: filepath.Join(dir, "store"),
		env: []string{"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"), "NIX_CONFIG=" + rootNixConf()}}
	c.opts = []string{"--option", "substituters", cacheURL, "--option", "trusted-public-keys", publicKey,
		"--option", "require-sigs", "true", "--option", "connect-timeout", "5"}
	if netrc != "" {
		c.opts = append(c.opts, "--option", "netrc-file", netrc)
	}
	return c
}

func (c *nixClient) run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// realise substitutes paths into the client's store.
func (c *nixClient) realise(paths ...string) (string, error) {
	args := append([]string{"--store", c.store, "--realise"}, paths...)
	return c.run("nix-store", append(args, c.opts...)...)
}

// closure is the sorted closure of p in the client's store.
func (c *nixClient) closure(p string) []string {
	c.t.Helper()
	out, err := c.run("nix-store", "--store", c.store, "--query", "--requisites", p)
	if err != nil {
		c.t.Fatalf("nix-store --query --requisites %s: %v\n%s", p, err, out)
	}
	return sortedLines(out)
}

func sortedLines(s string) []string {
	out := strings.Fields(s)
	sort.Strings(out)
	return out
}

// cacheKey makes a signing key with Nix's own command, as docs/nix-cache.md
// tells an operator to.
func cacheKey(t *testing.T, name string) (secretFile, public string) {
	t.Helper()
	dir := t.TempDir()
	sk, pk := filepath.Join(dir, "secret.key"), filepath.Join(dir, "public.key")
	mustRun(t, time.Minute, need(t, "nix-store"), "--generate-binary-cache-key", name, sk, pk)
	raw, err := os.ReadFile(pk)
	if err != nil {
		t.Fatal(err)
	}
	return sk, strings.TrimSpace(string(raw))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func httpDo(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// recordedPaths are the store paths with a narinfo in a server's storage.
func recordedPaths(t *testing.T, storage string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(storage, "nixcache", "narinfo", "*.narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^StorePath: (\S+)$`).FindStringSubmatch(string(raw))
		if m == nil {
			t.Fatalf("%s has no StorePath:\n%s", f, raw)
		}
		out[m[1]] = f
	}
	return out
}

// TestNixCache: Nix 2.8 substitutes the closure of a served image from
// strata serve into an empty store, through the same access control as
// pulls, with signatures checked; a narinfo changed in storage is refused
// by Nix; a path strata never served is a 404, and so is any name that is
// not a store hash.
func TestNixCache(t *testing.T) {
	secret, public := cacheKey(t, "strata-e2e-1")
	const user, password = "nixuser", "nix-cache-secret-77"
	s := startAuthServer(t, "--cache-key-file", secret,
		"--htpasswd", writeHtpasswd(t, user, password), "--anonymous-pull=false")
	base := "http://" + s.Addr
	basic := map[string]string{"Authorization": "Basic " + b64(user+":"+password)}

	// The same rule as pulls: no credential, no cache.
	resp, _ := httpDo(t, "GET", base+"/nix-cache-info", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("anonymous /nix-cache-info: %d %q, want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, body := httpDo(t, "GET", base+"/nix-cache-info", basic)
	for _, want := range []string{"StoreDir: /nix/store\n", "WantMassQuery: 1\n", "Priority: 41\n"} {
		if resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Fatalf("/nix-cache-info: %d %q, want %q", resp.StatusCode, body, want)
		}
	}

	// Nothing is in the cache before an image is built.
	if got := recordedPaths(t, s.Storage); len(got) != 0 {
		t.Fatalf("before any build the cache holds %v", got)
	}
	resp, _ = httpDo(t, "GET", base+"/v2/shell/hello/manifests/latest", basic)
	if resp.StatusCode != 200 {
		t.Fatalf("pull shell/hello: %d", resp.StatusCode)
	}
	rec := recordedPaths(t, s.Storage)
	var hello string
	for p := range rec {
		if strings.Contains(p, "-hello-") {
			hello = p
		}
	}
	if hello == "" {
		t.Fatalf("no hello store path recorded: %v", rec)
	}
	// The recorded paths are the image's closure as the host's Nix knows it.
	want := sortedLines(mustRun(t, time.Minute, "nix-store", "--query", "--requisites", hello))
	for _, p := range want {
		if rec[p] == "" {
			t.Errorf("%s (closure of %s) is not recorded", p, hello)
		}
	}

	netrc := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(netrc, []byte("machine 127.0.0.1 login "+user+" password "+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// nix-store --realise into an empty chroot store, signatures required.
	c := newNixClient(t, base, public, netrc)
	if out, err := c.realise(hello); err != nil {
		t.Fatalf("nix-store --realise %s from strata: %v\n%s", hello, err, out)
	}
	if got := c.closure(hello); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("substituted closure %v, host closure %v", got, want)
	}
	if out, err := c.run("nix-store", "--store", c.store, "--verify", "--check-contents"); err != nil || strings.Contains(out, "modified") {
		t.Fatalf("nix-store --verify --check-contents: %v\n%s", err, out)
	}
	// The client's copy is byte-for-byte the host's.
	hostNar := mustRun(t, time.Minute, "nix-store", "--query", "--hash", hello)
	gotNar, err := c.run("nix-store", "--store", c.store, "--query", "--hash", hello)
	if err != nil || gotNar != hostNar {
		t.Fatalf("NAR hash in the client store %q (%v), on the host %q", gotNar, err, hostNar)
	}

	// nix copy --from, into another empty store.
	c2 := newNixClient(t, base, public, netrc)
	args := append([]string{"--extra-experimental-features", "nix-command", "copy", "--from", base, "--to", c2.store, hello}, c2.opts...)
	if out, err := c2.run("nix", args...); err != nil {
		t.Fatalf("nix copy --from strata: %v\n%s", err, out)
	}
	if got := c2.closure(hello); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("nix copy closure %v, want %v", got, want)
	}

	// A client that does not trust the key refuses the paths.
	_, otherPublic := cacheKey(t, "someone-else-1")
	c3 := newNixClient(t, base, otherPublic, netrc)
	if out, err := c3.realise(hello); err == nil || !strings.Contains(out, "not signed by any of the keys") {
		t.Fatalf("a client trusting another key substituted %s: %v\n%s", hello, err, out)
	}

	// A narinfo changed in storage (its references dropped) is refused.
	f := rec[hello]
	orig, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	tampered := regexp.MustCompile(`(?m)^References: .*$`).ReplaceAll(orig, []byte("References: "))
	if string(tampered) == string(orig) {
		t.Fatalf("narinfo of %s has no references to tamper with:\n%s", hello, orig)
	}
	if err := os.WriteFile(f, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	c4 := newNixClient(t, base, public, netrc)
	if out, err := c4.realise(hello); err == nil || !strings.Contains(out, "not signed by any of the keys") {
		t.Fatalf("Nix took a tampered narinfo of %s: %v\n%s", hello, err, out)
	}
	if err := os.WriteFile(f, orig, 0o644); err != nil {
		t.Fatal(err)
	}

	// A path strata never served: a real store path on this host that is
	// in no image (the .drv that built hello).
	drv := strings.TrimSpace(mustRun(t, time.Minute, "nix-store", "--query", "--deriver", hello))
	if !strings.HasPrefix(drv, "/nix/store/") {
		t.Fatalf("deriver of %s: %q", hello, drv)
	}
	drvHash := strings.SplitN(strings.TrimPrefix(drv, "/nix/store/"), "-", 2)[0]
	resp, _ = httpDo(t, "GET", base+"/"+drvHash+".narinfo", basic)
	if resp.StatusCode != 404 {
		t.Fatalf("narinfo of never-built %s: %d, want 404", drv, resp.StatusCode)
	}
	if out, err := c4.realise(drv); err == nil {
		t.Fatalf("Nix substituted %s, which strata never served:\n%s", drv, out)
	}
	// Names that are not a store hash or a file hash: 404, nothing read.
	for _, p := range []string{"/etc/passwd.narinfo", "/x.narinfo", "/" + strings.ToUpper(drvHash) + ".narinfo",
		"/nar/../../etc/passwd", "/nar/" + drvHash + ".nar.zst", "/nar/abc.nar.xz", "/nix-cache-info/x"} {
		resp, _ := httpDo(t, "GET", base+p, basic)
		if resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}

	// HEAD and Range on a NAR, as Nix and resuming clients use them.
	m := regexp.MustCompile(`(?m)^URL: (\S+)\nCompression: zstd\nFileHash: \S+\nFileSize: (\d+)$`).FindSubmatch(orig)
	if m == nil {
		t.Fatalf("narinfo of %s:\n%s", hello, orig)
	}
	resp, _ = httpDo(t, "HEAD", base+"/"+string(m[1]), basic)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != string(m[2]) {
		t.Fatalf("HEAD %s: %d, Content-Length %q, want 200 and %s", m[1], resp.StatusCode, resp.Header.Get("Content-Length"), m[2])
	}
	rng := map[string]string{"Authorization": basic["Authorization"], "Range": "bytes=0-3"}
	resp, body = httpDo(t, "GET", base+"/"+string(m[1]), rng)
	if resp.StatusCode != http.StatusPartialContent || body != "\x28\xb5\x2f\xfd" {
		t.Fatalf("Range bytes=0-3 of %s: %d %q, want 206 and the zstd magic", m[1], resp.StatusCode, body)
	}

	// Metrics count hits, misses and refused names; the page and the log
	// show the public key.
	_, metricsText := httpDo(t, "GET", base+"/metrics", nil)
	for _, re := range []string{`strata_nixcache_requests_total\{kind="narinfo",result="hit"\} [1-9]`,
		`strata_nixcache_requests_total\{kind="narinfo",result="miss"\} [1-9]`,
		`strata_nixcache_requests_total\{kind="narinfo",result="invalid"\} [1-9]`,
		`strata_nixcache_requests_total\{kind="nar",result="hit"\} [1-9]`} {
		if !regexp.MustCompile(re).MatchString(metricsText) {
			t.Errorf("metrics lack %s", re)
		}
	}
	_, page := httpDo(t, "GET", base+"/", nil)
	if !strings.Contains(html.UnescapeString(page), `id="nix-cache-key">`+public+`<`) {
		t.Errorf("the page at / does not show the public key %s", public)
	}
	if !strings.Contains(s.Log(), public) {
		t.Errorf("the log does not name the public key %s", public)
	}
	if strings.Contains(s.Log(), password) {
		t.Errorf("the log holds the password")
	}
	sk, _ := os.ReadFile(secret)
	if i := strings.IndexByte(string(sk), ':'); i < 0 || strings.Contains(s.Log(), strings.TrimSpace(string(sk))[i+1:]) {
		t.Errorf("the log holds the secret key")
	}
}

// TestBuildNixSnapshotterFormat: strata build --format nix-snapshotter
// records the closure and its closure-info path in --cache-dir, signed;
// strata serve on that directory serves them, and Nix substitutes the
// closure-info path, which lists the image's closure and refers to it.
func TestBuildNixSnapshotterFormat(t *testing.T) {
	secret, public := cacheKey(t, "strata-build-1")
	cache := t.TempDir()
	oci := filepath.Join(t.TempDir(), "oci")

	// Without a key the format is refused, saying what to do.
	_, stderr, err := strataBuild(t, 5*time.Minute, "--cache-dir", cache, "--format", "nix-snapshotter", "hello")
	if err == nil || !strings.Contains(stderr, "--cache-key-file") {
		t.Fatalf("--format nix-snapshotter without a key: %v\n%s", err, stderr)
	}
	out := mustBuild(t, "--cache-dir", cache, "--format", "nix-snapshotter", "--cache-key-file", secret, "hello", "--output", "oci:"+oci)
	if len(out.Manifests) != 1 || len(out.Manifests[0].Layers) != 2 {
		t.Fatalf("a nix-snapshotter image has the customisation layer and the mount points: %+v", out.Manifests)
	}
	raw, err := os.ReadFile(filepath.Join(oci, "blobs", "sha256", strings.TrimPrefix(out.Manifests[0].Digest, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	idx := string(raw)
	m := regexp.MustCompile(`"containerd.io/snapshot/nix-closure":"(/nix/store/[0-9a-z]{32}-closure-info)"`).FindStringSubmatch(idx)
	if m == nil {
		t.Fatalf("no nix-closure annotation in the manifest:\n%s", idx)
	}
	closureInfo := m[1]

	s := startServer(t, serverOpts{storage: cache, args: []string{"--cache-key-file", secret}})
	c := newNixClient(t, "http://"+s.Addr, public, "")
	if out, err := c.realise(closureInfo); err != nil {
		t.Fatalf("nix-store --realise %s: %v\n%s", closureInfo, err, out)
	}
	listed, err := os.ReadFile(filepath.Join(c.store, closureInfo, "store-paths"))
	if err != nil {
		t.Fatal(err)
	}
	refs, err := c.run("nix-store", "--store", c.store, "--query", "--references", closureInfo)
	if err != nil || strings.Join(sortedLines(refs), " ") != strings.Join(sortedLines(string(listed)), " ") {
		t.Fatalf("references of %s %q (%v), listed %q", closureInfo, refs, err, listed)
	}
	var hello string
	for _, p := range sortedLines(string(listed)) {
		if strings.Contains(p, "-hello-") {
			hello = p
		}
	}
	want := sortedLines(mustRun(t, time.Minute, "nix-store", "--query", "--requisites", hello))
	if hello == "" || strings.Join(c.closure(hello), " ") != strings.Join(want, " ") {
		t.Fatalf("listed %q; closure of hello in the client %v, want %v", listed, c.closure(hello), want)
	}
	// The closure-info path is content-addressed: Nix trusts it without a
	// signature, having checked its path against its content.
	ver, err := c.run("nix", "--extra-experimental-features", "nix-command", "store", "verify", "--store", c.store,
		"--trusted-public-keys", "", closureInfo)
	if err != nil || strings.Contains(ver, "untrusted") {
		t.Fatalf("nix store verify %s without keys: %v\n%s", closureInfo, err, ver)
	}
}

// TestNixCacheDocs runs the sh blocks of docs/nix-cache.md in order, in a
// directory of their own: the key (with Nix's command), then, against
// strata serve started with that key as the docs' serve command says, the
// client substitution and strata build --format nix-snapshotter.
func TestNixCacheDocs(t *testing.T) {
	need(t, "nix-store")
	blocks := shBlocks(t, filepath.Join(repoRoot, "docs", "nix-cache.md"))
	if len(blocks) != 3 || !strings.Contains(blocks[0], "--generate-binary-cache-key") {
		t.Fatalf("docs/nix-cache.md: want 3 sh blocks, the key first; got %d", len(blocks))
	}
	work := t.TempDir()
	env := append(os.Environ(), "PATH="+filepath.Dir(strataBin)+":"+os.Getenv("PATH"),
		"XDG_CACHE_HOME="+t.TempDir(), "NIX_CONFIG=", "PKGS="+filepath.Join(repoRoot, "testdata", "pkgs"))
	c := newPubCapture(t, func() string { return "" })
	if out, code := shRun(t, c, work, env, blocks[0]); code != 0 {
		t.Fatalf("key block exited %d:\n%s", code, out)
	}
	s := startServer(t, serverOpts{args: []string{"--cache-key-file", filepath.Join(work, "secret.key")}})
	env = append(env, "HOST="+s.Addr)
	out, code := shRun(t, c, work, env, blocks[1])
	if code != 0 {
		t.Fatalf("client block exited %d:\n%s", code, out)
	}
	if !regexp.MustCompile(`(?m)^/nix/store/[0-9a-z]{32}-hello-[^\n]*$`).MatchString(out) {
		t.Fatalf("the client block did not list hello's store path:\n%s", out)
	}
	out, code = shRun(t, c, work, env, blocks[2])
	if code != 0 {
		t.Fatalf("build block exited %d:\n%s", code, out)
	}
	if files, _ := filepath.Glob(filepath.Join(work, "cache", "nixcache", "narinfo", "*.narinfo")); len(files) < 3 {
		t.Fatalf("strata build recorded %d narinfos in ./cache, want the closure and its closure-info", len(files))
	}
	if _, err := os.Stat(filepath.Join(work, "hello-oci", "index.json")); err != nil {
		t.Fatal(err)
	}
}

// TestNixCacheS3: on S3-compatible storage (MinIO), the replica that did
// not build an image serves its closure: Nix substitutes it from there,
// and a Range request on a NAR is answered from the bucket.
func TestNixCacheS3(t *testing.T) {
	secret, public := cacheKey(t, "strata-s3-1")
	_, a, b := s3Replicas(t, "--cache-key-file", secret)
	if _, err := fetchManifest(a.Addr, "shell/hello"); err != nil {
		t.Fatal(err)
	}
	hello := strings.TrimSpace(mustRun(t, time.Minute, "sh", "-c",
		"nix-build --no-out-link --option substituters '' "+filepath.Join(repoRoot, "testdata", "pkgs")+" -A hello 2>/dev/null"))
	if !strings.HasPrefix(hello, "/nix/store/") {
		t.Fatalf("hello: %q", hello)
	}
	c := newNixClient(t, "http://"+b.Addr, public, "")
	if out, err := c.realise(hello); err != nil {
		t.Fatalf("nix-store --realise %s from the other replica: %v\n%s", hello, err, out)
	}
	want := sortedLines(mustRun(t, time.Minute, "nix-store", "--query", "--requisites", hello))
	if got := c.closure(hello); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("closure %v, want %v", got, want)
	}
	if nixBuilds(b) != 0 {
		t.Fatalf("replica b built something")
	}
	hash := strings.SplitN(strings.TrimPrefix(hello, "/nix/store/"), "-", 2)[0]
	_, ni := httpDo(t, "GET", "http://"+b.Addr+"/"+hash+".narinfo", nil)
	m := regexp.MustCompile(`(?m)^URL: (\S+)$`).FindStringSubmatch(ni)
	if m == nil {
		t.Fatalf("narinfo: %q", ni)
	}
	resp, body := httpDo(t, "GET", "http://"+b.Addr+"/"+m[1], map[string]string{"Range": "bytes=1-3"})
	if resp.StatusCode != http.StatusPartialContent || body != "\xb5\x2f\xfd" {
		t.Fatalf("Range bytes=1-3: %d %q", resp.StatusCode, body)
	}
}
