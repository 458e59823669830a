package builder

import (
	"errors"
	"fmt"
	"strings"

	"strata/internal/errcode"
	"strata/internal/nix"
)

// PlatformError is a build that failed for one platform.
type PlatformError struct {
	Platform string
	Err      error
}

func (e *PlatformError) Error() string { return e.Platform + ": " + e.Err.Error() }
func (e *PlatformError) Unwrap() error { return e.Err }

// ErrorCode passes the underlying error's code through.
func (e *PlatformError) ErrorCode() string {
	if c, ok := errcode.Of(e.Err); ok {
		return string(c)
	}
	return string(errcode.Unknown)
}

// NotConfiguredError is a request for a platform the server does not build.
type NotConfiguredError struct {
	Platform   string
	Configured []string
}

func (e *NotConfiguredError) Error() string {
	return fmt.Sprintf("platform %s is not configured on this server (it builds %s); ask for one of those, or start the server with --platforms including %s",
		e.Platform, strings.Join(e.Configured, ", "), e.Platform)
}

// ErrorCode is the distribution-spec code for an image that cannot exist here.
func (e *NotConfiguredError) ErrorCode() string { return string(errcode.ManifestUnknown) }

// nixLogTail is the end of a failed Nix build's log, for the error log.
func nixLogTail(err error) string {
	var be *nix.BuildError
	if errors.As(err, &be) {
		return be.Log
	}
	return ""
}
