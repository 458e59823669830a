package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// checkStore is what must hold after any crash: every stored blob verifies
// against its digest, every tag of a pushed repository resolves to an image
// that pulls and validates, and every upload left behind either answers
// its status or is cleanly unknown (never a 5xx).
func checkStore(t *testing.T, s *server) {
	t.Helper()
	blobsIntact(t, s.Storage)
	var tags []string
	root := filepath.Join(s.Storage, "repos")
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) == "_tags" {
			tags = append(tags, p)
		}
		return nil
	})
	for _, tp := range tags {
		rel, _ := filepath.Rel(root, tp)
		repo, tag, _ := strings.Cut(rel, "/_tags/")
		pullValidate(t, s.Addr+"/"+repo+":"+tag)
	}
	if len(tags) == 0 {
		t.Error("no tag found in the storage: the check checked nothing")
	}
	ups, _ := filepath.Glob(filepath.Join(s.Storage, "uploads", "*", "info"))
	for _, u := range ups {
		id := filepath.Base(filepath.Dir(u))
		b, _ := os.ReadFile(u)
		repo := "pushed/faults/big"
		if strings.Contains(string(b), `"repo":"`) {
			repo = strings.Split(strings.Split(string(b), `"repo":"`)[1], `"`)[0]
		}
		resp, _ := send(t, "GET", "http://"+s.Addr+"/v2/"+repo+"/blobs/uploads/"+id, nil, nil)
		if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound {
			t.Errorf("upload %s left by the crash: status %d", id, resp.StatusCode)
		}
	}
	t.Logf("after the crash: %d tags resolve and validate, %d uploads answer, every blob verifies", len(tags), len(ups))
}

func kill9(t *testing.T, s *server) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = s.cmd.Process.Wait()
}

// TestFaultSuite kills strata serve with SIGKILL during a push, during an
// on-demand build and kills strata gc during a collection, restarting on
// the same storage each time: blobs verify, tags resolve, uploads answer,
// and the interrupted work succeeds when done again.
func TestFaultSuite(t *testing.T) {
	storage := t.TempDir()
	s := startServer(t, serverOpts{storage: storage})
	keep, err := random.Image(1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	pushImage(t, s.Addr+"/pushed/faults/keep:v1", keep)

	// 1. kill -9 during a push of a 32 MiB layer.
	big, err := random.Image(32<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	pushErr := make(chan error, 1)
	go func() {
		ref, _ := name.ParseReference(s.Addr+"/pushed/faults/big:v1", name.Insecure)
		pushErr <- remote.Write(ref, big)
	}()
	waitFor(t, time.Minute, "an upload in progress", func() bool {
		m, _ := filepath.Glob(filepath.Join(storage, "uploads", "*", "info"))
		return len(m) > 0
	})
	time.Sleep(50 * time.Millisecond)
	kill9(t, s)
	if err := <-pushErr; err == nil {
		t.Log("the push finished before the kill")
	}
	s = startServer(t, serverOpts{storage: storage})
	checkStore(t, s)
	pushImage(t, s.Addr+"/pushed/faults/big:v1", big)
	pullValidate(t, s.Addr+"/pushed/faults/big:v1")

	// 2. kill -9 during an on-demand build.
	go func() { _, _ = fetchManifest(s.Addr, "shell/bigapp") }()
	waitFor(t, 2*time.Minute, "the build starting", func() bool { return len(s.logRecords("nix build")) > 0 })
	kill9(t, s)
	s = startServer(t, serverOpts{storage: storage})
	checkStore(t, s)
	d, err := fetchManifest(s.Addr, "shell/bigapp")
	if err != nil {
		t.Fatalf("the interrupted build, asked again: %v", err)
	}
	pullValidate(t, s.Addr+"/shell/bigapp@"+d)

	// 3. kill -9 of strata gc during a collection with garbage to remove:
	// a deleted tag's image, collected at once (--grace 0).
	if resp, _ := send(t, "DELETE", "http://"+s.Addr+"/v2/pushed/faults/big/manifests/v1", nil, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete tag: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gc := exec.CommandContext(ctx, strataBin, "gc", "--storage-path", storage, "--grace", "0s")
	if err := gc.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	_ = gc.Process.Kill()
	_ = gc.Wait()
	checkStore(t, s)
	pullValidate(t, s.Addr+"/pushed/faults/keep:v1")
	// A full collection after the interrupted one leaves the same truths.
	mustRun(t, time.Minute, strataBin, "gc", "--storage-path", storage, "--grace", "0s")
	checkStore(t, s)
	pullValidate(t, s.Addr+"/pushed/faults/keep:v1")
}

// TestConcurrentPulls200 sends 200 concurrent pulls of an image the server
// has never built: exactly one Nix build, one digest for all.
func TestConcurrentPulls200(t *testing.T) {
	s := startServer(t, serverOpts{})
	const n = 200
	digests := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			digests[i], errs[i] = fetchManifest(s.Addr, "shell/hello/bigapp")
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || digests[i] != digests[0] || !strings.HasPrefix(digests[0], "sha256:") {
			t.Fatalf("pull %d: %q %v (pull 0: %q)", i, digests[i], errs[i], digests[0])
		}
	}
	if builds := len(s.logRecords("nix build")); builds != 1 {
		t.Fatalf("%d Nix builds for %d concurrent pulls of one new image, want 1", builds, n)
	}
	fmt.Printf("200 concurrent pulls of a new image: 1 build, digest %s\n", digests[0])
}

// TestTwoReplicasSlowAndIdleClients: two replicas on one filesystem storage
// serve each other's pushes (a moved tag within the reference cache's TTL)
// and build the same digests; idle connections and clients that send their
// headers a byte at a time hold up nobody, and the slow ones are cut off
// by the read-header timeout.
func TestTwoReplicasSlowAndIdleClients(t *testing.T) {
	storage := t.TempDir()
	a := startServer(t, serverOpts{storage: storage})
	b := startServer(t, serverOpts{storage: storage})

	img1, _ := random.Image(1<<10, 1)
	img2, _ := random.Image(1<<10, 1)
	pushImage(t, a.Addr+"/pushed/rep/img:v1", img1)
	pullValidate(t, b.Addr+"/pushed/rep/img:v1")
	pushImage(t, a.Addr+"/pushed/rep/img:v1", img2)
	want, _ := img2.Digest()
	start := time.Now()
	waitFor(t, 10*time.Second, "replica b seeing the moved tag", func() bool {
		d, _, _ := manifestDigest(t, b.Addr, "pushed/rep/img", "v1", "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json")
		return d == want.String()
	})
	t.Logf("replica b saw the tag move after %s (bound: the 2s reference cache TTL)", time.Since(start).Round(time.Millisecond))

	// One new image pulled through both replicas: the same digest.
	digests := make([]string, 10)
	errs := make([]error, 10)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			digests[i], errs[i] = fetchManifest(s.Addr, "shell/hello")
		}()
	}
	wg.Wait()
	for i := range 10 {
		if errs[i] != nil || digests[i] != digests[0] {
			t.Fatalf("pull %d: %q %v (pull 0: %q)", i, digests[i], errs[i], digests[0])
		}
	}

	// 50 idle connections and 10 that trickle their headers.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 50 {
		c, err := net.Dial("tcp", a.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	slow := make([]net.Conn, 10)
	stop := make(chan struct{})
	defer close(stop)
	for i := range slow {
		c, err := net.Dial("tcp", a.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		slow[i] = c
		fmt.Fprintf(c, "GET /v2/ HTTP/1.1\r\nHost: x\r\n")
		go func() {
			for j := 0; j < 60; j++ { // bounded: 30 s at most
				select {
				case <-stop:
					return
				case <-time.After(500 * time.Millisecond):
				}
				if _, err := c.Write([]byte("X")); err != nil {
					return
				}
			}
		}()
	}
	for range 20 {
		if d, _, _ := manifestDigest(t, a.Addr, "pushed/rep/img", "v1", "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"); d != want.String() {
			t.Fatalf("a pull among slow clients got %q", d)
		}
	}
	// The trickling clients are cut off (the server closes them).
	for _, c := range slow {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 512)
		for {
			_, err := c.Read(buf)
			if err == nil {
				continue // a 408 or 400 before the close
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("a client trickling its headers was still connected after 20s")
			}
			break
		}
	}
}
