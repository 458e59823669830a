package builder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"strata/internal/storage"
)

// Cross-replica coordination. Several strata processes on one store (two
// replicas on one bucket) each run their own singleflight; to build each
// image once in total, a process takes a lease on the image key in the
// store (storage.Leaser) before it builds. One that finds another's valid
// lease waits for that build's record to appear and serves it.
//
// Guarantees and limits:
//   - Safety never depends on the lease: every write is staged and atomic,
//     and a build's output is a function of its inputs, so two builds of
//     one image store identical objects. The lease only saves the work.
//   - A holder renews its lease every leaseRenew; one that dies stops, and
//     after leaseTTL a waiter takes the lease over and builds.
//   - A build that fails releases the lease without a record; a waiter
//     then takes the lease and builds (and fails) itself, so a failing
//     image is attempted once per waiting replica, not once in total.
//   - Layers shared by two different images built at once on two replicas
//     may be packed by both (identical bytes, one blob).
//   - Stores without leases (the filesystem) rely on the in-process
//     singleflight alone.

const (
	// leaseTTL is how long a build lease lasts without renewal.
	leaseTTL = 30 * time.Second
	// leaseRenew is how often a holder renews its lease.
	leaseRenew = 10 * time.Second
	// leasePollMax is the longest pause between two looks of a waiter.
	leasePollMax = 2 * time.Second
	// defaultLeaseWait is Options.LeaseWait's default.
	defaultLeaseWait = 15 * time.Minute
)

// coordinate returns once this process may build the image under key:
// with release, to call when the build is over (stored or failed), or with
// done and the result when another process built the image meanwhile.
func (b *Builder) coordinate(ctx context.Context, key, name string) (release func(), r Result, done bool, err error) {
	noop := func() {}
	lr, ok := b.opts.Store.(storage.Leaser)
	if !ok {
		return noop, Result{}, false, nil
	}
	wait := b.opts.LeaseWait
	if wait <= 0 {
		wait = defaultLeaseWait
	}
	deadline := time.Now().Add(wait)
	delay := 100 * time.Millisecond
	waiting := false
	for {
		l, err := lr.TryLease(ctx, storage.ImageLeaseName(key), leaseTTL)
		if err == nil {
			// The holder before us may have stored the image just now.
			if r, err := b.loadResult(ctx, key); err == nil {
				releaseLease(ctx, l)
				return nil, r, true, nil
			}
			return b.keepLease(ctx, l, name), Result{}, false, nil
		}
		if !errors.Is(err, storage.ErrLeaseHeld) {
			// Leases are an optimisation; build without one.
			b.opts.Log.Warn("build lease unavailable; building without cross-replica coordination", "image", name, "err", err)
			return noop, Result{}, false, nil
		}
		if !waiting {
			waiting = true
			b.opts.Log.Info("waiting for another replica's build", "image", name)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, Result{}, false, ctx.Err()
		}
		delay = min(2*delay, leasePollMax)
		if r, err := b.loadResult(ctx, key); err == nil {
			b.opts.Log.Info("built by another replica", "image", name, "digest", r.OCI.Digest)
			return nil, r, true, nil
		}
		if time.Now().After(deadline) {
			return nil, Result{}, false, fmt.Errorf("builder: image %s: another replica has been building it for more than %v; try again later", name, wait)
		}
	}
}

// keepLease renews l until the returned function is called, which
// releases it.
func (b *Builder) keepLease(ctx context.Context, l storage.Lease, name string) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(leaseRenew)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			rctx, cancel := context.WithTimeout(ctx, leaseRenew)
			err := l.Renew(rctx)
			cancel()
			if errors.Is(err, storage.ErrLeaseLost) {
				b.opts.Log.Warn("build lease lost; another replica may build the same image", "image", name)
				return
			}
			if err != nil {
				b.opts.Log.Warn("renewing build lease", "image", name, "err", err)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
			releaseLease(ctx, l)
		})
	}
}

// releaseLease releases l, best effort: an unreleased lease expires.
func releaseLease(ctx context.Context, l storage.Lease) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = l.Release(rctx)
}
