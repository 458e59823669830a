package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// regctlEnv runs regctl with a config of the test's own that talks plain
// HTTP to host.
func regctl(t *testing.T, host string) func(args ...string) string {
	t.Helper()
	bin := need(t, "regctl")
	conf := filepath.Join(t.TempDir(), "regctl.json")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "REGCTL_CONFIG="+conf)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("registry", "set", host, "--tls", "disabled"); err != nil {
		t.Fatalf("regctl registry set: %v\n%s", err, out)
	}
	return func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("regctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
}

// TestPushWithRealClients copies an on-demand image into the push
// namespace with crane, regctl and skopeo, runs each copy with podman, and
// round-trips a referrer with regctl.
func TestPushWithRealClients(t *testing.T) {
	s := startServer(t, serverOpts{})
	crane := need(t, "crane")
	skopeo := need(t, "skopeo")
	rc := regctl(t, s.Addr)
	src := s.Addr + "/shell/hello"

	// crane push of a tarball pulled from strata itself.
	tar := filepath.Join(t.TempDir(), "hello.tar")
	mustRun(t, 5*time.Minute, crane, "pull", "--insecure", src, tar)
	mustRun(t, 2*time.Minute, crane, "push", "--insecure", tar, s.Addr+"/pushed/hello:crane")
	rc("image", "copy", src, s.Addr+"/pushed/hello:regctl")
	mustRun(t, 2*time.Minute, skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"docker://"+src, "docker://"+s.Addr+"/pushed/hello:skopeo")

	want, _, _ := manifestDigest(t, s.Addr, "shell/hello", "latest")
	for _, tag := range []string{"crane", "regctl", "skopeo"} {
		got, _, _ := manifestDigest(t, s.Addr, "pushed/hello", tag)
		if tag == "regctl" && got != want { // regctl copies manifests as they are; crane's tarball and skopeo convert
			t.Errorf("%s copy: digest %s, want %s", tag, got, want)
		}
	}
	tags := mustRun(t, time.Minute, crane, "ls", "--insecure", s.Addr+"/pushed/hello")
	for _, tag := range []string{"crane", "regctl", "skopeo"} {
		if !strings.Contains(tags, tag) {
			t.Errorf("crane ls: %q lacks %s", tags, tag)
		}
	}

	p := newPodman(t)
	for _, tag := range []string{"crane", "regctl", "skopeo"} {
		ref := s.Addr + "/pushed/hello:" + tag
		out := p.must(5*time.Minute, "run", "--rm", "--tls-verify=false", ref, "hello")
		if !strings.Contains(out, greeting) {
			t.Fatalf("podman run %s: %q", ref, out)
		}
	}

	// A referrer, by regctl.
	subject := s.Addr + "/pushed/hello:regctl"
	sbom := filepath.Join(t.TempDir(), "sbom.json")
	if err := os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	rc("artifact", "put", "--subject", subject, "--artifact-type", "application/spdx+json", "--file", sbom,
		"--file-media-type", "application/spdx+json", "--annotation", "org.example=e2e")
	list := rc("artifact", "list", subject, "--format", "{{json .}}")
	var idx struct {
		Manifests []struct { // regctl's output calls them descriptors
			Digest       string            `json:"digest"`
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
		} `json:"descriptors"`
	}
	if err := json.Unmarshal([]byte(list), &idx); err != nil {
		t.Fatalf("regctl artifact list: %v\n%s", err, list)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].ArtifactType != "application/spdx+json" || idx.Manifests[0].Annotations["org.example"] != "e2e" {
		t.Fatalf("referrers: %s", list)
	}
	got := rc("artifact", "get", "--subject", subject, "--filter-artifact-type", "application/spdx+json")
	if !strings.Contains(got, "SPDX-2.3") {
		t.Fatalf("regctl artifact get: %q", got)
	}
	// Filtering by another type gives nothing.
	list = rc("artifact", "list", subject, "--filter-artifact-type", "application/x-none", "--format", "{{json .}}")
	if strings.Contains(list, "spdx") {
		t.Fatalf("filtered referrers: %s", list)
	}
}

// TestPushOutsideNamespaceDenied: a push to an on-demand name is refused
// with DENIED and a message naming the rule, and writes nothing.
func TestPushOutsideNamespaceDenied(t *testing.T) {
	s := startServer(t, serverOpts{})
	for _, target := range []string{"/v2/hello/blobs/uploads/", "/v2/shell/hello/blobs/uploads/"} {
		resp, err := http.Post("http://"+s.Addr+target, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(body), "DENIED") || !strings.Contains(string(body), "pushed/") {
			t.Fatalf("POST %s: %d %s", target, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("PUT", "http://"+s.Addr+"/v2/hello/manifests/latest", strings.NewReader("{}"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("PUT manifest of an on-demand name: %d", resp.StatusCode)
	}
	if keys := listStorage(t, s.Storage); len(keys) != 0 {
		t.Fatalf("denied pushes wrote %q", keys)
	}
}

// throttle is a TCP proxy on 127.0.0.1 that forwards client bytes at most
// rate bytes per second, so a client can be killed mid-upload.
type throttle struct {
	Addr string
	sent atomic.Int64
}

func startThrottle(t *testing.T, backend string, rate int) *throttle {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	th := &throttle{Addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				b, err := net.Dial("tcp", backend)
				if err != nil {
					c.Close()
					return
				}
				go func() { io.Copy(c, b); c.Close() }()
				buf := make([]byte, 32<<10)
				tick := time.Duration(float64(time.Second) * float64(len(buf)) / float64(rate))
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, werr := b.Write(buf[:n]); werr != nil {
							break
						}
						th.sent.Add(int64(n))
						time.Sleep(tick)
					}
					if err != nil {
						break
					}
				}
				b.Close()
				c.Close()
			}()
		}
	}()
	return th
}

// blobsIntact checks that every stored blob hashes to its key and returns
// their digests.
func blobsIntact(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	root := filepath.Join(dir, "blobs", "sha256")
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
		if got := hex.EncodeToString(h.Sum(nil)); got != d.Name() {
			t.Errorf("blob %s holds content of digest %s", d.Name(), got)
		}
		out["sha256:"+d.Name()] = true
		return nil
	})
	return out
}

// TestKilledPushLeavesNothing kills crane in the middle of a large layer's
// upload: no blob appears under any digest with wrong or partial content,
// the layer is not stored, no tag is written, and the next push succeeds.
func TestKilledPushLeavesNothing(t *testing.T) {
	s := startServer(t, serverOpts{})
	crane := need(t, "crane")
	img, err := random.Image(24<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	tar := filepath.Join(t.TempDir(), "big.tar")
	ref, _ := name.ParseReference("example/big:v1")
	if err := tarball.WriteToFile(tar, ref, img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	th := startThrottle(t, s.Addr, 8<<20) // 24 MiB take about 3 s

	cmd := exec.Command(crane, "push", "--insecure", tar, th.Addr+"/pushed/big:v1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once the server is receiving the layer: an upload exists and
	// more than 4 MiB went through.
	deadline := time.Now().Add(60 * time.Second)
	for {
		ups, _ := filepath.Glob(filepath.Join(s.Storage, "uploads", "*", "info"))
		if len(ups) > 0 && th.sent.Load() > 4<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upload never started; crane: %s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The server sees the connection end and discards the staged bytes.
	deadline = time.Now().Add(20 * time.Second)
	for {
		staged, _ := os.ReadDir(filepath.Join(s.Storage, "_staging"))
		if len(staged) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("staging files left after the client died: %d", len(staged))
		}
		time.Sleep(50 * time.Millisecond)
	}
	blobs := blobsIntact(t, s.Storage)
	if blobs[ld.String()] {
		t.Fatalf("the killed layer upload is stored under %s", ld)
	}
	if tags, _ := filepath.Glob(filepath.Join(s.Storage, "repos", "pushed", "big", "_tags", "*")); len(tags) != 0 {
		t.Fatalf("a killed push left tags %q", tags)
	}
	resp, err := http.Get("http://" + s.Addr + "/v2/pushed/big/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("manifest after a killed push: %d", resp.StatusCode)
	}

	// The next push of the same image succeeds and pulls intact.
	mustRun(t, 2*time.Minute, crane, "push", "--insecure", tar, s.Addr+"/pushed/big:v1")
	mustRun(t, 2*time.Minute, crane, "validate", "--insecure", "--remote", s.Addr+"/pushed/big:v1")
	if !blobsIntact(t, s.Storage)[ld.String()] {
		t.Fatal("the layer is missing after the second push")
	}
}

// pushImage writes img to ref with go-containerregistry.
func pushImage(t *testing.T, ref string, img v1.Image, opts ...remote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func pullValidate(t *testing.T, ref string, opts ...remote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate %s: %v", ref, err)
	}
}

func imageWith(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digestsOf(t *testing.T, img v1.Image) (manifest, config string, layers []string) {
	t.Helper()
	m, _ := img.Digest()
	c, _ := img.ConfigName()
	ls, _ := img.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		layers = append(layers, d.String())
	}
	return m.String(), c.String(), layers
}

// backdate sets every file's mtime under dir two hours back, as if the
// content had been pushed long ago.
func backdate(t *testing.T, dir string) {
	t.Helper()
	old := time.Now().Add(-2 * time.Hour)
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			_ = os.Chtimes(p, old, old)
		}
		return nil
	})
}

// TestGarbageCollection: after a tag is deleted, its image's unique blobs
// go at the next collection and shared ones stay; an upload in progress
// during the collection completes afterwards and its image pulls; on-demand
// images are untouched; --dry-run removes nothing.
func TestGarbageCollection(t *testing.T) {
	s := startServer(t, serverOpts{})
	// An on-demand image, whose blobs must survive.
	od, _, _ := manifestDigest(t, s.Addr, "hello", "latest")

	shared, _ := random.Layer(1<<20, "application/vnd.oci.image.layer.v1.tar+gzip")
	onlyA, _ := random.Layer(1<<20, "application/vnd.oci.image.layer.v1.tar+gzip")
	onlyB, _ := random.Layer(1<<20, "application/vnd.oci.image.layer.v1.tar+gzip")
	a, b := imageWith(t, shared, onlyA), imageWith(t, shared, onlyB)
	pushImage(t, s.Addr+"/pushed/gc:a", a)
	pushImage(t, s.Addr+"/pushed/gc:b", b)
	am, ac, al := digestsOf(t, a)
	bm, bc, bl := digestsOf(t, b)

	req, _ := http.NewRequest("DELETE", "http://"+s.Addr+"/v2/pushed/gc/manifests/a", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("DELETE tag: %d", resp.StatusCode)
	}
	backdate(t, s.Storage)

	// An upload in progress: C's layer is PATCHed but not finished.
	onlyC, _ := random.Layer(1<<20, "application/vnd.oci.image.layer.v1.tar+gzip")
	c := imageWith(t, shared, onlyC)
	cm, _, cl := digestsOf(t, c)
	resp, err = http.Post("http://"+s.Addr+"/v2/pushed/gc/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	rc, _ := onlyC.Compressed()
	data, _ := io.ReadAll(rc)
	req, _ = http.NewRequest("PATCH", "http://"+s.Addr+loc, bytes.NewReader(data))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}
	loc = resp.Header.Get("Location")

	before := blobsIntact(t, s.Storage)
	dry := mustRun(t, time.Minute, strataBin, "gc", "--storage-path", s.Storage, "--dry-run")
	if after := blobsIntact(t, s.Storage); len(after) != len(before) {
		t.Fatalf("--dry-run removed blobs:\n%s", dry)
	}
	for _, d := range append([]string{am, ac}, al[1]) {
		if !strings.Contains(dry, "would remove blob "+d) {
			t.Errorf("--dry-run does not list %s:\n%s", d, dry)
		}
	}
	out := mustRun(t, time.Minute, strataBin, "gc", "--storage-path", s.Storage)
	t.Logf("strata gc:\n%s", out)
	left := blobsIntact(t, s.Storage)
	for _, d := range []string{am, ac, al[1]} {
		if left[d] {
			t.Errorf("blob %s of the deleted tag survived", d)
		}
	}
	for _, d := range []string{bm, bc, bl[0], bl[1], od} {
		if !left[d] {
			t.Errorf("live blob %s was collected", d)
		}
	}
	// Every blob of the on-demand image stays.
	mustRun(t, 2*time.Minute, need(t, "crane"), "validate", "--insecure", "--remote", s.Addr+"/hello")
	pullValidate(t, s.Addr+"/pushed/gc:b")

	// Finish C: the upload survived the collection.
	req, _ = http.NewRequest("PUT", "http://"+s.Addr+loc+"?digest="+cl[1], nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("finishing the upload after gc: %d", resp.StatusCode)
	}
	pushImage(t, s.Addr+"/pushed/gc:c", c)
	pullValidate(t, s.Addr+"/pushed/gc:c")
	if got, _, _ := manifestDigest(t, s.Addr, "pushed/gc", "c"); got != cm {
		t.Fatalf("c: digest %s, want %s", got, cm)
	}
}

// token asks strata's token service for scopes with Basic credentials.
func token(t *testing.T, addr, user, password string, scopes ...string) string {
	t.Helper()
	u := "http://" + addr + "/token?service=strata"
	for _, s := range scopes {
		u += "&scope=" + s
	}
	req, _ := http.NewRequest("GET", u, nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tr.Token
}

func do(t *testing.T, method, url, bearer string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestAuth: no credential → 401 with a challenge; a pull-only token cannot
// push; a token for one repository cannot read another when pulls are
// private; an unknown user and a wrong password fail alike; the password
// never reaches the log.
func TestAuth(t *testing.T) {
	const pw = "s3cret-password-e2e"
	s := startAuthServer(t, "--htpasswd", writeHtpasswd(t, "alice", pw), "--anonymous-pull=false")
	base := "http://" + s.Addr

	resp, _ := do(t, "GET", base+"/v2/", "")
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.HasPrefix(ch, `Bearer realm="http://`+s.Addr+`/token",service="strata"`) {
		t.Fatalf("GET /v2/ anonymous: %d %q", resp.StatusCode, ch)
	}
	resp, body := do(t, "GET", base+"/v2/pushed/a/manifests/v1", "")
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.Contains(ch, `scope="repository:pushed/a:pull"`) || !strings.Contains(body, "UNAUTHORIZED") {
		t.Fatalf("anonymous pull: %d %q %s", resp.StatusCode, ch, body)
	}
	resp, _ = do(t, "POST", base+"/v2/pushed/a/blobs/uploads/", "")
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="repository:pushed/a:pull,push"`) {
		t.Fatalf("anonymous push: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	// Push two repositories with a real login (ggcr runs the token flow).
	kc := remote.WithAuth(&basicAuth{"alice", pw})
	pushImage(t, s.Addr+"/pushed/a:v1", imageWith(t, mustLayer(t)), kc)
	pushImage(t, s.Addr+"/pushed/b:v1", imageWith(t, mustLayer(t)), kc)
	pullValidate(t, s.Addr+"/pushed/a:v1", kc)

	pullA := token(t, s.Addr, "alice", pw, "repository:pushed/a:pull")
	if resp, _ := do(t, "GET", base+"/v2/pushed/a/manifests/v1", pullA); resp.StatusCode != 200 {
		t.Fatalf("pull with a pull token: %d", resp.StatusCode)
	}
	resp, _ = do(t, "POST", base+"/v2/pushed/a/blobs/uploads/", pullA)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("push with a pull-only token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _ := do(t, "DELETE", base+"/v2/pushed/a/manifests/v1", pullA); resp.StatusCode != 401 {
		t.Fatalf("delete with a pull-only token: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", base+"/v2/pushed/b/manifests/v1", pullA); resp.StatusCode != 401 {
		t.Fatalf("a token for pushed/a read pushed/b: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", base+"/v2/pushed/b/tags/list", pullA); resp.StatusCode != 401 {
		t.Fatalf("a token for pushed/a listed pushed/b: %d", resp.StatusCode)
	}
	// A forged or tampered token is refused.
	if resp, _ := do(t, "GET", base+"/v2/pushed/a/manifests/v1", pullA[:len(pullA)-2]+"xx"); resp.StatusCode != 401 {
		t.Fatalf("tampered token: %d", resp.StatusCode)
	}

	// Unknown user and wrong password: same answer.
	var bodies []string
	for _, cred := range [][2]string{{"alice", "wrong"}, {"mallory", "wrong"}} {
		req, _ := http.NewRequest("GET", base+"/token?service=strata&scope=repository:pushed/a:pull", nil)
		req.SetBasicAuth(cred[0], cred[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		bodies = append(bodies, fmt.Sprintf("%d %s", resp.StatusCode, b))
	}
	if bodies[0] != bodies[1] || !strings.HasPrefix(bodies[0], "401") {
		t.Fatalf("login failures differ: %q", bodies)
	}
	// Basic credentials work directly too; a wrong password is a 401.
	req, _ := http.NewRequest("GET", base+"/v2/pushed/b/manifests/v1", nil)
	req.SetBasicAuth("alice", "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("Basic with a wrong password: %d", resp.StatusCode)
	}
	if strings.Contains(s.Log(), pw) || strings.Contains(s.Log(), pullA) {
		t.Fatal("the log holds a password or token")
	}
}

type basicAuth struct{ user, pw string }

func (b *basicAuth) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: b.user, Password: b.pw}, nil
}

func mustLayer(t *testing.T) v1.Layer {
	t.Helper()
	l, err := random.Layer(64<<10, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		t.Fatal(err)
	}
	return l
}
