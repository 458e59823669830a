package builder

import (
	"errors"
	"sync"
	"time"

	"strata/internal/nix"
)

// maxFailures bounds the failure cache; when it is full of live entries a
// new failure is simply not remembered.
const maxFailures = 1024

// failures remembers, for a short time, images whose build failed in a way
// that the same inputs will fail again: an unknown, unfree or broken
// package, or a Nix build that exited with an error. Clients retry server
// errors (crane three times, with back-off), and without this each retry
// would run the failing Nix build again. Timeouts and cancellations are not
// remembered: they may well succeed the next time.
type failures struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]failure
}

type failure struct {
	err   error
	until time.Time
}

// get returns the remembered failure of key, if it is still fresh.
func (f *failures) get(key string) error {
	if f.ttl <= 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.m[key]
	if !ok {
		return nil
	}
	if time.Now().After(e.until) {
		delete(f.m, key)
		return nil
	}
	return e.err
}

// put remembers err for key when it is a failure that repeats.
func (f *failures) put(key string, err error) {
	if f.ttl <= 0 || !repeats(err) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[string]failure)
	}
	now := time.Now()
	if len(f.m) >= maxFailures {
		for k, e := range f.m {
			if now.After(e.until) {
				delete(f.m, k)
			}
		}
		if len(f.m) >= maxFailures {
			return
		}
	}
	f.m[key] = failure{err: err, until: now.Add(f.ttl)}
}

// repeats reports whether building the same inputs again fails the same
// way.
func repeats(err error) bool {
	var (
		be *nix.BuildError
		pe *nix.PackageError
		ue *nix.UnknownPackagesError
		ae *nix.AmbiguousPackageError
	)
	switch {
	case errors.As(err, &be):
		return !be.Timeout && !be.Canceled
	case errors.As(err, &pe), errors.As(err, &ue), errors.As(err, &ae):
		return true
	}
	return false
}
