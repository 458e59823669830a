package builder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"strata/internal/buildreq"
	"strata/internal/image"
	"strata/internal/nix"
	"strata/internal/storage"
)

// memLeases is an in-memory storage.Leaser over a real store, standing in
// for the leases of a shared bucket.
type memLeases struct {
	storage.Store
	mu   sync.Mutex
	held map[string]time.Time // name → expiry
}

type memLease struct {
	m    *memLeases
	name string
	ttl  time.Duration
}

func (m *memLeases) TryLease(_ context.Context, name string, ttl time.Duration) (storage.Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if exp, ok := m.held[name]; ok && time.Now().Before(exp) {
		return nil, fmt.Errorf("lease %s: %w", name, storage.ErrLeaseHeld)
	}
	m.held[name] = time.Now().Add(ttl)
	return &memLease{m: m, name: name, ttl: ttl}, nil
}

func (l *memLease) Renew(context.Context) error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	l.m.held[l.name] = time.Now().Add(l.ttl)
	return nil
}

func (l *memLease) Release(context.Context) error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	delete(l.m.held, l.name)
	return nil
}

// slowNix counts builds (safely) and makes each take a while, so that
// concurrent requests overlap.
type slowNix struct {
	*fakeNix
	mu     sync.Mutex
	builds int
	fail   bool
}

func (s *slowNix) Build(ctx context.Context, ref string, t nix.Target, attrs []string) (*nix.Result, error) {
	s.mu.Lock()
	s.builds++
	fail := s.fail
	s.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	if fail {
		return nil, errors.New("build failed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fakeNix.Build(ctx, ref, t, attrs)
}

func (s *slowNix) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.builds
}

// replicas returns n builders on one store with shared leases, as n
// processes on one bucket.
func replicas(t *testing.T, n int) ([]*Builder, *slowNix) {
	f, root := newFake(t)
	sn := &slowNix{fakeNix: f}
	fs, err := storage.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &memLeases{Store: fs, held: map[string]time.Time{}}
	p, _ := image.ParsePlatform("linux/amd64")
	var bs []*Builder
	for range n {
		b, err := New(Options{Nix: sn, Store: store, StoreRoot: root, Platforms: []Platform{{Platform: p}}})
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	return bs, sn
}

func TestReplicasBuildOnce(t *testing.T) {
	bs, sn := replicas(t, 3)
	s := buildreq.Request{Name: "app/curl", Ref: "latest", Packages: []string{"app", "curl"}}
	const n = 9
	digests := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := bs[i%len(bs)].Build(context.Background(), s)
			if err != nil {
				t.Error(err)
				return
			}
			digests[i] = r.OCI.Digest
		}()
	}
	wg.Wait()
	if got := sn.count(); got != 1 {
		t.Fatalf("%d Nix builds across 3 replicas, want 1", got)
	}
	for i := range digests {
		if digests[i] == "" || digests[i] != digests[0] {
			t.Fatalf("digest %d = %q, digest 0 = %q", i, digests[i], digests[0])
		}
	}
	store := bs[0].opts.Store.(*memLeases)
	if len(store.held) != 0 {
		t.Fatalf("leases left behind: %v", store.held)
	}
}

// A failed build releases its lease: the waiting replica builds itself.
func TestReplicaFailureReleasesLease(t *testing.T) {
	bs, sn := replicas(t, 2)
	sn.fail = true
	s := buildreq.Request{Name: "app", Ref: "latest", Packages: []string{"app"}}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = bs[i].Build(context.Background(), s)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			t.Fatal("a failing build succeeded")
		}
	}
	if store := bs[0].opts.Store.(*memLeases); len(store.held) != 0 {
		t.Fatalf("leases left behind: %v", store.held)
	}
}

// A waiter gives up after LeaseWait when the holder never finishes.
func TestLeaseWaitBounded(t *testing.T) {
	bs, _ := replicas(t, 1)
	bs[0].opts.LeaseWait = 500 * time.Millisecond
	s := buildreq.Request{Name: "app", Ref: "latest", Packages: []string{"app"}}
	key, _, err := bs[0].imageKey(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	store := bs[0].opts.Store.(*memLeases)
	if _, err := store.TryLease(context.Background(), "images/"+key, time.Hour); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = bs[0].Build(context.Background(), s)
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("Build = %v after %v, want a timeout error after ~0.5s", err, time.Since(start))
	}
}
