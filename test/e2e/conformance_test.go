package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"strata/test/minio"
)

// conformanceModule is the OCI distribution-spec conformance tool. Its
// version is pinned in tools/go.mod (the project's tools module), never
// here.
const conformanceModule = "github.com/opencontainers/distribution-spec/conformance"

var conformance struct {
	once sync.Once
	bin  string
	err  error
}

// conformanceBin builds the conformance tool from the tools module once per
// test run (Go's build cache makes reruns fast).
func conformanceBin(t *testing.T) string {
	t.Helper()
	conformance.once.Do(func() {
		modfile := filepath.Join(repoRoot, "tools", "go.mod")
		if _, err := os.Stat(modfile); err != nil {
			conformance.err = fmt.Errorf("%s is missing: the conformance tool is pinned there (run scripts/deps.sh from an up-to-date checkout): %w", modfile, err)
			return
		}
		dir, err := os.MkdirTemp("", "strata-conformance-")
		if err != nil {
			conformance.err = err
			return
		}
		atExit = append(atExit, func() { os.RemoveAll(dir) })
		bin := filepath.Join(dir, "conformance")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		build := exec.CommandContext(ctx, "go", "build", "-modfile="+modfile, "-o", bin, conformanceModule)
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			conformance.err = fmt.Errorf("building the conformance tool (go build -modfile=tools/go.mod %s): %v\n%s", conformanceModule, err, out)
			return
		}
		conformance.bin = bin
	})
	if conformance.err != nil {
		t.Fatal(conformance.err)
	}
	return conformance.bin
}

// conformanceCounts are the totals the tool prints at its end.
type conformanceCounts struct {
	Pass, Fail, Error, Skip, Disabled, Total int
}

var countLine = regexp.MustCompile(`(?m)^\s*(Disabled|Skip|Pass|FAIL|Error|Total)\.+:\s*(\d+)\s*$`)

// parseConformance reads the last block of counts from the tool's output.
func parseConformance(out string) (conformanceCounts, bool) {
	var c conformanceCounts
	seen := map[string]bool{}
	for _, m := range countLine.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[2])
		seen[m[1]] = true
		switch m[1] {
		case "Pass":
			c.Pass = n
		case "FAIL":
			c.Fail = n
		case "Error":
			c.Error = n
		case "Skip":
			c.Skip = n
		case "Disabled":
			c.Disabled = n
		case "Total":
			c.Total = n
		}
	}
	return c, len(seen) == 6
}

// minConformanceChecks is a floor, not the expected count: the tool's
// stable checks alone are 860; the optional APIs enabled below add more.
const minConformanceChecks = 860

// runConformance runs every check of the conformance tool against addr,
// with the optional APIs strata implements switched on (upload cancel,
// digest headers, tags on a PUT by digest), and fails unless every check
// ran and passed. It returns the counts.
func runConformance(t *testing.T, addr string, env ...string) conformanceCounts {
	t.Helper()
	bin := conformanceBin(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OCI_REGISTRY="+addr, "OCI_TLS=disabled",
		"OCI_REPO1=pushed/conformance/a", "OCI_REPO2=pushed/conformance/b", "OCI_RESULTS_DIR="+dir,
		"OCI_API_BLOBS_UPLOAD_CANCEL=true", "OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_DIGEST_HEADER=true", "OCI_API_MANIFESTS_TAG_PARAM=true")
	cmd.Env = append(cmd.Env, env...)
	raw, runErr := cmd.CombinedOutput()
	out := string(raw)
	c, ok := parseConformance(out)
	if !ok {
		t.Fatalf("conformance: no counts in the output (exit: %v)\n%s", runErr, tail(out, 8000))
	}
	var failed []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `msg="failed test"`) {
			failed = append(failed, truncateLine(line, 600))
		}
	}
	if c.Fail != 0 || c.Error != 0 || c.Skip != 0 || c.Disabled != 0 || c.Pass != c.Total || c.Total < minConformanceChecks || runErr != nil {
		t.Fatalf("conformance: %+v (exit: %v); failures:\n%s\n%s", c, runErr, strings.Join(failed, "\n"), tail(out, 6000))
	}
	return c
}

func truncateLine(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// TestConformance runs the OCI distribution-spec conformance tool against
// strata serve in six configurations: filesystem and S3 (MinIO) storage,
// each without access control, with htpasswd Basic auth, and with the
// built-in Bearer token service. Every check must pass; the counts of each
// configuration are printed.
func TestConformance(t *testing.T) {
	conformanceBin(t) // build before any server starts
	var mc *minio.Server
	results := map[string]conformanceCounts{}
	var order []string
	for _, store := range []string{"filesystem", "s3"} {
		if store == "s3" {
			mc = minio.Start(t) // one server for the three S3 runs, a bucket each
		}
		for _, mode := range []string{"none", "basic", "bearer"} {
			name := store + "/" + mode
			order = append(order, name)
			t.Run(name, func(t *testing.T) {
				var args, env []string
				if store == "s3" {
					args = []string{"--storage", "s3", "--s3-endpoint", mc.URL, "--s3-bucket", mc.NewBucket(t), "--s3-prefix", "strata"}
					env = []string{"AWS_ACCESS_KEY_ID=" + mc.AccessKey, "AWS_SECRET_ACCESS_KEY=" + mc.SecretKey}
				}
				var creds []string
				pw := "conformance-secret-1"
				if mode != "none" {
					args = append(args, "--htpasswd", writeHtpasswd(t, "oci", pw), "--anonymous-pull=false", "--token-service="+fmt.Sprint(mode == "bearer"))
					creds = []string{"OCI_USERNAME=oci", "OCI_PASSWORD=" + pw}
				}
				srv := startConfServer(t, store == "s3", env, args...)
				if mode != "none" {
					// Access control is on: an anonymous pull is refused
					// with the challenge of the configured scheme.
					resp, err := http.Get("http://" + srv.Addr + "/v2/")
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					want := map[string]string{"basic": "Basic ", "bearer": "Bearer "}[mode]
					if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), want) {
						t.Fatalf("anonymous /v2/: %d %q, want 401 with a %s challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), mode)
					}
				}
				c := runConformance(t, srv.Addr, creds...)
				results[name] = c
				t.Logf("conformance %s: %d of %d passed, %d failed, %d errors, %d skipped, %d disabled", name, c.Pass, c.Total, c.Fail, c.Error, c.Skip, c.Disabled)
				if mode != "none" && strings.Contains(srv.Log(), pw) {
					t.Error("the server log holds the password")
				}
				if mc != nil && strings.Contains(srv.Log(), mc.SecretKey) {
					t.Error("the server log holds the S3 secret key")
				}
			})
		}
	}
	var sum strings.Builder
	for _, name := range order {
		c, ok := results[name]
		if !ok {
			fmt.Fprintf(&sum, "  %-18s did not complete\n", name)
			continue
		}
		fmt.Fprintf(&sum, "  %-18s %4d of %4d passed, %d failed\n", name, c.Pass, c.Total, c.Fail)
	}
	t.Logf("conformance per configuration:\n%s", sum.String())
	fmt.Printf("conformance per configuration:\n%s", sum.String())
}

// startConfServer starts strata serve with args on a filesystem store (a
// temporary directory) or, with s3, on the storage the args name.
func startConfServer(t *testing.T, s3 bool, env []string, args ...string) *server {
	t.Helper()
	s := &server{Addr: freeAddr(t)}
	all := []string{"serve", "--listen", s.Addr, "--log-level", "debug", "--pkgs-path", filepath.Join(repoRoot, "testdata", "pkgs")}
	if !s3 {
		s.Storage = t.TempDir()
		all = append(all, "--storage-path", s.Storage)
	}
	return startCmd(t, s, "", strataBin, append(all, args...), env)
}

// writeHtpasswd writes a bcrypt htpasswd file with one user.
func writeHtpasswd(t *testing.T, user, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("%s:%s\n", user, h)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startAuthServer starts strata serve like startServer, for servers whose
// /v2/ answers 401 to anonymous clients (access control on): it waits for
// any HTTP answer instead of a 200.
func startAuthServer(t *testing.T, args ...string) *server {
	t.Helper()
	return startServerBin(t, strataBin, "", append([]string{"--log-level", "debug"}, args...)...)
}

// startServerBin starts strata serve from bin with args and waits for any
// HTTP answer on /v2/. The log goes to logFile when set (then Log is
// empty), else into the server's Log.
func startServerBin(t *testing.T, bin, logFile string, args ...string) *server {
	t.Helper()
	s := &server{Addr: freeAddr(t), Storage: t.TempDir()}
	all := append([]string{"serve", "--listen", s.Addr, "--pkgs-path", filepath.Join(repoRoot, "testdata", "pkgs"),
		"--storage-path", s.Storage}, args...)
	return startCmd(t, s, logFile, bin, all, nil)
}

// startCmd runs bin with args (and env added to the test's) as s, stops it
// when the test ends, and waits for any HTTP answer on /v2/.
func startCmd(t *testing.T, s *server, logFile, bin string, args, env []string) *server {
	t.Helper()
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), env...)
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		s.cmd.Stdout, s.cmd.Stderr = f, f
	} else {
		s.cmd.Stdout = &lockedWriter{s: s}
		s.cmd.Stderr = s.cmd.Stdout
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", tail(s.Log(), 20000))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("strata serve did not answer on %s: %v\n%s", s.Addr, err, s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lockedWriter appends a process's output to a server's log.
type lockedWriter struct{ s *server }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(p)
}
