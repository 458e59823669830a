package errcode_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"strata/internal/errcode"
)

func TestAll(t *testing.T) {
	codes := errcode.All()
	if len(codes) != 16 {
		t.Errorf("All() has %d codes, want 16: %q", len(codes), codes)
	}
	if !slices.IsSorted(codes) || len(slices.Compact(slices.Clone(codes))) != len(codes) {
		t.Errorf("All() is not sorted and unique: %q", codes)
	}
	for _, c := range []errcode.Code{errcode.ManifestUnknown, errcode.NameInvalid, errcode.Unknown, errcode.PaginationNumberInvalid} {
		if !slices.Contains(codes, c) {
			t.Errorf("All() lacks %s", c)
		}
	}
}

type coded struct{ code string }

func (e coded) Error() string     { return "coded " + e.code }
func (e coded) ErrorCode() string { return e.code }

func TestOf(t *testing.T) {
	err := fmt.Errorf("outer: %w", coded{string(errcode.ManifestUnknown)})
	if c, ok := errcode.Of(err); !ok || c != errcode.ManifestUnknown {
		t.Errorf("Of(wrapped) = %q, %v; want MANIFEST_UNKNOWN, true", c, ok)
	}
	if c, ok := errcode.Of(errors.New("plain")); ok || c != "" {
		t.Errorf("Of(plain) = %q, %v; want \"\", false", c, ok)
	}
}
