// Package nixsnapshotter checks strata's nix-snapshotter images with
// nix-snapshotter's own code (github.com/pdtpartners/nix-snapshotter
// v0.4.0) and containerd's. It is a module of its own so that strata's
// main module does not depend on containerd; make test runs it.
//
// The test starts strata serve with a Nix binary cache, fetches
// HOST/nix-snapshotter/shell/hello, and does with its layers what
// containerd's unpacker does with a remote snapshotter: the layer
// annotations become snapshot labels (containerd's FilterInheritedLabels),
// each layer is prepared, applied (containerd's archive.Apply) and
// committed, and a container's view is asked for. nix-snapshotter's
// snapshotter substitutes the annotated closure from strata's cache with
// Nix (nix-store --realise, as its default builder does, with strata as
// the substituter and its key trusted) and bind-mounts every store path.
package nixsnapshotter

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/archive"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	nixsn "github.com/pdtpartners/nix-snapshotter/pkg/nix"
	"github.com/pdtpartners/nix-snapshotter/pkg/nix2container"
)

var strataBin, repoRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-nixsnapshotter-")
	if err != nil {
		panic(err)
	}
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	strataBin = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-o", strataBin, "./cmd/strata")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building strata:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func need(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s is not installed: run scripts/deps.sh (make test does)", tool)
	}
}

// rootNixConf is the Nix setting that root needs on a machine whose Nix has
// no nix.conf and no 'nixbld' group (Debian's nix-bin as installed): without
// it Nix warns on every call (into output the test reads), or refuses to
// build. Empty elsewhere.
func rootNixConf() string {
	if _, err := user.LookupGroup("nixbld"); err != nil && os.Geteuid() == 0 {
		return "build-users-group =\n"
	}
	return ""
}

func mustRun(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve starts strata serve with a Nix binary cache on 127.0.0.1.
func serve(t *testing.T, keyFile string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(strataBin, "serve", "--listen", addr, "--pkgs-path", filepath.Join(repoRoot, "testdata", "pkgs"),
		"--storage-path", t.TempDir(), "--cache-key-file", keyFile)
	log := &logBuf{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("strata log:\n%s", log.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("strata serve did not answer: %v\n%s", err, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t *testing.T, url, accept string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	client := &http.Client{Timeout: 3 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	return b
}

// upperDir is where a prepared snapshot's changes go: the bind mount's
// source for a first layer, the overlay's upperdir otherwise.
func upperDir(t *testing.T, ms []mount.Mount) string {
	t.Helper()
	if len(ms) != 1 {
		t.Fatalf("prepare returned %d mounts: %+v", len(ms), ms)
	}
	if ms[0].Type == "bind" {
		return ms[0].Source
	}
	for _, o := range ms[0].Options {
		if d, ok := strings.CutPrefix(o, "upperdir="); ok {
			return d
		}
	}
	t.Fatalf("no upper directory in %+v", ms[0])
	return ""
}

func TestNixSnapshotterRunsStrataImage(t *testing.T) {
	need(t, "nix-store")
	ctx := context.Background()
	keyDir := t.TempDir()
	secret, public := filepath.Join(keyDir, "secret.key"), filepath.Join(keyDir, "public.key")
	mustRun(t, nil, "nix-store", "--generate-binary-cache-key", "strata-nixsnapshotter-1", secret, public)
	pub, err := os.ReadFile(public)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, secret)
	base := "http://" + addr

	var mf ocispec.Manifest
	raw := get(t, base+"/v2/nix-snapshotter/shell/hello/manifests/latest", ocispec.MediaTypeImageManifest)
	if err := json.Unmarshal(raw, &mf); err != nil {
		t.Fatal(err)
	}
	if mf.MediaType != ocispec.MediaTypeImageManifest || len(mf.Layers) != 2 {
		t.Fatalf("manifest: %s", raw)
	}
	closurePath := mf.Layers[len(mf.Layers)-1].Annotations[nix2container.NixClosureAnnotation]
	if !strings.HasPrefix(closurePath, "/nix/store/") || !strings.HasSuffix(closurePath, "-closure-info") {
		t.Fatalf("the last layer has no %s annotation naming a closure-info store path: %s", nix2container.NixClosureAnnotation, raw)
	}

	// The node's Nix builder: nix-store --realise, as nix-snapshotter's
	// default, with strata as the only substituter and its key trusted.
	nixEnv := []string{"XDG_CACHE_HOME=" + t.TempDir(), "NIX_CONFIG=" + rootNixConf()}
	var built []string
	builder := func(ctx context.Context, outLink, storePath string) error {
		built = append(built, storePath)
		args := []string{"--realise", storePath, "--option", "substituters", base,
			"--option", "trusted-public-keys", strings.TrimSpace(string(pub)), "--option", "require-sigs", "true"}
		if outLink != "" {
			args = append([]string{"--add-root", outLink, "--indirect"}, args...)
		}
		cmd := exec.CommandContext(ctx, "nix-store", args...)
		cmd.Env = append(os.Environ(), nixEnv...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("nix-store %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	sn, err := nixsn.NewSnapshotter(t.TempDir(), nixsn.WithNixBuilder(builder))
	if err != nil {
		t.Fatalf("nix-snapshotter: %v", err)
	}
	defer sn.Close()

	// containerd's unpacker, layer by layer.
	parent := ""
	for i, desc := range mf.Layers {
		labels := snapshots.FilterInheritedLabels(desc.Annotations)
		key := fmt.Sprintf("extract-%d", i)
		ms, err := sn.Prepare(ctx, key, parent, snapshots.WithLabels(labels))
		if err != nil {
			t.Fatalf("prepare layer %d: %v", i, err)
		}
		blob := get(t, base+"/v2/nix-snapshotter/shell/hello/blobs/"+desc.Digest.String(), "")
		zr, err := gzip.NewReader(strings.NewReader(string(blob)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := archive.Apply(ctx, upperDir(t, ms), zr); err != nil {
			t.Fatalf("apply layer %d: %v", i, err)
		}
		name := fmt.Sprintf("layer-%d", i)
		if err := sn.Commit(ctx, name, key, snapshots.WithLabels(labels)); err != nil {
			t.Fatalf("commit layer %d: %v", i, err)
		}
		parent = name
	}
	if len(built) != 1 || built[0] != closurePath {
		t.Fatalf("nix-snapshotter substituted %v, want only %s", built, closurePath)
	}

	// The closure came from strata's cache: the listed paths and the
	// closure-info path are valid in the node's store, with references.
	listed, err := readLines(filepath.Join(closurePath, "store-paths"))
	if err != nil {
		t.Fatal(err)
	}
	refs := strings.Fields(mustRun(t, nixEnv, "nix-store", "--query", "--references", closurePath))
	sort.Strings(refs)
	if strings.Join(refs, " ") != strings.Join(listed, " ") {
		t.Fatalf("references of %s: %v, listed %v", closurePath, refs, listed)
	}
	var hello string
	for _, p := range listed {
		if strings.Contains(p, "-hello-") {
			hello = p
		}
	}
	if hello == "" {
		t.Fatalf("hello is not in the closure %v", listed)
	}
	want := strings.Fields(mustRun(t, nixEnv, "nix-store", "--query", "--requisites", hello))
	for _, p := range want {
		if !contains(listed, p) {
			t.Errorf("%s (closure of %s) is not listed", p, hello)
		}
	}

	// A container's view: nix-snapshotter bind-mounts every listed path,
	// read-only, onto the mount points of the layer.
	ms, err := sn.View(ctx, "container", parent)
	if err != nil {
		t.Fatalf("view: %v", err)
	}
	if len(ms) < 2 {
		t.Fatalf("view mounts: %+v", ms)
	}
	// The first mount is the layers' root file system; nix-snapshotter
	// appends its bind mounts after it.
	var rootDirs []string
	switch ms[0].Type {
	case "bind":
		rootDirs = []string{ms[0].Source}
	case "overlay":
		for _, o := range ms[0].Options {
			if d, ok := strings.CutPrefix(o, "lowerdir="); ok {
				rootDirs = strings.Split(d, ":")
			}
		}
	default:
		t.Fatalf("root mount %+v", ms[0])
	}
	var binds []string
	for _, m := range ms[1:] {
		if m.Type != "bind" || m.Source != m.Target || !contains(m.Options, "ro") {
			t.Errorf("mount %+v is not a read-only bind mount of a store path", m)
		}
		if _, err := os.Stat(m.Source); err != nil {
			t.Errorf("bind mount source: %v", err)
		}
		binds = append(binds, m.Source)
	}
	sort.Strings(binds)
	if strings.Join(binds, " ") != strings.Join(listed, " ") {
		t.Fatalf("bind mounts %v, want the listed closure %v", binds, listed)
	}
	// Each lands on a mount point of the image's nix layer.
	for _, p := range listed {
		found := false
		for _, dir := range rootDirs {
			if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
				found = true
			}
		}
		if !found {
			t.Errorf("no mount point for %s in the image's layers %v", p, rootDirs)
		}
	}
	info, err := sn.Stat(ctx, parent)
	if err != nil || info.Labels[nix2container.NixClosureAnnotation] != closurePath {
		t.Fatalf("committed nix layer: %+v %v", info, err)
	}
}

func readLines(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out, sc.Err()
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
