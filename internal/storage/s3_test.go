package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mc "github.com/minio/minio-go/v7"

	"strata/internal/storage"
	"strata/internal/storage/storagetest"
	"strata/test/minio"
)

func newS3(t *testing.T, srv *minio.Server, bucket, prefix string) *storage.S3 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := storage.NewS3(ctx, storage.S3Options{
		Endpoint: srv.URL, Bucket: bucket, Prefix: prefix, Region: "us-east-1",
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3Suite(t *testing.T) {
	srv := minio.Start(t)
	t.Run("prefix", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Store { return newS3(t, srv, srv.NewBucket(t), "strata/x") })
	})
	t.Run("root", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Store { return newS3(t, srv, srv.NewBucket(t), "") })
	})
}

func TestS3Layout(t *testing.T) {
	srv := minio.Start(t)
	bucket := srv.NewBucket(t)
	s := newS3(t, srv, bucket, "/pre/")
	storagetest.Put(t, s, "a/b/c", []byte("x"))
	// Large enough to spill to a file and go up in parts.
	big := bytes.Repeat([]byte("0123456789abcdef"), (20<<20)/16)
	storagetest.Put(t, s, "big", big)
	ctx := context.Background()
	c := srv.Client(t)
	var names []string
	for oi := range c.ListObjects(ctx, bucket, mc.ListObjectsOptions{Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		names = append(names, oi.Key)
	}
	if !slices.Equal(names, []string{"pre/a/b/c", "pre/big"}) {
		t.Fatalf("objects = %q", names)
	}
	// Another prefix in the same bucket sees nothing of it.
	other := newS3(t, srv, bucket, "other")
	if keys, err := other.List(ctx, ""); err != nil || len(keys) != 0 {
		t.Fatalf("List under another prefix = %q, %v", keys, err)
	}
	if got := storagetest.Get(t, s, "big"); !bytes.Equal(got, big) {
		t.Fatal("big object differs")
	}
}

func TestS3Reserved(t *testing.T) {
	srv := minio.Start(t)
	s := newS3(t, srv, srv.NewBucket(t), "")
	ctx := context.Background()
	for _, key := range []string{"_staging", "_staging/x", "_locks", "_locks/x"} {
		if _, err := s.Stat(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", key, err)
		}
		w, _ := s.Create(ctx)
		w.Write([]byte("x"))
		if err := w.Commit(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Commit(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	storagetest.Put(t, s, "_stagingx", []byte("ok"))
	l, err := s.TryLease(ctx, "img", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	if keys, _ := s.List(ctx, ""); !slices.Equal(keys, []string{"_stagingx"}) {
		t.Fatalf("List = %q: leases must not be listed", keys)
	}
}

func TestS3Redirect(t *testing.T) {
	srv := minio.Start(t)
	s := newS3(t, srv, srv.NewBucket(t), "p")
	ctx := context.Background()
	data := []byte("blob bytes")
	storagetest.Put(t, s, "blobs/sha256/ab/abcd", data)
	u, err := s.RedirectURL(ctx, "blobs/sha256/ab/abcd", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, srv.URL+"/") || !strings.Contains(u, "X-Amz-Expires=300") {
		t.Fatalf("URL %s", u)
	}
	if strings.Contains(u, srv.SecretKey) {
		t.Fatal("the secret key is in the URL")
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Fatalf("GET pre-signed: %d %q", resp.StatusCode, got)
	}
	if _, err := s.RedirectURL(ctx, "../x", time.Minute); !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf("RedirectURL(../x) = %v", err)
	}
}

func TestS3Move(t *testing.T) {
	srv := minio.Start(t)
	s := newS3(t, srv, srv.NewBucket(t), "")
	ctx := context.Background()
	storagetest.Put(t, s, "uploads/u1/data", []byte("chunk"))
	if err := s.Move(ctx, "uploads/u1/data", "blobs/x"); err != nil {
		t.Fatal(err)
	}
	if got := storagetest.Get(t, s, "blobs/x"); string(got) != "chunk" {
		t.Fatalf("got %q", got)
	}
	if _, err := s.Stat(ctx, "uploads/u1/data"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("source still there: %v", err)
	}
	if err := s.Move(ctx, "missing", "blobs/y"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Move(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "blobs/y"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("failed move left an object: %v", err)
	}
}

// TestS3ReaderPinsVersion: a reader that seeks never mixes two versions.
func TestS3ReaderPinsVersion(t *testing.T) {
	srv := minio.Start(t)
	s := newS3(t, srv, srv.NewBucket(t), "")
	ctx := context.Background()
	storagetest.Put(t, s, "k", bytes.Repeat([]byte("a"), 1000))
	r, err := s.Open(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "aaaaaaaaaa" {
		t.Fatalf("read %q, %v", buf, err)
	}
	storagetest.Put(t, s, "k", bytes.Repeat([]byte("b"), 1000))
	if _, err := r.Seek(500, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if n, err := io.ReadFull(r, buf); err == nil {
		t.Fatalf("read %q (%d bytes) of a replaced object, want an error", buf[:n], n)
	}
	// A fresh reader sees the new version, and seeks within it.
	r2, err := s.Open(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if _, err := r2.Seek(995, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r2)
	if err != nil || string(rest) != "bbbbb" {
		t.Fatalf("read %q, %v", rest, err)
	}
}

func TestS3CleanStaging(t *testing.T) {
	srv := minio.Start(t)
	bucket := srv.NewBucket(t)
	tmp := t.TempDir()
	ctx := context.Background()
	open := func() *storage.S3 {
		s, err := storage.NewS3(ctx, storage.S3Options{Endpoint: srv.Addr, Insecure: true, Bucket: bucket, Prefix: "p",
			AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, TempDir: tmp})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	// A crash: a writer that spilled to disk and was never committed,
	// and an upload that never completed.
	w, _ := s.Create(ctx)
	if _, err := w.Write(make([]byte, 5<<20)); err != nil {
		t.Fatal(err)
	}
	spills, _ := filepath.Glob(filepath.Join(tmp, "strata-s3-stage-*"))
	if len(spills) != 1 {
		t.Fatalf("%d spill files, want 1", len(spills))
	}
	core := mc.Core{Client: srv.Client(t)}
	if _, err := core.NewMultipartUpload(ctx, bucket, "p/blobs/half", mc.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.List(ctx, ""); len(keys) != 0 {
		t.Fatalf("uncommitted writes visible: %q", keys)
	}
	// Young garbage survives a restart; old garbage does not.
	open()
	if _, err := os.Stat(spills[0]); err != nil {
		t.Fatalf("young spill file removed: %v", err)
	}
	old := time.Now().Add(-2 * storage.StagingMaxAge)
	os.Chtimes(spills[0], old, old)
	if err := storage.CleanS3StagingForTest(ctx, open(), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(spills[0]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old spill file kept: %v", err)
	}
	for u := range srv.Client(t).ListIncompleteUploads(ctx, bucket, "", true) {
		t.Fatalf("incomplete upload kept: %+v", u)
	}
}

func TestS3Errors(t *testing.T) {
	srv := minio.Start(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	_, err := storage.NewS3(ctx, storage.S3Options{Endpoint: srv.URL, Bucket: bucket,
		AccessKeyID: srv.AccessKey, SecretAccessKey: "wrong-secret-0123456789"})
	if err == nil {
		t.Fatal("NewS3 with a wrong secret succeeded")
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("the secret is in the error: %v", err)
	}
	_, err = storage.NewS3(ctx, storage.S3Options{Endpoint: srv.URL, Bucket: "no-such-bucket",
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing bucket: %v", err)
	}
	if strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("the secret is in the error: %v", err)
	}
	if _, err := storage.NewS3(ctx, storage.S3Options{Endpoint: "ftp://x", Bucket: "b"}); err == nil {
		t.Fatal("ftp endpoint accepted")
	}
}

func TestS3Lease(t *testing.T) {
	srv := minio.Start(t)
	bucket := srv.NewBucket(t)
	a := newS3(t, srv, bucket, "p")
	b := newS3(t, srv, bucket, "p")
	if !a.ConditionalWrites() {
		t.Fatal("MinIO should honour conditional writes")
	}
	ctx := context.Background()
	la, err := a.TryLease(ctx, "img/1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLease(ctx, "img/1", time.Minute); !errors.Is(err, storage.ErrLeaseHeld) {
		t.Fatalf("second TryLease = %v, want ErrLeaseHeld", err)
	}
	if err := la.Renew(ctx); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lb, err := b.TryLease(ctx, "img/1", 2*time.Second)
	if err != nil {
		t.Fatalf("TryLease after Release: %v", err)
	}
	// b stops renewing: its lease expires and a takes it over.
	time.Sleep(3500 * time.Millisecond)
	la, err = a.TryLease(ctx, "img/1", time.Minute)
	if err != nil {
		t.Fatalf("TryLease of an expired lease: %v", err)
	}
	if err := lb.Renew(ctx); !errors.Is(err, storage.ErrLeaseLost) {
		t.Fatalf("Renew of a lost lease = %v, want ErrLeaseLost", err)
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Releasing the lost lease did not free a's.
	if _, err := b.TryLease(ctx, "img/1", time.Minute); !errors.Is(err, storage.ErrLeaseHeld) {
		t.Fatalf("TryLease = %v, want ErrLeaseHeld", err)
	}
	la.Release(ctx)
	if _, err := a.TryLease(ctx, "../x", time.Minute); !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf("TryLease(../x) = %v", err)
	}
}

// TestS3LeaseRace: of many replicas racing for one name, exactly one wins.
func TestS3LeaseRace(t *testing.T) {
	srv := minio.Start(t)
	bucket := srv.NewBucket(t)
	const n = 12
	stores := make([]*storage.S3, n)
	for i := range stores {
		stores[i] = newS3(t, srv, bucket, "")
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := stores[i].TryLease(context.Background(), "race", time.Minute)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, storage.ErrLeaseHeld):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if w := wins.Load(); w != 1 {
		t.Errorf("%d winners, want 1", w)
	}
}

// TestS3LeaseFallback: without conditional writes a lease still excludes
// a later taker, and expires.
func TestS3LeaseFallback(t *testing.T) {
	srv := minio.Start(t)
	bucket := srv.NewBucket(t)
	a, b := newS3(t, srv, bucket, ""), newS3(t, srv, bucket, "")
	storage.SetConditionalWritesForTest(a, false)
	storage.SetConditionalWritesForTest(b, false)
	ctx := context.Background()
	la, err := a.TryLease(ctx, "x", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLease(ctx, "x", time.Minute); !errors.Is(err, storage.ErrLeaseHeld) {
		t.Fatalf("TryLease = %v, want ErrLeaseHeld", err)
	}
	if err := la.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3500 * time.Millisecond)
	if _, err := b.TryLease(ctx, "x", time.Minute); err != nil {
		t.Fatalf("TryLease of an expired lease: %v", err)
	}
	if err := la.Renew(ctx); !errors.Is(err, storage.ErrLeaseLost) {
		t.Fatalf("Renew = %v, want ErrLeaseLost", err)
	}
}
