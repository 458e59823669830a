package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// ErrLeaseHeld is returned (wrapped) by TryLease when another owner holds
// a valid lease on the name.
var ErrLeaseHeld = errors.New("storage: lease held by another owner")

// ErrLeaseLost is returned (wrapped) by Renew when the lease expired and
// another owner took it.
var ErrLeaseLost = errors.New("storage: lease lost")

// Leaser is implemented by stores that can grant leases shared by every
// process that uses the same storage (replicas on one bucket): a lease is
// a time-limited claim on a name, held by one owner at a time, that its
// holder renews while it works and releases when done. An owner that dies
// stops renewing and its lease expires after its ttl.
//
// Leases coordinate work (build an image once); they are not needed for
// safety: staged writes are atomic whatever the leases say.
type Leaser interface {
	// TryLease takes the lease on name (a valid key) for ttl, or returns
	// an error wrapping ErrLeaseHeld when another owner holds a valid one.
	TryLease(ctx context.Context, name string, ttl time.Duration) (Lease, error)
}

// Lease is a lease held by this process.
type Lease interface {
	// Renew extends the lease by its ttl from now, or returns an error
	// wrapping ErrLeaseLost when it expired and another owner took it.
	Renew(ctx context.Context) error
	// Release gives the lease up. Releasing a lost lease does nothing.
	Release(ctx context.Context) error
}

// leaseBody is the content of a lease object.
type leaseBody struct {
	Owner string `json:"owner"`
	TTLms int64  `json:"ttlMs"`
}

// leaseSettle is how long the fallback of TryLease waits before it reads
// its lease back (stores without conditional writes only).
const leaseSettle = 300 * time.Millisecond

// TryLease implements Leaser with a lease object "_locks/<name>" under the
// prefix, holding the owner and the ttl.
//
// The lease is valid while the object's Last-Modified plus its ttl lies
// after the store's current time (the Date of the answer), so replicas'
// clocks do not matter, only the store's. Taking a free name is a PUT with
// If-None-Match: * and taking over an expired lease a PUT with If-Match:
// <its ETag>; renewing is a PUT with If-Match: <our ETag>. The store
// serialises conditional writes, so of two replicas that race for a name
// exactly one wins (AWS S3 since 2024, MinIO, Ceph RGW and R2 honour these
// headers).
//
// On a store that ignores conditional writes (NewS3 probes for it; see
// ConditionalWrites) TryLease falls back to write-then-read-back: it writes
// its lease when none is valid, waits leaseSettle and keeps the lease only
// if the object still names it. Two replicas racing within that window can
// then both believe they hold the lease; the cost is a duplicate build of
// identical content, never corruption.
func (s *S3) TryLease(ctx context.Context, name string, ttl time.Duration) (Lease, error) {
	if err := CheckKey(name); err != nil {
		return nil, err
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("storage: lease %q: ttl %v is below one second", name, ttl)
	}
	l := &s3Lease{s: s, name: name, obj: s.prefix + locksDir + "/" + name, ttl: ttl, owner: randomID()}
	if !s.condWrite {
		return l, l.tryUnconditional(ctx)
	}
	for range 4 {
		err := l.put(ctx, func(o *minio.PutObjectOptions) { o.SetMatchETagExcept("*") })
		if err == nil {
			return l, nil
		}
		if !isPreconditionFailed(err) {
			return nil, err
		}
		cur, err := l.read(ctx)
		if errors.Is(err, ErrNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, err
		}
		if cur.valid {
			return nil, fmt.Errorf("lease %q: %w (valid until %s)", name, ErrLeaseHeld, cur.expires.Format(time.RFC3339))
		}
		// Expired: take it over, unless another replica does first.
		err = l.put(ctx, func(o *minio.PutObjectOptions) { o.SetMatchETag(cur.etag) })
		if err == nil {
			return l, nil
		}
		if isPreconditionFailed(err) {
			return nil, fmt.Errorf("lease %q: %w", name, ErrLeaseHeld)
		}
		if !isNoSuchKey(err) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("lease %q: %w (contended)", name, ErrLeaseHeld)
}

// s3Lease is a lease object held by this process.
type s3Lease struct {
	s     *S3
	name  string
	obj   string
	ttl   time.Duration
	owner string
	mu    sync.Mutex
	etag  string // of our lease object, once written
}

// leaseState is a lease object as read.
type leaseState struct {
	owner   string
	etag    string
	expires time.Time
	valid   bool
}

// put writes our lease object with the condition cond.
func (l *s3Lease) put(ctx context.Context, cond func(*minio.PutObjectOptions)) error {
	raw, _ := json.Marshal(leaseBody{Owner: l.owner, TTLms: l.ttl.Milliseconds()})
	o := minio.PutObjectOptions{ContentType: "application/json"}
	if cond != nil {
		cond(&o)
	}
	info, err := l.s.core.PutObject(ctx, l.s.bucket, l.obj, bytes.NewReader(raw), int64(len(raw)), "", "", o)
	if err != nil {
		if isPreconditionFailed(err) || isNoSuchKey(err) {
			return err // the caller tells these apart
		}
		return fmt.Errorf("storage: lease %q: %w", l.name, s3Err(err))
	}
	l.etag = info.ETag
	return nil
}

// read returns the current lease object of the name.
func (l *s3Lease) read(ctx context.Context) (leaseState, error) {
	body, oi, hdr, err := l.s.core.GetObject(ctx, l.s.bucket, l.obj, minio.GetObjectOptions{})
	if err != nil {
		if isNoSuchKey(err) {
			return leaseState{}, fmt.Errorf("lease %q: %w", l.name, ErrNotFound)
		}
		return leaseState{}, fmt.Errorf("storage: lease %q: %w", l.name, s3Err(err))
	}
	raw, err := io.ReadAll(io.LimitReader(body, 4096))
	body.Close()
	if err != nil {
		return leaseState{}, fmt.Errorf("storage: lease %q: %w", l.name, err)
	}
	var lb leaseBody
	if json.Unmarshal(raw, &lb) != nil || lb.TTLms <= 0 {
		// Not a lease we understand: treat it as expired so it cannot
		// block builds forever.
		return leaseState{etag: oi.ETag}, nil
	}
	now, err := http.ParseTime(hdr.Get("Date"))
	if err != nil {
		now = time.Now()
	}
	exp := oi.LastModified.Add(time.Duration(lb.TTLms) * time.Millisecond)
	return leaseState{owner: lb.Owner, etag: oi.ETag, expires: exp, valid: exp.After(now)}, nil
}

// tryUnconditional is TryLease without conditional writes (see TryLease).
func (l *s3Lease) tryUnconditional(ctx context.Context) error {
	cur, err := l.read(ctx)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err == nil && cur.valid {
		return fmt.Errorf("lease %q: %w", l.name, ErrLeaseHeld)
	}
	if err := l.put(ctx, nil); err != nil {
		return err
	}
	select {
	case <-time.After(leaseSettle):
	case <-ctx.Done():
		return ctx.Err()
	}
	cur, err = l.read(ctx)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil || cur.owner != l.owner {
		return fmt.Errorf("lease %q: %w", l.name, ErrLeaseHeld)
	}
	return nil
}

// Renew implements Lease.
func (l *s3Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.etag == "" {
		return fmt.Errorf("lease %q: %w", l.name, ErrLeaseLost)
	}
	if !l.s.condWrite {
		cur, err := l.read(ctx)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err != nil || cur.owner != l.owner {
			l.etag = ""
			return fmt.Errorf("lease %q: %w", l.name, ErrLeaseLost)
		}
		return l.put(ctx, nil)
	}
	etag := l.etag
	err := l.put(ctx, func(o *minio.PutObjectOptions) { o.SetMatchETag(etag) })
	if isPreconditionFailed(err) || isNoSuchKey(err) {
		l.etag = ""
		return fmt.Errorf("lease %q: %w", l.name, ErrLeaseLost)
	}
	return err
}

// Release implements Lease: it deletes the lease object if it is still
// ours. (A check then a delete: a lease that expired and was taken over
// in between would be deleted too; holders renew long before expiry, so
// that needs a holder stalled for a whole ttl.)
func (l *s3Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.etag == "" {
		return nil
	}
	etag := l.etag
	l.etag = ""
	oi, err := l.s.client.StatObject(ctx, l.s.bucket, l.obj, minio.StatObjectOptions{})
	if err != nil {
		if isNoSuchKey(err) {
			return nil
		}
		return fmt.Errorf("storage: release lease %q: %w", l.name, s3Err(err))
	}
	if oi.ETag != etag {
		return nil // lost
	}
	if err := l.s.client.RemoveObject(ctx, l.s.bucket, l.obj, minio.RemoveObjectOptions{}); err != nil && !isNoSuchKey(err) {
		return fmt.Errorf("storage: release lease %q: %w", l.name, s3Err(err))
	}
	return nil
}

// probeConditionalWrites reports whether the store rejects a PUT with
// If-None-Match: * over an existing object.
func (s *S3) probeConditionalWrites(ctx context.Context) (bool, error) {
	obj := s.prefix + locksDir + "/.probe-" + randomID()
	put := func() error {
		o := minio.PutObjectOptions{}
		o.SetMatchETagExcept("*")
		_, err := s.core.PutObject(ctx, s.bucket, obj, bytes.NewReader(nil), 0, "", "", o)
		return err
	}
	if err := put(); err != nil {
		return false, fmt.Errorf("storage: s3: write to bucket %q: %w", s.bucket, s3Err(err))
	}
	defer s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, obj, minio.RemoveObjectOptions{})
	err := put()
	if err == nil {
		return false, nil
	}
	if isPreconditionFailed(err) {
		return true, nil
	}
	return false, fmt.Errorf("storage: s3: probe conditional writes: %w", s3Err(err))
}
