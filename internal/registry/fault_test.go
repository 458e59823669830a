package registry_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"strata/internal/registry"
	"strata/internal/storage"
)

// faultStore wraps a filesystem store and fails writes (or reads) with a
// syscall error carrying a server path, as a full or broken disk does.
type faultStore struct {
	*storage.FS
	mu        sync.Mutex
	writeErr  error // returned by Create and Write when set
	openErr   error // returned by Open when set
	faultPath string
}

func (s *faultStore) set(write, open syscall.Errno) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeErr, s.openErr = nil, nil
	if write != 0 {
		s.writeErr = &fs.PathError{Op: "write", Path: s.faultPath, Err: write}
	}
	if open != 0 {
		s.openErr = &fs.PathError{Op: "open", Path: s.faultPath, Err: open}
	}
}

func (s *faultStore) errs() (error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeErr, s.openErr
}

func (s *faultStore) Create(ctx context.Context) (storage.Writer, error) {
	if err, _ := s.errs(); err != nil && strings.Contains(err.Error(), "read-only") {
		return nil, err
	}
	w, err := s.FS.Create(ctx)
	if err != nil {
		return nil, err
	}
	return &faultWriter{Writer: w, s: s}, nil
}

func (s *faultStore) Open(ctx context.Context, key string) (io.ReadSeekCloser, error) {
	if _, err := s.errs(); err != nil {
		return nil, err
	}
	return s.FS.Open(ctx, key)
}

type faultWriter struct {
	storage.Writer
	s *faultStore
}

func (w *faultWriter) Write(p []byte) (int, error) {
	if err, _ := w.s.errs(); err != nil {
		// Part of the data lands, then the disk is full.
		n, _ := w.Writer.Write(p[:len(p)/2])
		return n, err
	}
	return w.Writer.Write(p)
}

type faultMetrics struct {
	metricsRecorder
	fmu    sync.Mutex
	faults map[string]int
}

func (m *faultMetrics) ObserveStorageFault(kind string) {
	m.fmu.Lock()
	defer m.fmu.Unlock()
	m.faults[kind]++
}

func newFaultEnv(t *testing.T) (*env, *faultStore, *faultMetrics) {
	t.Helper()
	fsStore, err := storage.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fstore := &faultStore{FS: fsStore, faultPath: "/srv/strata-secret-dir/staging/upload-1234"}
	fm := &faultMetrics{faults: map[string]int{}}
	e := &env{store: fsStore, backend: newFakeBackend(), logs: &logRecorder{}}
	e.handler = registry.New(registry.Options{Store: fstore, Backend: e.backend, Log: slog.New(e.logs), PushPrefix: "x", Metrics: fm})
	e.srv = newLocalServer(t, e.handler)
	return e, fstore, fm
}

// wantFault checks a storage-fault response: a 5xx spec error body that
// names neither the server's path nor the system error.
func wantFault(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	wantError(t, resp, body, status, registry.CodeUnknown)
	for _, leak := range []string{"/srv", "strata-secret-dir", "no space left on device", "read-only file system", "input/output error", "staging"} {
		if bytes.Contains(body, []byte(leak)) {
			t.Errorf("the error body shows %q: %s", leak, body)
		}
	}
}

func (e *env) sendWith(t *testing.T, method, path string, hdr map[string]string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestStorageFullUpload: a full disk during an upload answers 507 with a
// spec error body and no path, logs the cause with the path once, counts
// it, leaves nothing under the digest, and the upload resumes from its last
// chunk once space returns.
func TestStorageFullUpload(t *testing.T) {
	e, fstore, fm := newFaultEnv(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 8<<10) // 128 KiB
	d := digestOf(data)

	fstore.set(syscall.ENOSPC, 0)
	resp, body := e.sendWith(t, "POST", "/v2/x/r/blobs/uploads/?digest="+d, nil, data)
	wantFault(t, resp, body, http.StatusInsufficientStorage)
	recs := e.logs.byMsg("storage fault")
	if len(recs) != 1 || recs[0]["kind"].String() != storage.FaultNoSpace || recs[0]["file"].String() != fstore.faultPath {
		t.Fatalf("storage fault log records: %v", recs)
	}
	if n := len(e.logs.byMsg("internal error")); n != 0 {
		t.Errorf("the fault was logged again as an internal error (%d)", n)
	}
	if fm.faults[storage.FaultNoSpace] != 1 {
		t.Errorf("faults counted: %v", fm.faults)
	}
	fstore.set(0, 0)
	if r, _ := e.do(t, "HEAD", "/v2/x/r/blobs/"+d, nil); r.StatusCode != 404 {
		t.Fatalf("after a failed upload the blob answers %d", r.StatusCode)
	}

	// A chunked upload: the first chunk lands, the disk fills, the second
	// fails; once space returns the client resumes from the offset the
	// registry reports.
	r := e.send(t, "POST", "/v2/x/r/blobs/uploads/", nil)
	loc := r.Header.Get("Location")
	half := len(data) / 2
	chunk := func(from, to int) (*http.Response, []byte) {
		return e.sendWith(t, "PATCH", loc, map[string]string{"Content-Range": strings.Join([]string{itoa(from), itoa(to - 1)}, "-")}, data[from:to])
	}
	if r, b := chunk(0, half); r.StatusCode != 202 {
		t.Fatalf("first chunk: %d %s", r.StatusCode, b)
	}
	fstore.set(syscall.ENOSPC, 0)
	resp, body = chunk(half, len(data))
	wantFault(t, resp, body, http.StatusInsufficientStorage)
	fstore.set(0, 0)
	st, _ := e.do(t, "GET", loc, nil)
	if st.StatusCode != 204 || st.Header.Get("Range") != "0-"+itoa(half-1) {
		t.Fatalf("upload status after the fault: %d %q", st.StatusCode, st.Header.Get("Range"))
	}
	if r, b := chunk(half, len(data)); r.StatusCode != 202 {
		t.Fatalf("resumed chunk: %d %s", r.StatusCode, b)
	}
	if r, b := e.sendWith(t, "PUT", loc+"?digest="+d, nil, nil); r.StatusCode != 201 {
		t.Fatalf("finish: %d %s", r.StatusCode, b)
	}
	r2, got := e.do(t, "GET", "/v2/x/r/blobs/"+d, nil)
	if r2.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Fatalf("blob after resume: %d, %d bytes", r2.StatusCode, len(got))
	}
}

// TestStorageFaultKinds: a quota is 507 like a full disk; a read-only
// filesystem and an I/O error are 503; each is counted by kind.
func TestStorageFaultKinds(t *testing.T) {
	e, fstore, fm := newFaultEnv(t)
	data := []byte("some blob")
	d := digestOf(data)
	for _, c := range []struct {
		errno  syscall.Errno
		status int
		kind   string
	}{
		{syscall.EDQUOT, http.StatusInsufficientStorage, storage.FaultQuota},
		{syscall.EROFS, http.StatusServiceUnavailable, storage.FaultReadOnly},
		{syscall.EIO, http.StatusServiceUnavailable, storage.FaultIO},
	} {
		fstore.set(c.errno, 0)
		resp, body := e.sendWith(t, "POST", "/v2/x/r/blobs/uploads/?digest="+d, nil, data)
		wantFault(t, resp, body, c.status)
		if fm.faults[c.kind] != 1 {
			t.Errorf("%s: counted %v", c.kind, fm.faults)
		}
	}
	// A read that fails with EIO: 503 too.
	fstore.set(0, 0)
	if r := e.send(t, "POST", "/v2/x/r/blobs/uploads/?digest="+d, data); r.StatusCode != 201 {
		t.Fatalf("push: %d", r.StatusCode)
	}
	fstore.set(0, syscall.EIO)
	resp, body := e.do(t, "GET", "/v2/x/r/blobs/"+d, nil)
	wantFault(t, resp, body, http.StatusServiceUnavailable)
	// A manifest PUT on a full disk: 507, no tag visible.
	fstore.set(syscall.ENOSPC, 0)
	m := mfst{SchemaVersion: 2, MediaType: ociManifestType, Config: &desc{MediaType: ociConfig, Digest: d, Size: int64(len(data))}, Layers: []desc{{MediaType: ociLayer, Digest: d, Size: int64(len(data))}}}
	resp, body = e.putManifest(t, "x/r", "v1", ociManifestType, m.bytes(t))
	wantFault(t, resp, body, http.StatusInsufficientStorage)
	fstore.set(0, 0)
	e.wantNoTag(t, "x/r", "v1")
}

func itoa(n int) string { return strconv.Itoa(n) }
