// Package storagetest is the shared test suite every storage.Store backend
// must pass: call Run from the backend's own test with a constructor that
// returns a fresh, empty store.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"strata/internal/storage"
)

// Run runs the suite. newStore must return a fresh, empty store for each
// call; it is called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s storage.Store)
	}{
		{"PutGet", testPutGet},
		{"Empty", testEmpty},
		{"Overwrite", testOverwrite},
		{"NotFound", testNotFound},
		{"Cancel", testCancel},
		{"WriterDone", testWriterDone},
		{"PartialWrites", testPartialWrites},
		{"ConcurrentSameKey", testConcurrentSameKey},
		{"ConcurrentDistinctKeys", testConcurrentDistinctKeys},
		{"List", testList},
		{"Delete", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"Large", testLarge},
		{"Stat", testStat},
		{"Seek", testSeek},
		{"BlobKey", testBlobKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, newStore(t))
		})
	}
}

// Put writes data under key through a staged write.
func Put(t testing.TB, s storage.Store, key string, data []byte) {
	t.Helper()
	ctx := context.Background()
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Commit(ctx, key); err != nil {
		t.Fatalf("Commit(%q): %v", key, err)
	}
}

// Get reads the object under key.
func Get(t testing.TB, s storage.Store, key string) []byte {
	t.Helper()
	r, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

func mustList(t *testing.T, s storage.Store, prefix string) []string {
	t.Helper()
	keys, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func wantNotFound(t *testing.T, s storage.Store, key string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(%q) = %v, want ErrNotFound", key, err)
	}
	r, err := s.Open(ctx, key)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open(%q) = %v, want ErrNotFound", key, err)
	}
	if r != nil {
		r.Close()
	}
}

func testPutGet(t *testing.T, s storage.Store) {
	data := []byte("hello, strata")
	Put(t, s, "a/b/c", data)
	if got := Get(t, s, "a/b/c"); !bytes.Equal(got, data) {
		t.Fatalf("got %q, want %q", got, data)
	}
	Put(t, s, "top", []byte("x"))
	if got := Get(t, s, "top"); string(got) != "x" {
		t.Fatalf("got %q, want x", got)
	}
}

func testEmpty(t *testing.T, s storage.Store) {
	Put(t, s, "empty", nil)
	if got := Get(t, s, "empty"); len(got) != 0 {
		t.Fatalf("got %d bytes, want 0", len(got))
	}
	info, err := s.Stat(context.Background(), "empty")
	if err != nil || info.Size != 0 {
		t.Fatalf("Stat = %+v, %v; want size 0", info, err)
	}
}

func testOverwrite(t *testing.T, s storage.Store) {
	Put(t, s, "k", []byte("first version, longer"))
	Put(t, s, "k", []byte("second"))
	if got := Get(t, s, "k"); string(got) != "second" {
		t.Fatalf("got %q, want second", got)
	}
	// Last commit wins even when writers were created in the other order.
	ctx := context.Background()
	w1, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w1, "one")
	io.WriteString(w2, "two")
	if err := w2.Commit(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := w1.Commit(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if got := Get(t, s, "k"); string(got) != "one" {
		t.Fatalf("got %q, want one (last commit)", got)
	}
	if keys := mustList(t, s, ""); !slices.Equal(keys, []string{"k"}) {
		t.Fatalf("List = %q, want [k]", keys)
	}
}

func testNotFound(t *testing.T, s storage.Store) {
	wantNotFound(t, s, "missing")
	wantNotFound(t, s, "no/such/key")
	Put(t, s, "dir/obj", []byte("x"))
	// A prefix of keys is not itself an object.
	wantNotFound(t, s, "dir")
	// Nor is a path below an object.
	wantNotFound(t, s, "dir/obj/below")
	if keys := mustList(t, s, "nothing/"); len(keys) != 0 {
		t.Fatalf("List(nothing/) = %q, want empty", keys)
	}
}

func testCancel(t *testing.T, s storage.Store) {
	ctx := context.Background()
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte("x"), 1<<16)); err != nil {
		t.Fatal(err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("second Cancel: %v", err)
	}
	if err := w.Commit(ctx, "k"); err == nil {
		t.Fatal("Commit after Cancel succeeded")
	}
	wantNotFound(t, s, "k")
	if keys := mustList(t, s, ""); len(keys) != 0 {
		t.Fatalf("List after Cancel = %q, want empty", keys)
	}
	// Cancel does not disturb an existing object.
	Put(t, s, "k", []byte("kept"))
	w, err = s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "discarded")
	if err := w.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if got := Get(t, s, "k"); string(got) != "kept" {
		t.Fatalf("got %q, want kept", got)
	}
}

func testWriterDone(t *testing.T, s storage.Store) {
	ctx := context.Background()
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "abc")
	if err := w.Commit(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("Cancel after Commit: %v", err)
	}
	if got := Get(t, s, "k"); string(got) != "abc" {
		t.Fatalf("Cancel after Commit changed object: %q", got)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if err := w.Commit(ctx, "k2"); err == nil {
		t.Error("second Commit succeeded")
	}
	wantNotFound(t, s, "k2")
}

func testPartialWrites(t *testing.T, s storage.Store) {
	ctx := context.Background()
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := range 10 {
		chunk := bytes.Repeat([]byte{byte('a' + i)}, i*37)
		n, err := w.Write(chunk)
		if err != nil || n != len(chunk) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		want = append(want, chunk...)
		if w.Size() != int64(len(want)) {
			t.Fatalf("Size = %d, want %d", w.Size(), len(want))
		}
		// Nothing is visible before Commit.
		wantNotFound(t, s, "partial")
	}
	if err := w.Commit(ctx, "partial"); err != nil {
		t.Fatal(err)
	}
	if got := Get(t, s, "partial"); !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
}

// version returns the content of version i: size bytes of the byte i, so a
// mix of two versions is detectable anywhere in the object.
func version(i, size int) []byte { return bytes.Repeat([]byte{byte(i)}, size) }

func checkOneVersion(b []byte, size int) error {
	if len(b) != size {
		return fmt.Errorf("read %d bytes, want %d (torn object)", len(b), size)
	}
	for j := range b {
		if b[j] != b[0] {
			return fmt.Errorf("mixed versions: byte 0 is %d, byte %d is %d", b[0], j, b[j])
		}
	}
	return nil
}

func testConcurrentSameKey(t *testing.T, s storage.Store) {
	const writers, size = 8, 256 << 10
	ctx := context.Background()
	Put(t, s, "same", version(0, size))

	var wg sync.WaitGroup
	errs := make(chan error, 4*writers)
	stop := make(chan struct{})
	// Readers see one complete version at every moment.
	var rg sync.WaitGroup
	for range 2 {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := s.Open(ctx, "same")
				if err != nil {
					errs <- fmt.Errorf("open during writes: %w", err)
					return
				}
				b, err := io.ReadAll(r)
				r.Close()
				if err == nil {
					err = checkOneVersion(b, size)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 1; i <= writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.Create(ctx)
			if err != nil {
				errs <- err
				return
			}
			data := version(i, size)
			// Write in chunks so writers interleave.
			for off := 0; off < len(data); off += 16 << 10 {
				if _, err := w.Write(data[off : off+16<<10]); err != nil {
					errs <- err
					w.Cancel(ctx)
					return
				}
			}
			if err := w.Commit(ctx, "same"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	b := Get(t, s, "same")
	if err := checkOneVersion(b, size); err != nil {
		t.Fatal(err)
	}
	if b[0] == 0 {
		t.Fatal("no writer's commit is visible")
	}
	if keys := mustList(t, s, ""); !slices.Equal(keys, []string{"same"}) {
		t.Fatalf("List = %q, want [same]", keys)
	}
}

func testConcurrentDistinctKeys(t *testing.T, s storage.Store) {
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			key := fmt.Sprintf("dir/%02d/obj", i)
			w, err := s.Create(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			w.Write([]byte(key))
			if err := w.Commit(ctx, key); err != nil {
				t.Error(err)
			}
			// Deleting a sibling concurrently must not break commits.
			if err := s.Delete(ctx, fmt.Sprintf("dir/%02d/obj", (i+1)%n)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, k := range mustList(t, s, "") {
		if got := Get(t, s, k); string(got) != k {
			t.Errorf("%s holds %q", k, got)
		}
	}
}

func testList(t *testing.T, s storage.Store) {
	keys := []string{
		"a/b", "a/c/d", "a.b", "a-b/x", "ab", "b", "blobs/sha256/ab/abcd", "blobs/sha256/ac/acde",
		"blobs/sha512/ab/abff", "z/y/x/w",
	}
	for _, k := range slices.Backward(keys) {
		Put(t, s, k, []byte(k))
	}
	sorted := slices.Sorted(slices.Values(keys))
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"a", []string{"a-b/x", "a.b", "a/b", "a/c/d", "ab"}},
		{"a/", []string{"a/b", "a/c/d"}},
		{"a/c", []string{"a/c/d"}},
		{"blobs/sha256/", []string{"blobs/sha256/ab/abcd", "blobs/sha256/ac/acde"}},
		{"blobs/sha256/a", []string{"blobs/sha256/ab/abcd", "blobs/sha256/ac/acde"}},
		{"blobs/sha256/ab/", []string{"blobs/sha256/ab/abcd"}},
		{"blobs/", []string{"blobs/sha256/ab/abcd", "blobs/sha256/ac/acde", "blobs/sha512/ab/abff"}},
		{"b", []string{"b", "blobs/sha256/ab/abcd", "blobs/sha256/ac/acde", "blobs/sha512/ab/abff"}},
		{"z/y/x/w", []string{"z/y/x/w"}},
		{"nope", nil},
		{"nope/deeper/", nil},
	} {
		got := mustList(t, s, tc.prefix)
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
		if !slices.IsSorted(got) {
			t.Errorf("List(%q) not sorted: %q", tc.prefix, got)
		}
	}
}

func testDelete(t *testing.T, s storage.Store) {
	ctx := context.Background()
	Put(t, s, "d/one", []byte("1"))
	Put(t, s, "d/two", []byte("2"))
	if err := s.Delete(ctx, "d/one"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "d/one")
	if got := Get(t, s, "d/two"); string(got) != "2" {
		t.Fatalf("sibling changed: %q", got)
	}
	if err := s.Delete(ctx, "d/one"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	if err := s.Delete(ctx, "never/existed"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	if err := s.Delete(ctx, "d/two"); err != nil {
		t.Fatal(err)
	}
	if keys := mustList(t, s, ""); len(keys) != 0 {
		t.Fatalf("List after deletes = %q", keys)
	}
	// The key can be written again.
	Put(t, s, "d/one", []byte("again"))
	if got := Get(t, s, "d/one"); string(got) != "again" {
		t.Fatalf("got %q", got)
	}
}

// InvalidKeys are keys every backend must reject.
var InvalidKeys = []string{
	"", "/", "/abs", "trailing/", "a//b", "./a", "a/./b", "..", "../x", "a/../b", "a/..",
	"nul\x00byte", `back\slash`, "//", "a/b/",
}

func testInvalidKeys(t *testing.T, s storage.Store) {
	ctx := context.Background()
	Put(t, s, "valid", []byte("v"))
	before := mustList(t, s, "")
	for _, key := range InvalidKeys {
		if _, err := s.Stat(ctx, key); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want an invalid-key error", key, err)
		} else if !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", key, err)
		}
		if r, err := s.Open(ctx, key); err == nil {
			r.Close()
			t.Errorf("Open(%q) succeeded", key)
		} else if !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Open(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
		w, err := s.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "payload")
		if err := w.Commit(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Commit(%q) = %v, want ErrInvalidKey", key, err)
		}
		w.Cancel(ctx)
	}
	for _, prefix := range []string{"/", "../", "a/../", "..\x00", "a//"} {
		if _, err := s.List(ctx, prefix); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("List(%q) = %v, want ErrInvalidKey", prefix, err)
		}
	}
	if after := mustList(t, s, ""); !slices.Equal(before, after) {
		t.Fatalf("invalid keys changed the store: %q -> %q", before, after)
	}
}

func testLarge(t *testing.T, s storage.Store) {
	const size = 20<<20 + 12345
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for written := 0; written < size; {
		n := min(len(buf), size-written)
		for i := 0; i < n; i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := w.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		h.Write(buf[:n])
		written += n
	}
	if w.Size() != size {
		t.Fatalf("Size = %d, want %d", w.Size(), size)
	}
	if err := w.Commit(ctx, "large"); err != nil {
		t.Fatal(err)
	}
	want := h.Sum(nil)
	info, err := s.Stat(ctx, "large")
	if err != nil || info.Size != size {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, size)
	}
	r, err := s.Open(ctx, "large")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h.Reset()
	n, err := io.Copy(h, r)
	if err != nil || n != size {
		t.Fatalf("read %d, %v; want %d", n, err, size)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		t.Fatal("large object content differs")
	}
}

func testStat(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for _, n := range []int{1, 100, 4096, 65537} {
		key := fmt.Sprintf("size/%d", n)
		Put(t, s, key, make([]byte, n))
		info, err := s.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != int64(n) {
			t.Errorf("Stat(%s).Size = %d", key, info.Size)
		}
		if info.ModTime.IsZero() {
			t.Errorf("Stat(%s).ModTime is zero", key)
		}
	}
}

func testSeek(t *testing.T, s storage.Store) {
	data := []byte("0123456789abcdefghij")
	Put(t, s, "seek", data)
	r, err := s.Open(context.Background(), "seek")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	end, err := r.Seek(0, io.SeekEnd)
	if err != nil || end != int64(len(data)) {
		t.Fatalf("Seek(end) = %d, %v", end, err)
	}
	if _, err := r.Seek(10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(r, b); err != nil || string(b) != "abcde" {
		t.Fatalf("read after seek = %q, %v", b, err)
	}
}

func testBlobKey(t *testing.T, s storage.Store) {
	data := []byte("blob")
	d := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	Put(t, s, storage.BlobKey(d), data)
	if got := Get(t, s, storage.BlobKey(d)); !bytes.Equal(got, data) {
		t.Fatalf("got %q", got)
	}
	if keys := mustList(t, s, "blobs/sha256/"); !slices.Equal(keys, []string{storage.BlobKey(d)}) {
		t.Fatalf("List = %q", keys)
	}
}
