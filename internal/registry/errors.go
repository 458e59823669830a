package registry

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"strata/internal/errcode"
	"strata/internal/storage"
)

// ErrorCode is an error code as the registry answers it: an errcode.Code
// with the HTTP status of this package's table (the codes themselves are
// defined in internal/errcode, which knows no HTTP).
type ErrorCode errcode.Code

// The codes the handlers use, by their registry names.
const (
	CodeBlobUnknown             = ErrorCode(errcode.BlobUnknown)
	CodeBlobUploadInvalid       = ErrorCode(errcode.BlobUploadInvalid)
	CodeBlobUploadUnknown       = ErrorCode(errcode.BlobUploadUnknown)
	CodeDigestInvalid           = ErrorCode(errcode.DigestInvalid)
	CodeManifestBlobUnknown     = ErrorCode(errcode.ManifestBlobUnknown)
	CodeManifestInvalid         = ErrorCode(errcode.ManifestInvalid)
	CodeManifestUnknown         = ErrorCode(errcode.ManifestUnknown)
	CodeNameInvalid             = ErrorCode(errcode.NameInvalid)
	CodeNameUnknown             = ErrorCode(errcode.NameUnknown)
	CodeSizeInvalid             = ErrorCode(errcode.SizeInvalid)
	CodeUnauthorized            = ErrorCode(errcode.Unauthorized)
	CodeDenied                  = ErrorCode(errcode.Denied)
	CodeUnsupported             = ErrorCode(errcode.Unsupported)
	CodeTooManyRequests         = ErrorCode(errcode.TooManyRequests)
	CodeUnknown                 = ErrorCode(errcode.Unknown)
	CodePaginationNumberInvalid = ErrorCode(errcode.PaginationNumberInvalid)
)

type codeInfo struct {
	status  int
	message string // default message
}

// errorTable is the one table of error codes and their HTTP statuses.
// Handlers pick a code; a status override (UNSUPPORTED as 415, a long URL
// as 414) is set on the Error itself.
var errorTable = map[ErrorCode]codeInfo{
	CodeBlobUnknown:             {http.StatusNotFound, "blob unknown to registry"},
	CodeBlobUploadInvalid:       {http.StatusBadRequest, "blob upload invalid"},
	CodeBlobUploadUnknown:       {http.StatusNotFound, "blob upload unknown to registry"},
	CodeDigestInvalid:           {http.StatusBadRequest, "provided digest did not match uploaded content"},
	CodeManifestBlobUnknown:     {http.StatusBadRequest, "manifest references a manifest or blob unknown to registry"},
	CodeManifestInvalid:         {http.StatusBadRequest, "manifest invalid"},
	CodeManifestUnknown:         {http.StatusNotFound, "manifest unknown to registry"},
	CodeNameInvalid:             {http.StatusBadRequest, "invalid repository name"},
	CodeNameUnknown:             {http.StatusNotFound, "repository name not known to registry"},
	CodeSizeInvalid:             {http.StatusBadRequest, "provided length did not match content length"},
	CodeUnauthorized:            {http.StatusUnauthorized, "authentication required"},
	CodeDenied:                  {http.StatusForbidden, "requested access to the resource is denied"},
	CodeUnsupported:             {http.StatusMethodNotAllowed, "the operation is unsupported"},
	CodeTooManyRequests:         {http.StatusTooManyRequests, "too many requests"},
	CodeUnknown:                 {http.StatusInternalServerError, "unknown error"},
	CodePaginationNumberInvalid: {http.StatusBadRequest, "invalid number of results requested"},
}

// ErrorCodes returns every code of the table, sorted.
func ErrorCodes() []ErrorCode {
	codes := make([]ErrorCode, 0, len(errorTable))
	for c := range errorTable {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	return codes
}

// Status is the HTTP status of the code (500 for a code not in the table).
func (c ErrorCode) Status() int {
	if info, ok := errorTable[c]; ok {
		return info.status
	}
	return http.StatusInternalServerError
}

// Known reports whether c is in the table.
func (c ErrorCode) Known() bool {
	_, ok := errorTable[c]
	return ok
}

// Error is a registry error as sent to clients. Handlers return it; the
// dispatcher writes it.
type Error struct {
	Code    ErrorCode
	Message string // defaults to the table's message for Code
	Detail  any    // optional, any JSON value
	// HTTPStatus overrides the table's status when non-zero.
	HTTPStatus int
}

// NewError returns an Error with code and message ("" for the default).
func NewError(code ErrorCode, message string) *Error {
	return &Error{Code: code, Message: message}
}

// WithDetail sets the detail and returns e.
func (e *Error) WithDetail(detail any) *Error { e.Detail = detail; return e }

// WithStatus overrides the HTTP status and returns e.
func (e *Error) WithStatus(status int) *Error { e.HTTPStatus = status; return e }

// Error implements error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.message() }

// ErrorCode returns the code; it makes Error one of the errors the handler
// maps by code.
func (e *Error) ErrorCode() string { return string(e.Code) }

// Status is the HTTP status of the response.
func (e *Error) Status() int {
	if e.HTTPStatus != 0 {
		return e.HTTPStatus
	}
	return e.Code.Status()
}

func (e *Error) message() string {
	if e.Message != "" {
		return e.Message
	}
	if info, ok := errorTable[e.Code]; ok {
		return info.message
	}
	return string(e.Code)
}

// errorBody is the JSON body of an error response.
type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	Detail  any       `json:"detail,omitempty"`
}

// mapError turns any error into the Error sent to the client. internal
// reports that the real error must be logged and was not shown.
//
//   - *Error is sent as is.
//   - An error implementing ErrorCode() string (found with errors.As) gets
//     that code (UNKNOWN if the code is not in the table), its Error() text
//     as the message, the status of an optional HTTPStatus() int method
//     (400-599) and the detail of an optional ErrorDetail() any method.
//   - context.DeadlineExceeded: 504 UNKNOWN "timed out".
//   - context.Canceled: 499-style; sent as 503 UNKNOWN (the client is
//     usually gone).
//   - Anything else: 500 UNKNOWN "internal error".
//
// ServeHTTP then lets the error address the client (see addressed).
func mapError(err error) (e *Error, internal bool) {
	var re *Error
	if errors.As(err, &re) {
		return re, false
	}
	if c, ok := errcode.Of(err); ok {
		code := ErrorCode(c)
		if !code.Known() {
			code = CodeUnknown
		}
		e := &Error{Code: code, Message: err.Error()}
		var st interface{ HTTPStatus() int }
		if errors.As(err, &st) {
			if s := st.HTTPStatus(); s >= 400 && s <= 599 {
				e.HTTPStatus = s
			}
		}
		var det interface{ ErrorDetail() any }
		if errors.As(err, &det) {
			e.Detail = det.ErrorDetail()
		}
		return e, false
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeUnknown, Message: "timed out", HTTPStatus: http.StatusGatewayTimeout}, true
	case errors.Is(err, context.Canceled):
		return &Error{Code: CodeUnknown, Message: "request canceled", HTTPStatus: http.StatusServiceUnavailable}, true
	}
	return &Error{Code: CodeUnknown, Message: "internal error"}, true
}

// addressed gives an error that can say things the way the client
// addressed the registry (a MessageFor(host, repo, ref string) string
// method, found with errors.As: the pull command of a renamed package's
// replacement, say) that message, for the request's host and repository.
func addressed(e *Error, err error, r *http.Request) *Error {
	var af interface {
		MessageFor(host, repo, ref string) string
	}
	if !errors.As(err, &af) {
		return e
	}
	rt, perr := parsePath(r.URL.EscapedPath())
	if perr != nil || rt.name == "" {
		return e
	}
	c := *e
	c.Message = af.MessageFor(r.Host, rt.name, rt.ref)
	return &c
}

// isRegistryError reports whether err is already a client-facing Error.
func isRegistryError(err error) bool {
	var re *Error
	return errors.As(err, &re)
}

// faultError is what a client sees of a storage fault: a spec error body
// that says storage failed and that a retry may work, without the server's
// paths or error text. A full disk or quota is 507 Insufficient Storage; a
// read-only filesystem or an I/O error 503.
func faultError(f storage.Fault) *Error {
	switch f.Kind {
	case storage.FaultNoSpace, storage.FaultQuota:
		return &Error{Code: CodeUnknown, Message: "the registry's storage is full; retry once space is freed", HTTPStatus: http.StatusInsufficientStorage}
	case storage.FaultReadOnly:
		return &Error{Code: CodeUnknown, Message: "the registry's storage is read-only; retry later", HTTPStatus: http.StatusServiceUnavailable}
	}
	return &Error{Code: CodeUnknown, Message: "the registry's storage failed to read or write; retry later", HTTPStatus: http.StatusServiceUnavailable}
}

// writeError writes e as a spec error response.
func writeError(w http.ResponseWriter, r *http.Request, e *Error) {
	body, err := json.Marshal(errorBody{Errors: []errorEntry{{Code: e.Code, Message: e.message(), Detail: e.Detail}}})
	if err != nil { // a Detail that does not marshal
		body, _ = json.Marshal(errorBody{Errors: []errorEntry{{Code: e.Code, Message: e.message()}}})
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", itoa(int64(len(body))))
	h.Del("Docker-Content-Digest")
	h.Del("Content-Range")
	h.Del("ETag")
	h.Del("Cache-Control")
	h.Del("Location")
	w.WriteHeader(e.Status())
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}
