package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The commands of README.md and docs/*.md run as written: every fenced
// block of commands runs, in the order of its file, in a scratch folder that
// looks like a clone of the repository, unless a line just before it says
// why it cannot run here:
//
//	<!-- not run here: REASON -->
//
// A block that is meant to fail says how: <!-- exits N -->. Addresses are
// the one thing rewritten: 127.0.0.1:PORT (and `--listen :PORT`) become
// ports of the test's own, so that nothing clashes with a registry the
// machine already runs, and 127.0.0.1:5000 and :5001 are the two
// registries of scripts/run.sh, the `make run` the README describes.

// docsRunBy names the files whose commands another test runs as written,
// with that test.
var docsRunBy = map[string]string{
	"docs/release.md":   "TestReleaseDocs",
	"docs/nix-cache.md": "TestNixCacheDocs",
}

// docBlock is a fenced block of a Markdown file that holds commands.
type docBlock struct {
	file   string
	line   int
	script string
	skip   string // the reason a <!-- not run here: ... --> gives
	exit   int    // what an <!-- exits N --> expects
}

var (
	docMarkRE   = regexp.MustCompile(`^<!-- (not run here: (.+)|exits (\d+)(: .+)?) -->$`)
	docCommands = regexp.MustCompile(`^(\$ )?(strata|podman|skopeo|make|curl|nix|nix-build|nix-store|crane|regctl|docker|scripts/[\w./-]+|bash|sh|[A-Z_]+=\S*)(\s|$)`)
)

// docBlocks returns the blocks of file whose first command line starts with
// a command: diagrams, outputs and configuration files are not commands.
// A marker applies to the block that follows it, blank lines between.
func docBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks []docBlock
		cur    *docBlock // the open block
		mark   docBlock  // the marker above the next block
		shell  bool
		body   []string
	)
	for i, l := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(l)
		fence := strings.HasPrefix(trimmed, "```")
		switch {
		case cur != nil && fence:
			first := ""
			for _, b := range body {
				if s := strings.TrimSpace(b); s != "" && !strings.HasPrefix(s, "#") {
					first = s
					break
				}
			}
			if shell && docCommands.MatchString(first) {
				cur.script = strings.Join(body, "\n") + "\n"
				blocks = append(blocks, *cur)
			}
			cur = nil
		case cur != nil:
			body = append(body, l)
		case fence:
			info := strings.TrimPrefix(trimmed, "```")
			shell = info == "" || info == "sh" || info == "bash" || info == "console"
			cur = &docBlock{file: file, line: i + 1, skip: mark.skip, exit: mark.exit}
			body, mark = nil, docBlock{}
		default:
			if m := docMarkRE.FindStringSubmatch(trimmed); m != nil {
				mark.skip = m[2]
				if m[3] != "" {
					mark.exit, _ = strconv.Atoi(m[3])
				}
			} else if trimmed != "" {
				mark = docBlock{}
			}
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: a code block that is never closed", file, cur.line)
	}
	return blocks
}

// TestDocCommands runs every command of README.md and docs/*.md.
func TestDocCommands(t *testing.T) {
	need(t, "nix-build")
	need(t, "skopeo")
	pm := newPodman(t)
	debian := debianPkgs(t)

	files := []string{"README.md"}
	docs, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	for _, d := range docs {
		rel, _ := filepath.Rel(repoRoot, d)
		if by, ok := docsRunBy[rel]; ok {
			if !testDefined(t, by) {
				t.Errorf("%s: its commands are said to run in %s, which does not exist", rel, by)
			}
			continue
		}
		files = append(files, rel)
	}

	w := docsWorkdir(t, debian)
	t.Cleanup(func() { docsStopServers(w) })
	env := docsEnv(t, w, pm)
	ports := map[string]string{}
	runA, runD := freeAddr(t), freeAddr(t)
	ports["5000"], ports["5001"] = runA, runD
	startRunScript(t, w, runA, runD, debian)
	// The examples' configurations name make run's registry too.
	err := filepath.WalkDir(filepath.Join(w, "examples"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(p, []byte(docsAddrs(t, string(raw), ports)), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}

	ran, skipped := 0, 0
	for _, file := range files {
		for _, b := range docBlocks(t, file) {
			where := fmt.Sprintf("%s:%d", b.file, b.line)
			if b.skip != "" {
				t.Logf("%s: not run here: %s", where, b.skip)
				skipped++
				continue
			}
			script := docsRewrite(t, b.script, ports, w)
			start := time.Now()
			out, code := docsSh(t, w, env, script)
			if code != b.exit {
				t.Fatalf("%s exited %d, want %d:\n%s\n%s", where, code, b.exit, script, pubTail(out))
			}
			t.Logf("%s: exit %d in %.1f s", where, code, time.Since(start).Seconds())
			ran++
		}
	}
	t.Logf("ran %d blocks of commands; %d marked as not runnable here", ran, skipped)
	if ran < 10 {
		t.Fatalf("ran %d blocks: the parser lost the docs' commands", ran)
	}
}

// testDefined reports whether a test function of that name is in test/e2e.
func testDefined(t *testing.T, name string) bool {
	files, _ := filepath.Glob(filepath.Join(repoRoot, "test", "e2e", "*_test.go"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), "func "+name+"(t *testing.T)") {
			return true
		}
	}
	return false
}

// docsWorkdir is a folder that looks like a clone: testdata and scripts
// linked, examples copied (their configurations name registry addresses,
// rewritten like the commands'), and the Debian set where make run keeps it.
func docsWorkdir(t *testing.T, debian string) string {
	t.Helper()
	w := t.TempDir()
	for _, d := range []string{"testdata", "scripts", "web", "docs"} {
		if err := os.Symlink(filepath.Join(repoRoot, d), filepath.Join(w, d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(w, ".cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(debian, filepath.Join(w, ".cache", "debian-pkgs")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(w, "examples"), os.DirFS(filepath.Join(repoRoot, "examples"))); err != nil {
		t.Fatal(err)
	}
	return w
}

// docsEnv: strata on PATH, podman with this machine's settings (a wrapper
// that adds the flags the README's note names), a HOME of the test's own.
func docsEnv(t *testing.T, w string, pm *podman) []string {
	t.Helper()
	bin := filepath.Join(w, ".bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\nexec " + pm.bin + " " + strings.Join(pm.base, " ") + ` "$@"` + "\n"
	if err := os.WriteFile(filepath.Join(bin, "podman"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	env := pubEnv(home, "PATH="+bin+":"+filepath.Dir(strataBin)+":"+os.Getenv("PATH"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	return append(env, pm.env...)
}

// startRunScript starts scripts/run.sh, what make run starts once it has
// built strata, and waits for both of its registries.
func startRunScript(t *testing.T, w, addr, daddr, debian string) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts", "run.sh"))
	cmd.Env = append(os.Environ(), "BIN="+strataBin, "RUN_ADDR="+addr, "RUN_DEBIAN_ADDR="+daddr,
		"RUN_STORAGE="+filepath.Join(w, ".cache", "storage"), "DEBIAN_PKGS="+debian)
	log, err := os.Create(filepath.Join(t.TempDir(), "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		log.Close()
	})
	for _, a := range []string{addr, daddr} {
		if !waitV2(a, 5*time.Minute) {
			raw, _ := os.ReadFile(log.Name())
			t.Fatalf("scripts/run.sh: %s did not answer /v2/:\n%s", a, pubTail(string(raw)))
		}
	}
}

func waitV2(addr string, limit time.Duration) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if r, err := c.Get("http://" + addr + "/v2/"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return true
			}
		}
	}
	return false
}

var (
	docsAddrRE   = regexp.MustCompile(`127\.0\.0\.1:(\d{2,5})`)
	docsListenRE = regexp.MustCompile(`--listen :(\d{2,5})`)
)

// docsRewrite gives each port the docs name an address of the test's own,
// puts /var/lib/strata into the scratch folder, and starts every
// `strata serve` line in the background, waiting until it answers.
func docsRewrite(t *testing.T, script string, ports map[string]string, w string) string {
	t.Helper()
	addr := func(port string) string { return docsAddr(t, ports, port) }
	script = docsListenRE.ReplaceAllStringFunc(script, func(m string) string {
		return "--listen " + addr(docsListenRE.FindStringSubmatch(m)[1])
	})
	script = docsAddrs(t, script, ports)
	script = strings.ReplaceAll(script, "/var/lib/strata", filepath.Join(w, ".cache", "var-lib-strata"))

	// Join continuation lines, then background the servers.
	script = strings.ReplaceAll(script, "\\\n", " ")
	var out []string
	for _, l := range strings.Split(script, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "strata serve ") {
			out = append(out, l)
			continue
		}
		l = strings.TrimSuffix(strings.TrimSpace(l), "&")
		f := strings.Fields(l)
		listen := ""
		for i := range f[:len(f)-1] {
			if f[i] == "--listen" {
				listen = f[i+1]
			}
		}
		if listen == "" { // the default, 127.0.0.1:8080
			listen = addr("8080")
			l += " --listen " + listen
		}
		if !strings.HasPrefix(listen, "127.0.0.1:") {
			t.Fatalf("a documented `strata serve` listens on %q: the docs' servers listen on 127.0.0.1 or :PORT", listen)
		}
		n := len(ports)
		out = append(out, fmt.Sprintf(`%s >serve-%d.log 2>&1 & pid=$!; echo $pid >>.serve.pids`, l, n),
			fmt.Sprintf(`i=0; until curl -fs -o /dev/null http://%s/v2/; do i=$((i+1)); { [ $i -lt 600 ] && kill -0 $pid; } || { cat serve-%d.log; exit 1; }; sleep 0.1; done`, listen, n))
	}
	return strings.Join(out, "\n")
}

// docsAddr is the test's own address for a port the docs name.
func docsAddr(t *testing.T, ports map[string]string, port string) string {
	if a, ok := ports[port]; ok {
		return a
	}
	a := freeAddr(t)
	ports[port] = a
	return a
}

// docsAddrs rewrites every 127.0.0.1:PORT of s.
func docsAddrs(t *testing.T, s string, ports map[string]string) string {
	return docsAddrRE.ReplaceAllStringFunc(s, func(m string) string {
		return docsAddr(t, ports, docsAddrRE.FindStringSubmatch(m)[1])
	})
}

// docsStopServers stops the servers the docs' blocks started, and waits
// for them to go (10 s, then SIGKILL), so that nothing writes into the
// scratch folder while it is removed.
func docsStopServers(w string) {
	raw, _ := os.ReadFile(filepath.Join(w, ".serve.pids"))
	var pids []int
	for _, f := range strings.Fields(string(raw)) {
		if pid, err := strconv.Atoi(f); err == nil && syscall.Kill(pid, syscall.SIGTERM) == nil {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		// Bounded: an orphan that nobody reaps stays a zombie.
		for i := 0; i < 120 && syscall.Kill(pid, 0) == nil; i++ {
			if i == 100 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// docsSh runs a block with sh -eu in the scratch folder; it returns the
// output and the exit code.
func docsSh(t *testing.T, w string, env []string, script string) (string, int) {
	t.Helper()
	return shRun(t, &pubCapture{}, w, env, script)
}
