package publish

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Kind is the kind of place a Location names.
type Kind int

// The kinds of Location.
const (
	// KindRegistry is a registry reference REGISTRY/REPOSITORY[:TAG|@DIGEST].
	KindRegistry Kind = iota
	// KindOCI is an OCI image layout directory: oci:DIR[:REF].
	KindOCI
	// KindArchive is a docker-archive tarball: docker-archive:FILE[:REF].
	KindArchive
)

func (k Kind) String() string {
	switch k {
	case KindOCI:
		return "oci"
	case KindArchive:
		return "docker-archive"
	}
	return "registry"
}

// Location is a parsed image location: the one parser of "oci:",
// "docker-archive:" and registry references, for sources and destinations
// alike.
type Location struct {
	Kind Kind
	// Path is the directory (KindOCI) or the file (KindArchive).
	Path string
	// Ref is what follows the path: for KindOCI a ref.name annotation (a
	// tag) or a digest, for KindArchive REPO:TAG or a bare TAG. Default "".
	Ref string
	// Reference is the registry reference (KindRegistry only).
	Reference name.Reference
	// Raw is the string parsed.
	Raw string
}

func (l Location) String() string { return l.Raw }

// locationHelp says what ParseLocation takes.
const locationHelp = "want oci:DIR[:REF], docker-archive:FILE[:REF] or REGISTRY/REPOSITORY[:TAG|@DIGEST]"

// ParseLocation parses "oci:DIR[:REF]", "docker-archive:FILE[:REF]" or a
// registry reference (a leading "docker://" is dropped). A local path is
// split from its REF at the first colon after which the path exists, else
// at the first colon (a destination that does not exist yet). A registry
// reference may use plain HTTP when insecure is set or its host is loopback
// (see IsLoopback); every other host is HTTPS only.
func ParseLocation(s string, insecure bool) (Location, error) {
	loc := Location{Raw: s}
	switch {
	case strings.HasPrefix(s, "oci:"):
		loc.Kind = KindOCI
		loc.Path, loc.Ref = splitLocal(strings.TrimPrefix(s, "oci:"))
	case strings.HasPrefix(s, "docker-archive:"):
		loc.Kind = KindArchive
		loc.Path, loc.Ref = splitLocal(strings.TrimPrefix(s, "docker-archive:"))
	default:
		ref, err := ParseReference(strings.TrimPrefix(s, "docker://"), insecure)
		if err != nil {
			return Location{}, fmt.Errorf("%q: %w (%s)", s, err, locationHelp)
		}
		loc.Kind, loc.Reference = KindRegistry, ref
		return loc, nil
	}
	if loc.Path == "" {
		return Location{}, fmt.Errorf("%q: no path (%s)", s, locationHelp)
	}
	return loc, nil
}

// ParseReference parses a registry reference; see ParseLocation for when
// plain HTTP is allowed.
func ParseReference(s string, insecure bool) (name.Reference, error) {
	opts := []name.Option{name.WeakValidation}
	host, _, _ := strings.Cut(s, "/")
	if insecure || (strings.Contains(s, "/") && IsLoopback(host)) {
		opts = append(opts, name.Insecure)
	}
	return name.ParseReference(s, opts...)
}

// IsLoopback reports whether host (with or without a port, IPv6 in
// brackets or not) is exactly "localhost" or a loopback IP address, where
// plain HTTP is allowed as docker does. "localhost.evil.com" and
// "127.evil.com" are not loopback.
func IsLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// splitLocal splits "PATH[:REF]": at the first colon after which PATH
// exists on disk, else (a destination to create) at the first colon.
func splitLocal(s string) (path, ref string) {
	if _, err := os.Stat(s); err == nil {
		return s, ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] != ':' || i == 0 {
			continue
		}
		if _, err := os.Stat(s[:i]); err == nil {
			return s[:i], s[i+1:]
		}
	}
	if i := strings.IndexByte(s, ':'); i > 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}
