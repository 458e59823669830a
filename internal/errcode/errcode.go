// Package errcode holds the error codes of the OCI distribution spec v1.1
// (plus UNKNOWN and the few non-spec codes strata answers) as typed
// constants, as distribution's registry/api/errcode does. It knows no HTTP:
// the registry maps each code to a status and a default message in its one
// table (internal/registry/errors.go).
//
// A domain error carries its code with a method ErrorCode() string that
// returns string(one of these constants); Of finds it in an error chain.
// No other file spells a code (test/arch checks it).
package errcode

import (
	"errors"
	"slices"
)

// Code is an error code as sent in a spec error body.
type Code string

// The codes of the distribution spec, UNKNOWN, and
// PAGINATION_NUMBER_INVALID (not in the spec; CNCF distribution answers it
// for a bad "n" on tags/list).
const (
	BlobUnknown             Code = "BLOB_UNKNOWN"
	BlobUploadInvalid       Code = "BLOB_UPLOAD_INVALID"
	BlobUploadUnknown       Code = "BLOB_UPLOAD_UNKNOWN"
	DigestInvalid           Code = "DIGEST_INVALID"
	ManifestBlobUnknown     Code = "MANIFEST_BLOB_UNKNOWN"
	ManifestInvalid         Code = "MANIFEST_INVALID"
	ManifestUnknown         Code = "MANIFEST_UNKNOWN"
	NameInvalid             Code = "NAME_INVALID"
	NameUnknown             Code = "NAME_UNKNOWN"
	SizeInvalid             Code = "SIZE_INVALID"
	Unauthorized            Code = "UNAUTHORIZED"
	Denied                  Code = "DENIED"
	Unsupported             Code = "UNSUPPORTED"
	TooManyRequests         Code = "TOOMANYREQUESTS"
	Unknown                 Code = "UNKNOWN"
	PaginationNumberInvalid Code = "PAGINATION_NUMBER_INVALID"
)

// All returns every code, sorted.
func All() []Code {
	codes := []Code{
		BlobUnknown, BlobUploadInvalid, BlobUploadUnknown, DigestInvalid,
		ManifestBlobUnknown, ManifestInvalid, ManifestUnknown, NameInvalid,
		NameUnknown, SizeInvalid, Unauthorized, Denied, Unsupported,
		TooManyRequests, Unknown, PaginationNumberInvalid,
	}
	slices.Sort(codes)
	return codes
}

// Of returns the code of the first error in err's chain that has a method
// ErrorCode() string, and whether there was one.
func Of(err error) (Code, bool) {
	var c interface{ ErrorCode() string }
	if errors.As(err, &c) {
		return Code(c.ErrorCode()), true
	}
	return "", false
}
