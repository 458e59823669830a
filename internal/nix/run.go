package nix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// logLines is how many lines of a Nix process's stderr are kept.
const logLines = 50

// killGrace is how long an interrupted Nix process gets to stop its
// builders and clean up before its process group is killed.
const killGrace = 2 * time.Second

// envKeep are the variables a Nix process inherits; everything else (API
// tokens, cloud credentials of the server) stays out of its environment.
var envKeep = []string{
	"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "LC_ALL",
	"NIX_REMOTE", "NIX_STORE_DIR", "NIX_STATE_DIR", "NIX_LOG_DIR",
	"NIX_CONF_DIR", "NIX_USER_CONF_FILES", "NIX_CONFIG", "NIX_SSHOPTS",
	"NIX_SSL_CERT_FILE", "SSL_CERT_FILE", "SSH_AUTH_SOCK",
	"XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
	"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
}

// env is the environment of every process the driver starts.
func (d *Driver) env() []string {
	var env []string
	nixConfig := ""
	for _, k := range envKeep {
		v, ok := os.LookupEnv(k)
		if !ok {
			continue
		}
		if k == "NIX_CONFIG" {
			nixConfig = v
			continue
		}
		env = append(env, k+"="+v)
	}
	if !d.cfg.UseSubstituters {
		if nixConfig != "" {
			nixConfig += "\n"
		}
		nixConfig += "substituters ="
	}
	if nixConfig != "" {
		env = append(env, "NIX_CONFIG="+nixConfig)
	}
	if _, ok := os.LookupEnv("PATH"); !ok {
		env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	env = append(env, "GIT_TERMINAL_PROMPT=0")
	return env
}

// commonArgs are passed to every nix-* command.
func (d *Driver) commonArgs() []string {
	var a []string
	if !d.cfg.UseSubstituters {
		a = append(a, "--option", "substituters", "")
	}
	if d.noBuildUsers {
		a = append(a, "--option", "build-users-group", "")
	}
	if d.cfg.Builders != "" {
		a = append(a, "--option", "builders", d.cfg.Builders)
	}
	if d.cfg.Flake != "" {
		a = append(a, flakeFeatures...)
	}
	return a
}

// procError is a failed process: its exit error, the end of its stderr,
// and whether it was stopped by a deadline.
type procError struct {
	name     string
	err      error
	tail     []string
	timedOut bool
	canceled bool
}

func (e *procError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.name, e.err)
	if l := lastError(e.tail); l != "" {
		msg += ": " + l
	}
	return redact(msg)
}

func (e *procError) Unwrap() error { return e.err }

// run starts name with args in its own process group, waits for it and
// returns its stdout. The process's stderr is logged at debug level and
// its last lines are returned in a *procError on failure. When ctx ends
// the group gets SIGTERM, then SIGKILL after killGrace; when strata dies,
// the process gets SIGTERM.
func (d *Driver) run(ctx context.Context, name string, args []string, dir string) ([]byte, []string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, nil, fmt.Errorf("%s not found on PATH (install Nix 2.8 or later; on Debian run scripts/deps.sh): %w", name, err)
	}
	var stdout bytes.Buffer
	stderr := &tailWriter{max: logLines, log: func(line string) { d.log.Debug("nix", "cmd", name, "line", line) }}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = d.env()
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	// Its own process group, so a timeout or cancellation reaches the whole
	// group; and SIGTERM when strata dies, so a killed server leaves no
	// build behind. SIGTERM, not SIGKILL: the sandboxed builder runs in a
	// PID namespace and session of its own and outlives a SIGKILLed
	// nix-build, while a SIGTERMed one kills it and cleans up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	done := make(chan struct{})
	var once sync.Once
	var canceled atomic.Bool
	cmd.Cancel = func() error {
		canceled.Store(true)
		pid := cmd.Process.Pid
		// SIGTERM first: Nix then kills its sandboxed builder (which runs
		// in a session of its own, outside our process group) and removes
		// its temporary directories. SIGKILL whatever is left.
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		go func() {
			select {
			case <-done:
			case <-time.After(killGrace):
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}()
		return nil
	}
	cmd.WaitDelay = killGrace + 3*time.Second
	start := time.Now()
	d.log.Debug("nix start", "cmd", name, "args", redact(strings.Join(args, " ")))
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	if d.testHookStarted != nil {
		d.testHookStarted(name, cmd.Process.Pid)
	}
	werr := cmd.Wait()
	once.Do(func() { close(done) })
	if canceled.Load() {
		// Stragglers of the group, if any.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	stderr.flush()
	tail := stderr.lines()
	d.log.Debug("nix done", "cmd", name, "duration", time.Since(start), "err", werr)
	if ctx.Err() != nil {
		return stdout.Bytes(), tail, &procError{
			name: name, err: ctx.Err(), tail: tail,
			timedOut: errors.Is(ctx.Err(), context.DeadlineExceeded),
			canceled: errors.Is(ctx.Err(), context.Canceled),
		}
	}
	if werr != nil {
		return stdout.Bytes(), tail, &procError{name: name, err: werr, tail: tail}
	}
	return stdout.Bytes(), tail, nil
}

// tailWriter keeps the last max lines written to it (each cut to 2 KiB).
type tailWriter struct {
	mu      sync.Mutex
	max     int
	partial []byte
	ring    []string
	log     func(string)
}

const maxLine = 2048

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if room := maxLine - len(t.partial); room > 0 {
				t.partial = append(t.partial, p[:min(room, len(p))]...)
			}
			break
		}
		if room := maxLine - len(t.partial); room > 0 {
			t.partial = append(t.partial, p[:min(room, i)]...)
		}
		t.add(string(t.partial))
		t.partial = t.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (t *tailWriter) add(line string) {
	line = strings.TrimRight(line, "\r")
	if t.log != nil {
		t.log(line)
	}
	t.ring = append(t.ring, line)
	if len(t.ring) > t.max {
		t.ring = append(t.ring[:0], t.ring[len(t.ring)-t.max:]...)
	}
}

func (t *tailWriter) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partial) > 0 {
		t.add(string(t.partial))
		t.partial = t.partial[:0]
	}
}

func (t *tailWriter) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.ring...)
}

// lastError is the most telling line of a Nix log: the last line that
// starts with "error:", else the last non-empty line.
func lastError(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "error:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "error:"))
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

var userinfoRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@`)

// redact hides the user information (passwords, tokens) of URLs.
func redact(s string) string {
	return userinfoRE.ReplaceAllString(s, "${1}REDACTED@")
}
