package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"strata/internal/storage"
)

// Check is one condition of readiness.
type Check struct {
	// Name says what is checked, in the 503 reason ("storage", "nix").
	Name string
	// Run returns nil when the condition holds. Its context carries
	// Timeout.
	Run func(ctx context.Context) error
	// Timeout bounds one run; default 5s.
	Timeout time.Duration
	// Every is how long a result is reused: a request finding an older
	// one answers with it and starts a refresh in the background (only
	// the first request ever waits for a run). Default 0: every request
	// runs the check.
	Every time.Duration
}

// Readiness is the handler of /readyz: 200 "ready" when every check
// passes, else 503 with one line per failing check. It is safe for
// concurrent use.
type Readiness struct {
	checks []*cachedCheck
}

type cachedCheck struct {
	Check
	mu      sync.Mutex
	ran     bool
	at      time.Time
	err     error
	running bool
	first   chan struct{} // closed after the first run
}

// NewReadiness returns the handler of checks.
func NewReadiness(checks ...Check) *Readiness {
	r := &Readiness{}
	for _, c := range checks {
		if c.Timeout <= 0 {
			c.Timeout = 5 * time.Second
		}
		r.checks = append(r.checks, &cachedCheck{Check: c, first: make(chan struct{})})
	}
	return r
}

// Ready runs (or reuses) every check and returns the failures, nil when
// ready.
func (r *Readiness) Ready(ctx context.Context) []error {
	var errs []error
	for _, c := range r.checks {
		if err := c.result(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
	}
	return errs
}

// ServeHTTP answers 200 "ready" or 503 with the reasons, as plain text.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	errs := r.Ready(req.Context())
	if len(errs) == 0 {
		_, _ = io.WriteString(w, "ready\n")
		return
	}
	var b strings.Builder
	b.WriteString("not ready\n")
	for _, err := range errs {
		b.WriteString(strings.ReplaceAll(err.Error(), "\n", " ") + "\n")
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = io.WriteString(w, b.String())
}

func (c *cachedCheck) result(ctx context.Context) error {
	c.mu.Lock()
	if c.Every <= 0 {
		c.mu.Unlock()
		return c.run(ctx)
	}
	if c.ran && time.Since(c.at) < c.Every {
		err := c.err
		c.mu.Unlock()
		return err
	}
	if !c.running {
		c.running = true
		go c.refresh()
	}
	ran, err := c.ran, c.err
	c.mu.Unlock()
	if ran {
		return err
	}
	select {
	case <-c.first:
	case <-ctx.Done():
		return fmt.Errorf("no result yet: %w", ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// refresh runs the check in the background and stores its result.
func (c *cachedCheck) refresh() {
	err := c.run(context.Background())
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ran {
		close(c.first)
	}
	c.ran, c.at, c.err, c.running = true, time.Now(), err, false
}

func (c *cachedCheck) run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// A check that ignores its context still answers in time.
		return fmt.Errorf("no answer within %s: %w", c.Timeout, ctx.Err())
	}
}

// ReadinessKey is the storage key StorageCheck writes and reads back.
const ReadinessKey = storage.ReadinessKey

var readinessBody = []byte("strata readiness probe\n")

// StorageCheck returns a check that writes a tiny object under
// ReadinessKey and reads it back. Every replica writes the same bytes, so
// replicas sharing a store never fail each other's check.
//
// A storage fault (a full disk, an exhausted quota, a read-only filesystem,
// an I/O error) fails the check with its kind only: /readyz never shows the
// server's paths. The check recovers by itself once a probe write works.
func StorageCheck(s storage.Store) func(ctx context.Context) error {
	probe := storageProbe(s)
	return func(ctx context.Context) error {
		err := probe(ctx)
		if f, ok := storage.FaultOf(err); ok {
			return fmt.Errorf("storage cannot write or read (%s)", faultText[f.Kind])
		}
		return err
	}
}

var faultText = map[string]string{
	storage.FaultNoSpace:  "no space left",
	storage.FaultQuota:    "disk quota exceeded",
	storage.FaultReadOnly: "read-only filesystem",
	storage.FaultIO:       "input/output error",
}

func storageProbe(s storage.Store) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		w, err := s.Create(ctx)
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if _, err := w.Write(readinessBody); err != nil {
			_ = w.Cancel(ctx)
			return fmt.Errorf("write: %w", err)
		}
		if err := w.Commit(ctx, ReadinessKey); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		rc, err := s.Open(ctx, ReadinessKey)
		if err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		defer rc.Close()
		got, err := io.ReadAll(io.LimitReader(rc, 1<<10))
		if err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		if !bytes.Equal(got, readinessBody) {
			return fmt.Errorf("read back %d bytes that differ from the %d written", len(got), len(readinessBody))
		}
		return nil
	}
}
