// Package minio starts a real MinIO server for tests: on 127.0.0.1, on a
// free port, in a temporary directory, with root credentials generated
// for the test. The binary comes from scripts/deps.sh test; a missing binary
// fails the test (it never skips), with the command that installs it.
package minio

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mc "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// DefaultBin is where scripts/deps.sh test installs MinIO.
const DefaultBin = "/opt/strata/bin/minio"

// Server is a MinIO server running for a test.
type Server struct {
	// Addr is host:port on 127.0.0.1; URL is http://Addr.
	Addr, URL string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Dir holds the data.
	Dir string

	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

// Bin returns the MinIO binary: $STRATA_MINIO, DefaultBin, or minio on
// PATH; "" if none exists.
func Bin() string {
	if p := os.Getenv("STRATA_MINIO"); p != "" {
		return p
	}
	if _, err := os.Stat(DefaultBin); err == nil {
		return DefaultBin
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	return ""
}

// Start starts a server that stops when the test ends. It fails the test
// when MinIO is not installed or does not come up.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Bin()
	if bin == "" {
		t.Fatalf("MinIO is not installed (looked for $STRATA_MINIO, %s and minio on PATH): run scripts/deps.sh test (make test does)", DefaultBin)
	}
	var last error
	for range 3 { // a free port can be taken before MinIO binds it
		s, err := start(t, bin)
		if err == nil {
			return s
		}
		last = err
	}
	t.Fatalf("starting MinIO: %v", last)
	return nil
}

func start(t testing.TB, bin string) (*Server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	console, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: addr, URL: "http://" + addr, AccessKey: "u" + random(8), SecretKey: random(20),
		Dir: t.TempDir(), done: make(chan struct{})}
	s.cmd = exec.Command(bin, "server", filepath.Join(s.Dir, "data"), "--address", addr, "--console-address", console, "--quiet")
	s.cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CONFIG_ENV_FILE=", "HOME="+s.Dir)
	s.cmd.Stdout = &lockedWriter{s: s}
	s.cmd.Stderr = &lockedWriter{s: s}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	stop := func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(s.URL + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("minio exited: %v\n%s", s.cmd.ProcessState, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("minio did not answer on %s within 30s\n%s", addr, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("minio log:\n%s", s.Log())
		}
	})
	return s, nil
}

// Log returns the server's output so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

type lockedWriter struct{ s *Server }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(p)
}

// Client returns a client with the root credentials.
func (s *Server) Client(t testing.TB) *mc.Client {
	t.Helper()
	c, err := mc.New(s.Addr, &mc.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Secure: false})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewBucket creates a bucket with a fresh name and returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := "t-" + random(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, mc.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
