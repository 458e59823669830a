package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"strata/test/minio"
)

// s3Replicas starts MinIO, a bucket, and two strata serve replicas on it.
func s3Replicas(t *testing.T, extra ...string) (srv *minio.Server, a, b *server) {
	t.Helper()
	srv = minio.Start(t)
	bucket := srv.NewBucket(t)
	o := serverOpts{
		args: append([]string{"--storage", "s3", "--s3-endpoint", srv.URL, "--s3-bucket", bucket, "--s3-prefix", "strata"}, extra...),
		env:  []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey},
	}
	a = startServer(t, o)
	b = startServer(t, o)
	t.Cleanup(func() {
		for _, s := range []*server{a, b} {
			if strings.Contains(s.Log(), srv.SecretKey) {
				t.Errorf("the S3 secret key is in a server log")
			}
		}
	})
	return srv, a, b
}

// fetchManifest is manifestDigest for goroutines: it returns errors.
func fetchManifest(addr, name string) (string, error) {
	req, _ := http.NewRequest("GET", "http://"+addr+"/v2/"+name+"/manifests/latest", nil)
	req.Header.Add("Accept", "application/vnd.oci.image.index.v1+json")
	req.Header.Add("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET manifest %s on %s: %d %s", name, addr, resp.StatusCode, body)
	}
	return resp.Header.Get("Docker-Content-Digest"), nil
}

func nixBuilds(servers ...*server) int {
	n := 0
	for _, s := range servers {
		n += len(s.logRecords("nix build"))
	}
	return n
}

// TestS3ReplicasBuildOnce: concurrent pulls of a new name split across two
// replicas on one bucket run one Nix build in total, and both replicas
// answer the same digest.
func TestS3ReplicasBuildOnce(t *testing.T) {
	_, a, b := s3Replicas(t)
	const n = 10
	name := "shell/bigapp"
	digests := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			digests[i], errs[i] = fetchManifest(s.Addr, name)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if digests[i] == "" || digests[i] != digests[0] {
			t.Fatalf("pull %d got %q, pull 0 got %q", i, digests[i], digests[0])
		}
	}
	if builds := nixBuilds(a, b); builds != 1 {
		t.Fatalf("%d Nix builds across both replicas for %d concurrent pulls of one name, want 1\nA:\n%s\nB:\n%s", builds, n, a.Log(), b.Log())
	}
	// Later pulls of the name on either replica build nothing.
	for _, s := range []*server{a, b} {
		if d, err := fetchManifest(s.Addr, name); err != nil || d != digests[0] {
			t.Fatalf("repeat pull: %q, %v", d, err)
		}
	}
	if builds := nixBuilds(a, b); builds != 1 {
		t.Fatalf("%d Nix builds after repeat pulls, want 1", builds)
	}
}

// TestS3PodmanPullFromOtherReplica: an image built by replica A is pulled
// from replica B, which builds nothing.
func TestS3PodmanPullFromOtherReplica(t *testing.T) {
	_, a, b := s3Replicas(t)
	name := "shell/hello"
	d, err := fetchManifest(a.Addr, name)
	if err != nil {
		t.Fatal(err)
	}
	p := newPodman(t)
	ref := b.Addr + "/" + name
	p.must(5*time.Minute, "pull", "--tls-verify=false", ref)
	out := p.must(2*time.Minute, "run", "--rm", ref, "hello")
	if !strings.Contains(out, greeting) {
		t.Fatalf("podman run hello: %q", out)
	}
	if n := len(b.logRecords("nix build")); n != 0 {
		t.Fatalf("replica B ran %d Nix builds for an image A built", n)
	}
	if db, err := fetchManifest(b.Addr, name); err != nil || db != d {
		t.Fatalf("B answers %q (%v), A answered %q", db, err, d)
	}
}

// TestS3RedirectBlobs: with --redirect-blobs a blob GET answers 307 to a
// pre-signed MinIO URL, and skopeo and podman still pull.
func TestS3RedirectBlobs(t *testing.T) {
	srv, a, b := s3Replicas(t, "--redirect-blobs", "5m")
	name := "shell/hello"
	if _, err := fetchManifest(a.Addr, name); err != nil {
		t.Fatal(err)
	}
	// The manifest from B, a layer blob from it.
	req, _ := http.NewRequest("GET", "http://"+b.Addr+"/v2/"+name+"/manifests/latest", nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Layers []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil || len(m.Layers) == 0 {
		t.Fatalf("manifest: %v %+v", err, m)
	}
	l := m.Layers[0]
	noFollow := &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get("http://" + b.Addr + "/v2/" + name + "/blobs/" + l.Digest)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, srv.URL+"/") ||
		!strings.Contains(loc, "X-Amz-Signature=") || !strings.Contains(loc, "X-Amz-Expires=300") {
		t.Fatalf("blob GET: %d Location %q, want 307 to a pre-signed %s URL", resp.StatusCode, loc, srv.URL)
	}
	if strings.Contains(loc, srv.SecretKey) {
		t.Fatal("the secret key is in the redirect")
	}
	resp, err = http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	nb, _ := io.Copy(h, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || fmt.Sprintf("sha256:%x", h.Sum(nil)) != l.Digest || nb != l.Size {
		t.Fatalf("pre-signed GET: %d, %d bytes, digest mismatch", resp.StatusCode, nb)
	}
	// HEAD is still answered by strata.
	hr, err := noFollow.Head("http://" + b.Addr + "/v2/" + name + "/blobs/" + l.Digest)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 200 {
		t.Fatalf("HEAD blob: %d", hr.StatusCode)
	}

	skopeo := need(t, "skopeo")
	dir := t.TempDir()
	mustRun(t, 5*time.Minute, skopeo, "copy", "--src-tls-verify=false", "docker://"+b.Addr+"/"+name, "oci:"+dir+":img")
	p := newPodman(t)
	ref := a.Addr + "/" + name
	p.must(5*time.Minute, "pull", "--tls-verify=false", ref)
	if out := p.must(2*time.Minute, "run", "--rm", ref, "hello"); !strings.Contains(out, greeting) {
		t.Fatalf("podman run hello: %q", out)
	}
	if builds := nixBuilds(a, b); builds != 1 {
		t.Fatalf("%d Nix builds, want 1", builds)
	}
}

// TestS3PushOnOneReplicaPullFromOther: a push to replica A (uploads,
// chunk moves, tags in the bucket) is visible on replica B.
func TestS3PushOnOneReplicaPullFromOther(t *testing.T) {
	_, a, b := s3Replicas(t)
	crane := need(t, "crane")
	tar := t.TempDir() + "/hello.tar"
	mustRun(t, 5*time.Minute, crane, "pull", "--insecure", a.Addr+"/hello", tar)
	mustRun(t, 2*time.Minute, crane, "push", "--insecure", tar, a.Addr+"/pushed/hello:v1")
	da := strings.TrimSpace(mustRun(t, time.Minute, crane, "digest", "--insecure", a.Addr+"/pushed/hello:v1"))
	db := strings.TrimSpace(mustRun(t, time.Minute, crane, "digest", "--insecure", b.Addr+"/pushed/hello:v1"))
	if da == "" || da != db {
		t.Fatalf("digest on A %q, on B %q", da, db)
	}
	mustRun(t, 2*time.Minute, crane, "pull", "--insecure", b.Addr+"/pushed/hello:v1", t.TempDir()+"/again.tar")
	if tags := mustRun(t, time.Minute, crane, "ls", "--insecure", b.Addr+"/pushed/hello"); !strings.Contains(tags, "v1") {
		t.Fatalf("crane ls on B: %q", tags)
	}
}
