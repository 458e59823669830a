package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// procsMatching lists the live processes (not zombies) whose command line
// holds s, as "pid cmdline".
func procsMatching(t *testing.T, s string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if procState(pid) == "Z" {
			continue
		}
		raw, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if c := string(bytes.ReplaceAll(raw, []byte{0}, []byte{' '})); strings.Contains(c, s) {
			out = append(out, e.Name()+" "+c)
		}
	}
	return out
}

// procStat returns the state letter, parent and process group of pid
// (state "" when it is gone).
func procStat(pid int) (state string, ppid, pgid int) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0, 0
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return "", 0, 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 3 {
		return "", 0, 0
	}
	ppid, _ = strconv.Atoi(f[1])
	pgid, _ = strconv.Atoi(f[2])
	return f[0], ppid, pgid
}

func procState(pid int) string { s, _, _ := procStat(pid); return s }

// procsWhere lists the live processes for which keep(ppid, pgid) holds.
func procsWhere(t *testing.T, keep func(ppid, pgid int) bool) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ppid, pgid := procStat(pid); st != "" && st != "Z" && keep(ppid, pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// saltedPkgs copies testdata/pkgs with slowBuild's salt set, so the test's
// slow build is a derivation nobody else builds.
func saltedPkgs(t *testing.T, salt string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pkgs")
	mustRun(t, time.Minute, "cp", "-r", filepath.Join(repoRoot, "testdata", "pkgs"), dir)
	f := filepath.Join(dir, "default.nix")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	const def = `salt ? ""`
	if !bytes.Contains(b, []byte(def)) {
		t.Fatalf("testdata/pkgs/default.nix has no %s argument", def)
	}
	if err := os.WriteFile(f, bytes.Replace(b, []byte(def), []byte(fmt.Sprintf("salt ? %q", salt)), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitFor polls cond every 100ms for at most limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKilledServerLeavesNoBuild: kill -9 of strata serve during a Nix
// build leaves no Nix process behind (process group plus parent-death
// signal), and --nix-timeout stops a build's whole group with an error that
// names the timeout.
func TestKilledServerLeavesNoBuild(t *testing.T) {
	need(t, "nix-build")
	salt := fmt.Sprintf("-kill9-%d-%d", os.Getpid(), time.Now().UnixNano())
	s := startServer(t, serverOpts{source: []string{"--pkgs-path", saltedPkgs(t, salt)}, args: []string{"--nix-timeout", "10m"}})
	go func() {
		resp, err := http.Get("http://" + s.Addr + "/v2/slowbuild/manifests/latest")
		if err == nil {
			resp.Body.Close()
		}
	}()
	marker := "slow-build: starting" + salt
	waitFor(t, 2*time.Minute, "the slow build starting", func() bool { return len(procsMatching(t, marker)) > 0 })
	// The server's children: the Nix processes, each leading its group.
	server := s.cmd.Process.Pid
	children := procsWhere(t, func(ppid, _ int) bool { return ppid == server })
	if len(children) == 0 {
		t.Fatal("the build runs, but the server has no child process")
	}
	groups := map[int]bool{}
	for _, c := range children {
		groups[c] = true
	}
	if err := s.cmd.Process.Kill(); err != nil { // SIGKILL: no chance to clean up
		t.Fatal(err)
	}
	var left []int
	waitFor(t, 15*time.Second, "the server's Nix processes exiting after kill -9", func() bool {
		left = procsWhere(t, func(_, pgid int) bool { return groups[pgid] })
		return len(procsMatching(t, marker)) == 0 && len(left) == 0
	})
	t.Logf("kill -9 with a build running: %d Nix process group(s) were running, no process is left", len(groups))

	// --nix-timeout: the client hears of the timeout, and the group is gone.
	salt2 := salt + "-timeout"
	s2 := startServer(t, serverOpts{source: []string{"--pkgs-path", saltedPkgs(t, salt2)}, args: []string{"--nix-timeout", "4s"}})
	start := time.Now()
	resp, body := rawGet(t, s2.Addr, "/v2/slowbuild/manifests/latest")
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "timed out after 4s") || !strings.Contains(string(body), "--nix-timeout") {
		t.Fatalf("a build over --nix-timeout: %d %s", resp.StatusCode, body)
	}
	t.Logf("--nix-timeout 4s answered after %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(body)))
	waitFor(t, 10*time.Second, "the timed-out build's processes exiting", func() bool {
		return len(procsMatching(t, "slow-build: starting"+salt2)) == 0
	})
}

// mountTmpfs mounts a tmpfs of size at a new directory (we run as root);
// it is unmounted when the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs (the test needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file into dir until the filesystem is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := 0; i < 1024; i++ { // bounded: 1 GiB at most
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return p
			}
			t.Fatal(err)
		}
	}
	t.Fatal("the tmpfs never filled up")
	return ""
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func send(t *testing.T, method, url string, hdr map[string]string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func readyz(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDiskFull runs strata serve on a real 24 MiB tmpfs and fills it: a
// push answers 5xx with a spec error that names no path, the log has the
// cause with the path, the fault is counted, /readyz is not ready; once
// space returns /readyz is ready by itself, the upload that was in progress
// resumes, and a whole image pushes and pulls.
func TestDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, "24m")
	store := filepath.Join(mnt, "store")
	s := startServer(t, serverOpts{storage: store})
	base := "http://" + s.Addr

	// An upload in progress: its first chunk lands while there is space.
	data := bytes.Repeat([]byte("strata disk full "), 128<<10) // ~2 MiB
	half := len(data) / 2
	resp, body := send(t, "POST", base+"/v2/pushed/disk/full/blobs/uploads/", nil, nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 202 || loc == "" {
		t.Fatalf("start upload: %d %s", resp.StatusCode, body)
	}
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	chunk := func(from, to int) (*http.Response, []byte) {
		return send(t, "PATCH", loc, map[string]string{"Content-Range": fmt.Sprintf("%d-%d", from, to-1)}, data[from:to])
	}
	if resp, body := chunk(0, half); resp.StatusCode != 202 {
		t.Fatalf("first chunk: %d %s", resp.StatusCode, body)
	}

	filler := fill(t, mnt)
	other := bytes.Repeat([]byte("another blob "), 80<<10)
	resp, body = send(t, "POST", base+"/v2/pushed/disk/full/blobs/uploads/?digest="+sha256Digest(other), nil, other)
	checkFault := func(what string, resp *http.Response, body []byte) {
		t.Helper()
		if resp.StatusCode < 500 || !strings.Contains(string(body), `"code":"UNKNOWN"`) {
			t.Fatalf("%s on a full disk: %d %s, want a 5xx spec error", what, resp.StatusCode, body)
		}
		for _, leak := range []string{mnt, "/tmp", "no space left on device", "staging"} {
			if strings.Contains(string(body), leak) {
				t.Fatalf("%s: the error body shows %q: %s", what, leak, body)
			}
		}
	}
	checkFault("a monolithic upload", resp, body)
	t.Logf("push on a full disk: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	resp, body = chunk(half, len(data))
	checkFault("the second chunk", resp, body)

	recs := s.logRecords("storage fault")
	if len(recs) != 2 {
		t.Fatalf("want one storage fault record per failed request (2), got %d: %v", len(recs), recs)
	}
	for _, r := range recs {
		if r["kind"] != "no_space" || !strings.HasPrefix(fmt.Sprint(r["file"]), store) {
			t.Fatalf("storage fault record without kind or path: %v", r)
		}
	}
	if n := len(s.logRecords("internal error")); n != 0 {
		t.Errorf("the fault was also logged as %d internal error(s)", n)
	}
	metricsBody := func() string {
		_, b := send(t, "GET", base+"/metrics", nil, nil)
		return string(b)
	}
	if m := metricsBody(); !strings.Contains(m, `strata_storage_faults_total{kind="no_space"} 2`) {
		t.Fatalf("metrics lack the faults:\n%s", grepLines(m, "strata_storage_faults"))
	}
	waitFor(t, 15*time.Second, "/readyz not ready on a full disk", func() bool { return readyz(t, s.Addr) == http.StatusServiceUnavailable })
	_, rb := send(t, "GET", base+"/readyz", nil, nil)
	if strings.Contains(string(rb), mnt) || !strings.Contains(string(rb), "no space left") {
		t.Errorf("/readyz body: %s", rb)
	}
	// Nothing partial is visible under the digest.
	if resp, _ := send(t, "HEAD", base+"/v2/pushed/disk/full/blobs/"+sha256Digest(other), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("a failed upload's blob answers %d", resp.StatusCode)
	}

	// Space returns: ready again by itself, the upload resumes.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "/readyz ready once space returns", func() bool { return readyz(t, s.Addr) == http.StatusOK })
	resp, _ = send(t, "GET", loc, nil, nil)
	if resp.StatusCode != 204 || resp.Header.Get("Range") != fmt.Sprintf("0-%d", half-1) {
		t.Fatalf("upload status after the fault: %d %q", resp.StatusCode, resp.Header.Get("Range"))
	}
	if resp, body := chunk(half, len(data)); resp.StatusCode != 202 {
		t.Fatalf("resumed chunk: %d %s", resp.StatusCode, body)
	}
	d := sha256Digest(data)
	if resp, body := send(t, "PUT", loc+"?digest="+d, nil, nil); resp.StatusCode != 201 {
		t.Fatalf("finish the resumed upload: %d %s", resp.StatusCode, body)
	}
	if resp, got := send(t, "GET", base+"/v2/pushed/disk/full/blobs/"+d, nil, nil); resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Fatalf("resumed blob: %d, %d bytes", resp.StatusCode, len(got))
	}
	img, err := random.Image(1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	pushImage(t, s.Addr+"/pushed/disk/full:after", img)
	pullValidate(t, s.Addr+"/pushed/disk/full:after")
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
