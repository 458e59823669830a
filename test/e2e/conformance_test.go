package e2e

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The OCI distribution-spec conformance suite, pinned.
const (
	conformanceModule = "github.com/opencontainers/distribution-spec/conformance"
	conformanceCommit = "a139cc423184af6078077b9b7ee336eddbd03f8f"
	// conformanceSpecs is how many specs of v1.1.1 apply to a registry
	// that pushes its own content (5 more are skipped by the suite itself:
	// the no-push variants and the automatic cross-mount checks).
	conformanceSpecs = 74
)

// conformanceBin downloads the suite through the module proxy and compiles
// it once, into a cache directory next to Go's build cache, so reruns are
// fast.
func conformanceBin(t *testing.T) string {
	t.Helper()
	cache := filepath.Join(filepath.Dir(goEnv("GOCACHE")), "strata-conformance", conformanceCommit[:12])
	bin := filepath.Join(cache, "conformance.test")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GONOSUMDB=github.com/opencontainers/distribution-spec", "GOFLAGS=-mod=mod")
	dl := exec.Command("go", "mod", "download", "-json", conformanceModule+"@"+conformanceCommit)
	dl.Env, dl.Dir = env, cache
	out, err := dl.Output()
	if err != nil {
		t.Fatalf("downloading the conformance suite: %v\n%s", err, out)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	src, err := os.MkdirTemp(cache, "src-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(src)
	mustRun(t, time.Minute, "cp", "-r", mod.Dir+"/.", src)
	mustRun(t, time.Minute, "chmod", "-R", "u+w", src)
	tmp := bin + ".tmp"
	build := exec.Command("go", "test", "-c", "-o", tmp)
	build.Env, build.Dir = env, src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("compiling the conformance suite: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// junit is the part of the suite's junit.xml the test reads.
type junit struct {
	Suites []struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
		Cases    []struct {
			Name    string    `xml:"name,attr"`
			Status  string    `xml:"status,attr"`
			Skipped *struct{} `xml:"skipped"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// runConformance runs all four workflows against addr and checks the
// junit report: every applicable spec ran and passed.
func runConformance(t *testing.T, addr string, env ...string) {
	t.Helper()
	bin := conformanceBin(t)
	dir := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OCI_ROOT_URL=http://"+addr,
		"OCI_NAMESPACE=pushed/conformance/a", "OCI_CROSSMOUNT_NAMESPACE=pushed/conformance/b",
		"OCI_TEST_PULL=1", "OCI_TEST_PUSH=1", "OCI_TEST_CONTENT_DISCOVERY=1", "OCI_TEST_CONTENT_MANAGEMENT=1",
		"OCI_REPORT_DIR="+dir)
	cmd.Env = append(cmd.Env, env...)
	out, runErr := cmd.CombinedOutput()
	raw, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil {
		t.Fatalf("no junit.xml (%v): %v\n%s", runErr, err, out)
	}
	var j junit
	if err := xml.Unmarshal(raw, &j); err != nil || len(j.Suites) != 1 {
		t.Fatalf("junit.xml: %v", err)
	}
	passed, skipped := 0, []string{}
	var failed []string
	for _, c := range j.Suites[0].Cases {
		switch {
		case c.Failure != nil:
			failed = append(failed, c.Name+": "+c.Failure.Message)
		case c.Skipped != nil:
			skipped = append(skipped, c.Name)
		case strings.HasPrefix(c.Name, "OCI Distribution Conformance Tests "):
			passed++
		}
	}
	t.Logf("conformance: %d passed, %d failed, %d not applicable (%s)", passed, len(failed), len(skipped), strings.Join(skipped, "; "))
	if len(failed) > 0 || passed != conformanceSpecs || runErr != nil {
		t.Fatalf("conformance: %d of %d passed; failures:\n%s\n(exit: %v)\n%s", passed, conformanceSpecs,
			strings.Join(failed, "\n"), runErr, tail(string(out), 4000))
	}
	for _, s := range skipped {
		if !strings.Contains(s, "(no push)") && !strings.Contains(s, "from environment") && !strings.Contains(s, "Cross-mounting") {
			t.Errorf("conformance: unexpected skip: %s", s)
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// TestConformance runs the OCI distribution-spec conformance suite v1.1.1
// (pull, push, content discovery, content management) against strata
// serve.
func TestConformance(t *testing.T) {
	srv := startServer(t, serverOpts{})
	runConformance(t, srv.Addr)
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

// TestConformanceAuth runs the suite with credentials against strata serve
// with access control, once with Basic challenges and once through the
// token service.
func TestConformanceAuth(t *testing.T) {
	for _, mode := range []string{"basic", "bearer"} {
		t.Run(mode, func(t *testing.T) {
			pw := "conformance-secret-1"
			args := []string{"--htpasswd", writeHtpasswd(t, "oci", pw), "--anonymous-pull=false", "--token-service=" + fmt.Sprint(mode == "bearer")}
			srv := startAuthServer(t, args...)
			runConformance(t, srv.Addr, "OCI_USERNAME=oci", "OCI_PASSWORD="+pw)
			if strings.Contains(srv.Log(), pw) {
				t.Error("the server log holds the password")
			}
		})
	}
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
	s.cmd = exec.Command(bin, all...)
	s.cmd.Env = os.Environ()
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
