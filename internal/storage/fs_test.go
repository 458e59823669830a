package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"strata/internal/storage"
	"strata/internal/storage/storagetest"
)

func newFS(t *testing.T) *storage.FS {
	t.Helper()
	s, err := storage.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFSSuite(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return newFS(t) })
}

func TestFSLayout(t *testing.T) {
	s := newFS(t)
	storagetest.Put(t, s, "a/b/c", []byte("x"))
	b, err := os.ReadFile(filepath.Join(s.Dir(), "a", "b", "c"))
	if err != nil || string(b) != "x" {
		t.Fatalf("file = %q, %v", b, err)
	}
	r, err := s.Open(context.Background(), "a/b/c")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := r.(*os.File); !ok {
		t.Fatalf("Open returned %T, want *os.File", r)
	}
	// Nothing is left in staging after commits.
	if ents, _ := os.ReadDir(filepath.Join(s.Dir(), storage.StagingDir)); len(ents) != 0 {
		t.Fatalf("staging holds %d files after commit", len(ents))
	}
}

func TestFSReservedStaging(t *testing.T) {
	s := newFS(t)
	ctx := context.Background()
	for _, key := range []string{"_staging", "_staging/x"} {
		if _, err := s.Stat(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", key, err)
		}
		w, _ := s.Create(ctx)
		w.Write([]byte("x"))
		if err := w.Commit(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Commit(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	// Keys that merely start with the same letters are fine.
	storagetest.Put(t, s, "_stagingx", []byte("ok"))
}

func TestFSCrashLeavesOnlyStagingGarbage(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Simulate crashes: writers that are never committed nor cancelled.
	for range 3 {
		w, err := s.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("half a blob"))
	}
	for _, prefix := range []string{"", "_", "_staging", "_staging/", "_staging/w"} {
		if keys, _ := s.List(ctx, prefix); len(keys) != 0 {
			t.Fatalf("List(%q): uncommitted writes visible: %q", prefix, keys)
		}
	}
	staging := filepath.Join(dir, storage.StagingDir)
	ents, _ := os.ReadDir(staging)
	if len(ents) != 3 {
		t.Fatalf("staging holds %d files, want 3", len(ents))
	}
	// Age two of them past StagingMaxAge; a restart removes only those.
	old := time.Now().Add(-2 * storage.StagingMaxAge)
	for _, e := range ents[:2] {
		if err := os.Chtimes(filepath.Join(staging, e.Name()), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := storage.NewFS(dir); err != nil {
		t.Fatal(err)
	}
	ents, _ = os.ReadDir(staging)
	if len(ents) != 1 {
		t.Fatalf("after restart staging holds %d files, want 1 (the young one)", len(ents))
	}
}

// failingFile fails writes after limit bytes, like a full disk.
type failingFile struct {
	*os.File
	limit   int
	syncErr error
}

func (f *failingFile) Write(p []byte) (int, error) {
	if len(p) > f.limit {
		n, _ := f.File.Write(p[:f.limit])
		f.limit = 0
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	f.limit -= len(p)
	return f.File.Write(p)
}

func (f *failingFile) Sync() error {
	if f.syncErr != nil {
		return f.syncErr
	}
	return f.File.Sync()
}

func TestFSDiskFull(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		limit   int
		syncErr error
	}{
		{"write", 10, nil},
		{"sync", 1 << 20, &os.PathError{Op: "sync", Err: syscall.EIO}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFS(t)
			storagetest.Put(t, s, "k", []byte("previous"))
			storage.SetWrapTemp(s, func(f *os.File) storage.StagedFileForTest {
				return &failingFile{File: f, limit: tc.limit, syncErr: tc.syncErr}
			})
			w, err := s.Create(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, werr := w.Write(make([]byte, 100))
			if tc.syncErr == nil && !errors.Is(werr, syscall.ENOSPC) {
				t.Fatalf("Write = %v, want ENOSPC", werr)
			}
			cerr := w.Commit(ctx, "k")
			if cerr == nil {
				t.Fatal("Commit succeeded after a failed write")
			}
			if tc.syncErr != nil && !errors.Is(cerr, syscall.EIO) {
				t.Fatalf("Commit = %v, want EIO", cerr)
			}
			if got := storagetest.Get(t, s, "k"); string(got) != "previous" {
				t.Fatalf("object changed to %q", got)
			}
			if keys, _ := s.List(ctx, ""); !slices.Equal(keys, []string{"k"}) {
				t.Fatalf("List = %q", keys)
			}
			if ents, _ := os.ReadDir(filepath.Join(s.Dir(), storage.StagingDir)); len(ents) != 0 {
				t.Fatalf("failed commit left %d staging files", len(ents))
			}
		})
	}
}

func TestFSCommitConflicts(t *testing.T) {
	s := newFS(t)
	ctx := context.Background()
	storagetest.Put(t, s, "file", []byte("x"))
	storagetest.Put(t, s, "dir/child", []byte("y"))
	for _, key := range []string{"file/below", "dir"} {
		w, _ := s.Create(ctx)
		w.Write([]byte("z"))
		if err := w.Commit(ctx, key); err == nil {
			t.Errorf("Commit(%q) succeeded over a file/dir conflict", key)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Dir(), storage.StagingDir)); len(ents) != 0 {
		t.Fatalf("failed commits left %d staging files", len(ents))
	}
}

func TestFSCanceledContext(t *testing.T) {
	s := newFS(t)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "x")
	cancel()
	if err := w.Commit(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit = %v, want context.Canceled", err)
	}
	if _, err := s.Stat(context.Background(), "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat = %v, want ErrNotFound", err)
	}
}

func TestFaultOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		kind string
		path string
	}{
		{fmt.Errorf("storage: write staging file: %w", &fs.PathError{Op: "write", Path: "/data/staging/x", Err: syscall.ENOSPC}), storage.FaultNoSpace, "/data/staging/x"},
		{fmt.Errorf("commit: %w", &os.LinkError{Op: "rename", Old: "/a", New: "/b", Err: syscall.EDQUOT}), storage.FaultQuota, "/b"},
		{&fs.PathError{Op: "open", Path: "/ro", Err: syscall.EROFS}, storage.FaultReadOnly, "/ro"},
		{fmt.Errorf("read: %w", syscall.EIO), storage.FaultIO, ""},
	} {
		f, ok := storage.FaultOf(c.err)
		if !ok || f.Kind != c.kind || f.Path != c.path {
			t.Errorf("storage.FaultOf(%v) = %+v, %v; want %s %q", c.err, f, ok, c.kind, c.path)
		}
	}
	// An object store that is full or over quota is a fault too.
	for _, c := range []struct {
		err  *storage.S3Error
		kind string
	}{
		{&storage.S3Error{Code: "XMinioStorageFull", Status: 507}, storage.FaultNoSpace},
		{&storage.S3Error{Code: "InsufficientStorage", Status: 507}, storage.FaultNoSpace},
		{&storage.S3Error{Code: "QuotaExceeded", Status: 403}, storage.FaultQuota},
	} {
		if f, ok := storage.FaultOf(fmt.Errorf("registry: put x: %w", c.err)); !ok || f.Kind != c.kind {
			t.Errorf("FaultOf(%v) = %+v, %v; want %s", c.err, f, ok, c.kind)
		}
	}
	for _, err := range []error{nil, storage.ErrNotFound, &storage.S3Error{Code: "AccessDenied", Status: 403}, fmt.Errorf("x: %w", syscall.EACCES), &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}} {
		if f, ok := storage.FaultOf(err); ok {
			t.Errorf("storage.FaultOf(%v) = %+v, want no fault", err, f)
		}
	}
}
