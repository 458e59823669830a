package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const greeting = "Hello, world!"

// One server for the tests that only read; each test uses names of its own
// where it counts builds.
var (
	sharedOnce sync.Once
	shared     *server
)

func sharedServer(t *testing.T) *server {
	sharedOnce.Do(func() { shared = startServer(&cleanupless{t}, serverOpts{}) })
	return shared
}

// cleanupless lets the shared server outlive the test that started it.
type cleanupless struct{ *testing.T }

func (c *cleanupless) Cleanup(f func()) { atExit = append(atExit, f) }
func (c *cleanupless) TempDir() string {
	d, err := osMkdirTemp()
	if err != nil {
		c.Fatal(err)
	}
	return d
}

func manifestDigest(t *testing.T, addr, name, ref string, accept ...string) (string, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/v2/"+name+"/manifests/"+ref, nil)
	if len(accept) == 0 {
		accept = []string{"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json"}
	}
	for _, a := range accept {
		req.Header.Add("Accept", a)
	}
	client := &http.Client{Timeout: 5 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET manifest %s:%s: %d %s", name, ref, resp.StatusCode, body)
	}
	return resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("Content-Type"), body
}

func TestSkopeoInspectIsOCI(t *testing.T) {
	s := sharedServer(t)
	skopeo := need(t, "skopeo")
	out := mustRun(t, 5*time.Minute, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+s.Addr+"/hello")
	var m struct {
		MediaType string `json:"mediaType"`
		Layers    []any  `json:"layers"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("skopeo output: %v\n%s", err, out)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || len(m.Layers) < 2 {
		t.Fatalf("want an OCI manifest with store-path and customisation layers, got %s", out)
	}
	// skopeo's own view of the config.
	out = mustRun(t, 2*time.Minute, skopeo, "inspect", "--tls-verify=false", "docker://"+s.Addr+"/hello")
	if !strings.Contains(out, `"Architecture": "amd64"`) || !strings.Contains(out, "PATH=") {
		t.Fatalf("skopeo inspect: %s", out)
	}
}

func TestPodmanRunsHello(t *testing.T) {
	s := sharedServer(t)
	p := newPodman(t)
	ref := s.Addr + "/shell/hello"
	p.must(5*time.Minute, "pull", "--tls-verify=false", ref)
	out := p.must(2*time.Minute, "run", "--rm", ref, "hello")
	if !strings.Contains(out, greeting) {
		t.Fatalf("podman run hello: %q", out)
	}
	shell := s.Addr + "/shell"
	p.must(5*time.Minute, "pull", "--tls-verify=false", shell)
	out = p.must(2*time.Minute, "run", "--rm", shell, "ls", "/bin")
	for _, want := range []string{"sh", "ls", "cat"} {
		if !strings.Contains(out, want) {
			t.Fatalf("ls /bin lacks %s: %q", want, out)
		}
	}
	out = p.must(2*time.Minute, "run", "--rm", shell, "cat", "/etc/passwd")
	if !strings.Contains(out, "root:x:0:0:") || !strings.Contains(out, "nobody:x:65534:65534:") {
		t.Fatalf("/etc/passwd: %q", out)
	}
	out = p.must(2*time.Minute, "run", "--rm", shell, "sh", "-c", "stat -c %a /tmp; test -x /usr/bin/env && echo env-ok")
	if !strings.Contains(out, "1777") || !strings.Contains(out, "env-ok") {
		t.Fatalf("/tmp mode or /usr/bin/env: %q", out)
	}
}

func TestCraneByDigestEqualsByTag(t *testing.T) {
	s := sharedServer(t)
	crane := need(t, "crane")
	byTag := mustRun(t, 5*time.Minute, crane, "manifest", "--insecure", s.Addr+"/shell/hello")
	dg := strings.TrimSpace(mustRun(t, time.Minute, crane, "digest", "--insecure", s.Addr+"/shell/hello"))
	if !strings.HasPrefix(dg, "sha256:") {
		t.Fatalf("crane digest: %q", dg)
	}
	byDigest := mustRun(t, time.Minute, crane, "manifest", "--insecure", s.Addr+"/shell/hello@"+dg)
	if byTag != byDigest {
		t.Fatalf("manifest by digest differs from manifest by tag:\n%s\n%s", byTag, byDigest)
	}
}

func TestUnknownPackageNamed(t *testing.T) {
	s := sharedServer(t)
	p := newPodman(t)
	out, err := p.run(3*time.Minute, "pull", "--tls-verify=false", s.Addr+"/hello/doesnotexist")
	if err == nil {
		t.Fatalf("pull of an unknown package succeeded: %s", out)
	}
	if !strings.Contains(out, "doesnotexist") {
		t.Fatalf("podman's output does not name the unknown package: %s", out)
	}
	// The registry answers 404 MANIFEST_UNKNOWN naming it.
	resp, err := http.Get("http://" + s.Addr + "/v2/hello/doesnotexist/manifests/latest")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), "MANIFEST_UNKNOWN") || !strings.Contains(string(body), "doesnotexist") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestReproducible(t *testing.T) {
	a := startServer(t, serverOpts{})
	b := startServer(t, serverOpts{})
	name := "shell/hello/iana-etc"
	d1, _, _ := manifestDigest(t, a.Addr, name, "latest")
	d2, _, _ := manifestDigest(t, a.Addr, name, "latest")
	d3, _, _ := manifestDigest(t, b.Addr, "iana-etc/hello/shell", "latest")
	if d1 == "" || d1 != d2 || d1 != d3 {
		t.Fatalf("digests differ: %q %q %q", d1, d2, d3)
	}
	// The Docker flavour is reproducible too, and distinct.
	dd1, ct, _ := manifestDigest(t, a.Addr, name, "latest", "application/vnd.docker.distribution.manifest.v2+json")
	dd2, _, _ := manifestDigest(t, b.Addr, name, "latest", "application/vnd.docker.distribution.manifest.v2+json")
	if dd1 != dd2 || dd1 == d1 || ct != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Fatalf("docker manifests: %q %q (%s), oci %q", dd1, dd2, ct, d1)
	}
}

func TestConcurrentPullsBuildOnce(t *testing.T) {
	s := startServer(t, serverOpts{})
	const n = 20
	name := "shell/bigapp"
	digests := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			digests[i], _, _ = manifestDigest(t, s.Addr, name, "latest")
		}(i)
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if digests[i] != digests[0] || digests[0] == "" {
			t.Fatalf("pull %d got %q, pull 0 got %q", i, digests[i], digests[0])
		}
	}
	if builds := len(s.logRecords("nix build")); builds != 1 {
		t.Fatalf("%d Nix builds for %d concurrent pulls of one name, want 1", builds, n)
	}
	// HEAD of the built image answers its digest without building again,
	// and so does a HEAD under another spelling of the same name.
	for _, n := range []string{name, "bigapp/shell/bigapp"} {
		req, _ := http.NewRequest("HEAD", "http://"+s.Addr+"/v2/"+n+"/manifests/latest", nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != digests[0] || resp.ContentLength <= 0 {
			t.Fatalf("HEAD %s: %d, digest %q, length %d", n, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), resp.ContentLength)
		}
	}
	if builds := len(s.logRecords("nix build")); builds != 1 {
		t.Fatalf("HEAD of a built image ran a Nix build (%d in all)", builds)
	}
}

// rawGet sends the path exactly as given; Go's client would clean "..".
func rawGet(t *testing.T, addr, path string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body
}

func listStorage(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			info, _ := d.Info()
			out = append(out, fmt.Sprintf("%s %d", p, info.Size()))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestBadInputIsA4xxAndWritesNothing(t *testing.T) {
	s := startServer(t, serverOpts{})
	before := listStorage(t, s.Storage)
	long := strings.Repeat("a", 10000)
	cases := []string{
		"/v2/Hello/manifests/latest",
		"/v2/hello/manifests/sha256:1234",
		"/v2/hello/manifests/sha256:" + strings.Repeat("z", 64),
		"/v2/hello/blobs/md5:abcd",
		"/v2/hello/../../etc/manifests/latest",
		"/v2/hello/%2e%2e/manifests/latest",
		"/v2/" + long + "/manifests/latest",
		"/v2/hello/manifests/-bad-tag",
		"/v2/hello/blobs/sha256:" + strings.Repeat("0", 64),
	}
	for _, path := range cases {
		resp, body := rawGet(t, s.Addr, path)
		short := path
		if len(short) > 60 {
			short = short[:60] + "..."
		}
		if resp.StatusCode < 400 || resp.StatusCode > 499 {
			t.Errorf("%s: status %d, want 4xx", short, resp.StatusCode)
			continue
		}
		var e struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}
		if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 || e.Errors[0].Code == "" {
			t.Errorf("%s: %d without a spec error body: %s", short, resp.StatusCode, body)
		}
	}
	after := listStorage(t, s.Storage)
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("storage changed:\nbefore %v\nafter %v", before, after)
	}
}
