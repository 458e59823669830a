package storage

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// Fault kinds: what went wrong in the storage underneath, as opposed to a
// missing key or a bad request. They are the values of a metric label, so
// the set is small and fixed.
const (
	FaultNoSpace  = "no_space"  // ENOSPC: the filesystem is full
	FaultQuota    = "quota"     // EDQUOT: a disk quota is exhausted
	FaultReadOnly = "read_only" // EROFS: the filesystem is read-only
	FaultIO       = "io"        // EIO: the device failed
)

// FaultKinds lists every fault kind.
var FaultKinds = []string{FaultNoSpace, FaultQuota, FaultReadOnly, FaultIO}

// Fault describes a storage fault found in an error chain.
type Fault struct {
	// Kind is one of the Fault* constants.
	Kind string
	// Path is the file the operation failed on, when the error names one
	// (for the operator's log only: never show it to a client).
	Path string
}

// FaultOf reports whether err is (or wraps) a storage fault: a full disk,
// an exhausted quota, a read-only filesystem or an I/O error. A backend
// whose errors are not syscall errors can wrap one of the errnos so that
// callers classify it the same way.
func FaultOf(err error) (Fault, bool) {
	if err == nil {
		return Fault{}, false
	}
	var f Fault
	switch {
	case errors.Is(err, syscall.ENOSPC):
		f.Kind = FaultNoSpace
	case errors.Is(err, syscall.EDQUOT):
		f.Kind = FaultQuota
	case errors.Is(err, syscall.EROFS):
		f.Kind = FaultReadOnly
	case errors.Is(err, syscall.EIO):
		f.Kind = FaultIO
	default:
		return Fault{}, false
	}
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		f.Path = pe.Path
	case errors.As(err, &le):
		f.Path = le.New
	}
	return f, true
}
