package registry

import (
	"fmt"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Limits on names and URLs.
const (
	// MaxNameLength is the longest repository name accepted.
	MaxNameLength = 255
	// MaxURILength is the longest request URI accepted (414 beyond).
	MaxURILength = 8 << 10
)

// routeKind says which endpoint a path addresses.
type routeKind int

const (
	routeBase      routeKind = iota // /v2/
	routeManifest                   // /v2/<name>/manifests/<ref>
	routeBlob                       // /v2/<name>/blobs/<digest>
	routeUploads                    // /v2/<name>/blobs/uploads/
	routeUpload                     // /v2/<name>/blobs/uploads/<id>
	routeTags                       // /v2/<name>/tags/list
	routeReferrers                  // /v2/<name>/referrers/<digest>
	numRouteKinds
)

var routeNames = [...]string{"base", "manifest", "blob", "uploads", "upload", "tags", "referrers"}

func (k routeKind) String() string {
	if k >= 0 && int(k) < len(routeNames) {
		return routeNames[k]
	}
	return fmt.Sprintf("route(%d)", int(k))
}

// route is a parsed request path. Name and references are validated.
type route struct {
	kind routeKind
	name string // repository name
	// ref is the tag or digest of a manifest route, the digest of a blob
	// or referrers route, the upload id of an upload route.
	ref string
	// digest is set when ref is a digest (always for blob and referrers).
	digest v1.Hash
}

// isDigest reports whether the route's reference is a digest.
func (rt route) isDigest() bool { return rt.digest.Algorithm != "" }

var (
	nameComponent = `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`
	nameRE        = regexp.MustCompile(`^` + nameComponent + `(?:/` + nameComponent + `)*$`)
	tagRE         = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	uploadIDRE    = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)
)

// ValidName reports whether name is a valid repository name: the spec's
// regular expression and at most MaxNameLength characters.
func ValidName(name string) bool {
	return len(name) <= MaxNameLength && matchName(name)
}

// matchName is nameRE without the regexp engine (the pull hot path parses
// a name per request): components of lower-case alphanumeric runs joined
// by ".", "_", "__" or one or more "-", separated by "/". A fuzz test
// checks it against nameRE.
func matchName(name string) bool {
	if name == "" {
		return false
	}
	for len(name) > 0 {
		comp := name
		if i := strings.IndexByte(name, '/'); i >= 0 {
			comp, name = name[:i], name[i+1:]
			if name == "" {
				return false // trailing slash
			}
		} else {
			name = ""
		}
		if !matchComponent(comp) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func matchComponent(c string) bool {
	if c == "" || !isAlnum(c[0]) || !isAlnum(c[len(c)-1]) {
		return false
	}
	for i := 0; i < len(c); {
		if isAlnum(c[i]) {
			i++
			continue
		}
		j := i
		for j < len(c) && !isAlnum(c[j]) {
			j++
		}
		sep := c[i:j]
		switch {
		case sep == "." || sep == "_" || sep == "__":
		case strings.Trim(sep, "-") == "":
		default:
			return false
		}
		i = j
	}
	return true
}

// ValidTag reports whether tag is a valid tag.
func ValidTag(tag string) bool { return matchTag(tag) }

// matchTag is tagRE without the regexp engine.
func matchTag(tag string) bool {
	if len(tag) == 0 || len(tag) > 128 {
		return false
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
		if i > 0 {
			ok = ok || c == '.' || c == '-'
		}
		if !ok {
			return false
		}
	}
	return true
}

// ParseDigest parses a digest strictly: "sha256:" and 64 lower-case hex
// digits, or "sha512:" and 128. Anything else is a DIGEST_INVALID error.
func ParseDigest(s string) (v1.Hash, error) {
	alg, hex, ok := strings.Cut(s, ":")
	if !ok {
		return v1.Hash{}, NewError(CodeDigestInvalid, "invalid digest: missing algorithm").WithDetail(map[string]string{"digest": truncate(s, 200)})
	}
	switch alg {
	case "sha256":
		h, err := v1.NewHash(s)
		if err != nil {
			return v1.Hash{}, NewError(CodeDigestInvalid, "invalid sha256 digest").WithDetail(map[string]string{"digest": truncate(s, 200)})
		}
		return h, nil
	case "sha512":
		if len(hex) != 128 || strings.Trim(hex, "0123456789abcdef") != "" {
			return v1.Hash{}, NewError(CodeDigestInvalid, "invalid sha512 digest").WithDetail(map[string]string{"digest": truncate(s, 200)})
		}
		return v1.Hash{Algorithm: alg, Hex: hex}, nil
	}
	return v1.Hash{}, NewError(CodeDigestInvalid, "unsupported digest algorithm").WithDetail(map[string]string{"algorithm": truncate(alg, 64)})
}

// parsePath parses the (escaped) URL path of a request into a route.
//
// Names may hold slashes, so the endpoint is found from the end: the last
// "/manifests/", "/blobs/", "/referrers/" or a trailing "/tags/list". Names
// and references are validated here, so handlers never see a name or key
// that could escape the store: a "..", "." or empty component (double
// slash) fails the name expression, and any percent-encoding in the path is
// refused outright (no valid name, tag or digest needs it).
func parsePath(escapedPath string) (route, error) {
	if strings.Contains(escapedPath, "%") {
		return route{}, NewError(CodeNameInvalid, "invalid repository name: percent-encoding is not allowed in the path")
	}
	if escapedPath == "/v2" || escapedPath == "/v2/" {
		return route{kind: routeBase}, nil
	}
	rest, ok := strings.CutPrefix(escapedPath, "/v2/")
	if !ok {
		return route{}, errNoEndpoint()
	}

	// Find the endpoint marker closest to the end.
	kind, at, after := routeKind(-1), -1, ""
	for _, m := range []struct {
		marker string
		kind   routeKind
	}{
		{"/manifests/", routeManifest},
		{"/blobs/", routeBlob},
		{"/referrers/", routeReferrers},
	} {
		if i := strings.LastIndex(rest, m.marker); i > at {
			kind, at, after = m.kind, i, rest[i+len(m.marker):]
		}
	}
	if strings.HasSuffix(rest, "/tags/list") {
		if i := len(rest) - len("/tags/list"); i > at {
			kind, at, after = routeTags, i, ""
		}
	}
	if at < 0 {
		return route{}, errNoEndpoint()
	}
	name := rest[:at]
	if len(name) > MaxNameLength {
		return route{}, NewError(CodeNameInvalid, fmt.Sprintf("invalid repository name: longer than %d characters", MaxNameLength))
	}
	if !matchName(name) {
		return route{}, NewError(CodeNameInvalid, "invalid repository name").WithDetail(map[string]string{"name": truncate(name, 255)})
	}
	rt := route{kind: kind, name: name}
	switch kind {
	case routeTags:
		return rt, nil
	case routeManifest:
		rt.ref = after
		if strings.Contains(after, ":") {
			d, err := ParseDigest(after)
			if err != nil {
				return route{}, err
			}
			rt.digest = d
			return rt, nil
		}
		if !matchTag(after) {
			return route{}, NewError(CodeManifestUnknown, "invalid tag").WithDetail(map[string]string{"tag": truncate(after, 200)})
		}
		return rt, nil
	case routeBlob:
		if after == "uploads/" || after == "uploads" {
			rt.kind = routeUploads
			return rt, nil
		}
		if id, ok := strings.CutPrefix(after, "uploads/"); ok {
			if !uploadIDRE.MatchString(id) {
				return route{}, NewError(CodeBlobUploadUnknown, "invalid upload id")
			}
			rt.kind, rt.ref = routeUpload, id
			return rt, nil
		}
		fallthrough
	case routeReferrers:
		d, err := ParseDigest(after)
		if err != nil {
			return route{}, err
		}
		rt.ref, rt.digest = after, d
		return rt, nil
	}
	return route{}, errNoEndpoint()
}

// errNoEndpoint answers a path that addresses no endpoint.
func errNoEndpoint() *Error { return NewError(CodeNameUnknown, "no such endpoint") }

// truncate shortens s for error details and logs.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
