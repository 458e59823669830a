package registry_test

import (
	"slices"
	"strings"
	"testing"

	"strata/internal/registry"
)

func TestParseAccept(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{nil, nil},
		{[]string{""}, nil},
		{[]string{"application/json"}, []string{"application/json"}},
		{[]string{"a/b, c/d;q=0.5", "e/f"}, []string{"a/b", "c/d", "e/f"}},
		{[]string{"a/b;q=0", "c/d; q=0.0", "e/f;Q=0.000", "g/h;q=0.001"}, []string{"g/h"}},
		{[]string{"A/B", "a/b", " a/b ;charset=utf-8"}, []string{"a/b"}},
		{[]string{"*/*"}, []string{"*/*"}},
		{[]string{"garbage, /x, x/, ,, a/b"}, []string{"a/b"}},
		{[]string{"application/vnd.oci.image.manifest.v1+json;q=0.9,application/vnd.docker.distribution.manifest.v2+json"},
			[]string{"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"}},
	} {
		if got := registry.ParseAccept(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("ParseAccept(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParseAccept(f *testing.F) {
	f.Add("application/json", "a/b;q=0, c/d")
	f.Add("", "*/*;q=0.1")
	f.Fuzz(func(t *testing.T, a, b string) {
		got := registry.ParseAccept([]string{a, b})
		seen := map[string]bool{}
		for _, mt := range got {
			if mt == "" || mt != strings.ToLower(mt) || strings.ContainsAny(mt, ",; \t") || strings.Count(mt, "/") != 1 {
				t.Fatalf("ParseAccept(%q, %q) gave %q", a, b, mt)
			}
			if seen[mt] {
				t.Fatalf("duplicate %q", mt)
			}
			seen[mt] = true
		}
	})
}
