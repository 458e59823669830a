package storage

import (
	"errors"
	"sync"
)

var errWriterDone = errors.New("storage: writer already committed or cancelled")

// staging is the bookkeeping every backend's staged writer shares: one
// lock, the bytes written, the first write error (sticky: every later
// Write and the Commit return it) and whether the writer is committed or
// cancelled. Backends embed it and keep only how they hold the bytes.
type staging struct {
	mu   sync.Mutex
	size int64
	err  error // first write error; sticky
	done bool  // committed or cancelled
}

// write passes p to put, the backend's store of staged bytes, unless the
// writer is done or has failed before, and counts what put took.
func (s *staging) write(p []byte, put func([]byte) (int, error)) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return 0, errWriterDone
	}
	if s.err != nil {
		return 0, s.err
	}
	n, err := put(p)
	s.size += int64(n)
	if err != nil {
		s.err = err
		return n, err
	}
	return n, nil
}

// Size implements Writer.
func (s *staging) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// finish begins a Commit or Cancel: it locks s and marks it done, and
// reports true; the caller unlocks s.mu when it is through. It reports
// false, with s unlocked, when s was done already.
func (s *staging) finish() bool {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return false
	}
	s.done = true
	return true
}
