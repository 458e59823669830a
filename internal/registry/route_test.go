package registry

import (
	"strings"
	"testing"

	"strata/internal/storage"
)

func TestParsePath(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		path string
		kind routeKind
		name string
		ref  string
	}{
		{"/v2/", routeBase, "", ""},
		{"/v2", routeBase, "", ""},
		{"/v2/hello/manifests/latest", routeManifest, "hello", "latest"},
		{"/v2/a/b/c/manifests/" + d, routeManifest, "a/b/c", d},
		{"/v2/a/blobs/" + d, routeBlob, "a", d},
		{"/v2/a/blobs/uploads/", routeUploads, "a", ""},
		{"/v2/a/blobs/uploads/abc-123", routeUpload, "a", "abc-123"},
		{"/v2/a/tags/list", routeTags, "a", ""},
		{"/v2/a/referrers/" + d, routeReferrers, "a", d},
		{"/v2/manifests/manifests/manifests", routeManifest, "manifests", "manifests"},
		{"/v2/manifests/manifests/manifests/manifests", routeManifest, "manifests/manifests", "manifests"},
		{"/v2/a/manifests/b/blobs/" + d, routeBlob, "a/manifests/b", d},
		{"/v2/x/blobs/y/manifests/latest", routeManifest, "x/blobs/y", "latest"},
		{"/v2/x/manifests/y/tags/list", routeTags, "x/manifests/y", ""},
		{"/v2/a.b_c__d---e/f/manifests/Tag_1.0-rc", routeManifest, "a.b_c__d---e/f", "Tag_1.0-rc"},
	} {
		rt, err := parsePath(tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if rt.kind != tc.kind || rt.name != tc.name || rt.ref != tc.ref {
			t.Errorf("%s = %v %q %q, want %v %q %q", tc.path, rt.kind, rt.name, rt.ref, tc.kind, tc.name, tc.ref)
		}
	}
}

func TestParseDigest(t *testing.T) {
	good := []string{"sha256:" + strings.Repeat("0", 64), "sha512:" + strings.Repeat("f", 128)}
	bad := []string{"", "sha256", "sha256:", "sha256:" + strings.Repeat("0", 63), "sha256:" + strings.Repeat("A", 64),
		"sha512:" + strings.Repeat("0", 64), "sha384:" + strings.Repeat("0", 96), "SHA256:" + strings.Repeat("0", 64),
		"sha256:" + strings.Repeat("0", 64) + ":x", "sha256:" + strings.Repeat("g", 64)}
	for _, s := range good {
		if h, err := ParseDigest(s); err != nil || h.String() != s {
			t.Errorf("ParseDigest(%q) = %v, %v", s, h, err)
		}
	}
	for _, s := range bad {
		_, err := ParseDigest(s)
		e, ok := err.(*Error)
		if !ok || e.Code != CodeDigestInvalid {
			t.Errorf("ParseDigest(%q) = %v, want DIGEST_INVALID", s, err)
		}
	}
}

func TestDetectManifestRejects(t *testing.T) {
	for _, body := range []string{"", "null", "[]", `"x"`, `{"schemaVersion":"2"}`, `{"schemaVersion":2,"config":null,"layers":[]}`,
		`{"schemaVersion":2,"config":{},"layers":null}`, `{"schemaVersion":2,"manifests":{}}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}`} {
		if mt, err := detectManifest([]byte(body)); err == nil {
			t.Errorf("detectManifest(%s) = %q, want error", body, mt)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, s := range []string{"/v2/", "/v2/a/manifests/latest", "/v2/a/b/blobs/" + d, "/v2/a/blobs/uploads/x",
		"/v2/a/tags/list", "/v2/../blobs/" + d, "/v2/a//b/manifests/x", "/v2/a/%2e%2e/manifests/x",
		"/v2/a/manifests/" + d, "/v2/a/referrers/" + d, "/v2/a/blobs/sha512:" + strings.Repeat("0", 128)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := parsePath(path)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("parsePath(%q) error %T is not *Error", path, err)
			}
			return
		}
		if rt.kind == routeBase {
			return
		}
		if !ValidName(rt.name) {
			t.Fatalf("parsePath(%q) accepted name %q", path, rt.name)
		}
		if strings.Contains(rt.name, "..") || strings.Contains(rt.name, "//") || strings.Contains(path, "%") {
			t.Fatalf("parsePath(%q) accepted traversal", path)
		}
		switch rt.kind {
		case routeBlob, routeReferrers:
			if !rt.isDigest() || rt.digest.String() != rt.ref {
				t.Fatalf("parsePath(%q): digest %v ref %q", path, rt.digest, rt.ref)
			}
		case routeManifest:
			if !rt.isDigest() && !ValidTag(rt.ref) {
				t.Fatalf("parsePath(%q): bad tag %q", path, rt.ref)
			}
		case routeUpload:
			if !uploadIDRE.MatchString(rt.ref) {
				t.Fatalf("parsePath(%q): bad upload id %q", path, rt.ref)
			}
		}
		if rt.isDigest() {
			key := storage.BlobKey(rt.ref)
			if !storage.ValidKey(key) || !strings.HasPrefix(key, "blobs/sha") {
				t.Fatalf("parsePath(%q): digest %q gives key %q", path, rt.ref, key)
			}
		}
	})
}

// FuzzMatchName checks the hand-written name matcher against the spec's
// regular expression.
func FuzzMatchName(f *testing.F) {
	for _, s := range []string{"a", "a/b", "a.b", "a__b", "a---b", "a_.b", "a/", "/a", "a//b", "a-", "-a", "a..b", "a___b", "A", "a/b.c/d-e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := matchName(s), nameRE.MatchString(s); got != want {
			t.Fatalf("matchName(%q) = %v, regexp says %v", s, got, want)
		}
	})
}

// FuzzMatchTag checks the hand-written tag matcher against tagRE.
func FuzzMatchTag(f *testing.F) {
	for _, s := range []string{"latest", "v1.0", "_x", ".x", "-x", "a-b_c.D", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := matchTag(s), tagRE.MatchString(s); got != want {
			t.Fatalf("matchTag(%q) = %v, regexp says %v", s, got, want)
		}
	})
}
