package storage

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidKey is returned (wrapped) by every backend for a key that fails
// ValidKey, or that a backend reserves for itself. Nothing is read or
// written for such a key.
var ErrInvalidKey = errors.New("storage: invalid key")

// CheckKey returns nil for a valid key and an error wrapping ErrInvalidKey
// otherwise. Backends call it first in every method that takes a key.
func CheckKey(key string) error {
	if !ValidKey(key) {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	return nil
}

// CheckPrefix validates a List prefix: "" (everything), or a string whose
// complete components (all but the text after the last "/") are valid key
// components. The text after the last "/" is only a string filter.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if strings.HasPrefix(prefix, "/") || strings.ContainsAny(prefix, "\x00\\") {
		return fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
	}
	i := strings.LastIndexByte(prefix, '/')
	if i < 0 {
		return nil
	}
	if !ValidKey(prefix[:i]) {
		return fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
	}
	return nil
}
