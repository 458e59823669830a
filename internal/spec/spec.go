// Package spec turns an image name, as a registry client sends it, into what
// to build: the packages, the meta-packages and the platform.
//
// A name is a path of components separated by "/". Each component is a
// package attribute of the package set (dotted paths such as
// "python3pkgs.numpy" included) or one of the meta-packages:
//
//	shell       an interactive base (a shell and core utilities)
//	amd64       build for linux/amd64 only
//	arm64       build for linux/arm64 only
//	buildpacks  a Cloud Native Buildpacks run image
//	nix-snapshotter  an image for nix-snapshotter: its store paths are
//	            mounted from the node's Nix store, substituted from
//	            strata's Nix binary cache, instead of unpacked from layers
//
// The order of components and duplicates do not change the result: the
// package list is sorted and de-duplicated, so "hello/shell" and
// "shell/hello/hello" name the same image.
package spec

import (
	"fmt"
	"sort"
	"strings"

	"strata/internal/errcode"
)

// Meta-package names.
const (
	MetaShell      = "shell"
	MetaAmd64      = "amd64"
	MetaArm64      = "arm64"
	MetaBuildpacks = "buildpacks"
	// MetaNixSnapshotter asks for an image in nix-snapshotter's format.
	MetaNixSnapshotter = "nix-snapshotter"
)

// MaxNameLength is the longest repository name accepted, in bytes. The
// distribution spec advises clients to keep names under 256 characters.
const MaxNameLength = 255

// Spec is what an image name asks for.
type Spec struct {
	// Packages are the requested package attributes, sorted and unique,
	// meta-packages excluded.
	Packages []string
	// Shell is true when the name holds the shell meta-package.
	Shell bool
	// Buildpacks is true when the name holds the buildpacks meta-package.
	Buildpacks bool
	// NixSnapshotter is true when the name holds the nix-snapshotter
	// meta-package.
	NixSnapshotter bool
	// Platform is "linux/amd64" or "linux/arm64" when the name forces one
	// platform, else "" (every configured platform).
	Platform string
	// Ref selects the package-set revision: a tag, a git ref or a commit.
	// "latest" means the source's default.
	Ref string
}

// Error is a malformed name or reference.
type Error struct {
	Name   string
	Reason string
}

func (e *Error) Error() string {
	name := e.Name
	if len(name) > 80 {
		name = name[:80] + "..."
	}
	return fmt.Sprintf("invalid image name %q: %s", name, e.Reason)
}

// ErrorCode is the distribution-spec error code for a malformed name.
func (e *Error) ErrorCode() string { return string(errcode.NameInvalid) }

// Parse parses a repository name and a tag. An empty tag means "latest".
func Parse(name, tag string) (Spec, error) {
	if tag == "" {
		tag = "latest"
	}
	if len(name) > MaxNameLength {
		return Spec{}, &Error{name, fmt.Sprintf("longer than %d characters", MaxNameLength)}
	}
	if name == "" {
		return Spec{}, &Error{name, "empty name; ask for a package, e.g. shell/hello"}
	}
	if !validTag(tag) {
		return Spec{}, &Error{name + ":" + tag, "a tag is up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"}
	}
	s := Spec{Ref: tag}
	seen := map[string]bool{}
	for _, c := range strings.Split(name, "/") {
		if err := validComponent(c); err != "" {
			return Spec{}, &Error{name, err}
		}
		switch c {
		case MetaShell:
			s.Shell = true
			continue
		case MetaBuildpacks:
			s.Buildpacks = true
			continue
		case MetaNixSnapshotter:
			s.NixSnapshotter = true
			continue
		case MetaAmd64, MetaArm64:
			p := "linux/" + c
			if s.Platform != "" && s.Platform != p {
				return Spec{}, &Error{name, "asks for both amd64 and arm64; leave both out for a multi-platform image"}
			}
			s.Platform = p
			continue
		}
		if !seen[c] {
			seen[c] = true
			s.Packages = append(s.Packages, c)
		}
	}
	sort.Strings(s.Packages)
	if len(s.Packages) == 0 && !s.Shell && !s.Buildpacks {
		return Spec{}, &Error{name, "names no package; add one, e.g. " + name + "/hello"}
	}
	return s, nil
}

// Name is the canonical form of the spec: meta-packages first, then the
// sorted packages. Two specs with the same Name build the same image.
func (s Spec) Name() string {
	var parts []string
	if s.Platform != "" {
		parts = append(parts, strings.TrimPrefix(s.Platform, "linux/"))
	}
	if s.Buildpacks {
		parts = append(parts, MetaBuildpacks)
	}
	if s.NixSnapshotter {
		parts = append(parts, MetaNixSnapshotter)
	}
	if s.Shell {
		parts = append(parts, MetaShell)
	}
	parts = append(parts, s.Packages...)
	return strings.Join(parts, "/")
}

// validComponent checks one path component against the distribution spec's
// grammar: [a-z0-9]+ separated by ".", "_", "__" or runs of "-".
func validComponent(c string) string {
	if c == "" {
		return "has an empty path component"
	}
	if c == "." || c == ".." {
		return "has a relative path component"
	}
	prevSep := true // the start behaves like a separator: no leading separator
	under := 0
	for i := 0; i < len(c); i++ {
		ch := c[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9':
			prevSep, under = false, 0
		case ch >= 'A' && ch <= 'Z':
			return "registry names are lower-case; packages match case-insensitively"
		case ch == '_':
			under++
			if under > 2 || (prevSep && under == 1) {
				return fmt.Sprintf("component %q: misplaced '_'", c)
			}
			prevSep = true
		case ch == '.':
			if prevSep {
				return fmt.Sprintf("component %q: misplaced '.'", c)
			}
			prevSep, under = true, 0
		case ch == '-':
			if i == 0 || (prevSep && c[i-1] != '-') {
				return fmt.Sprintf("component %q: misplaced '-'", c)
			}
			prevSep, under = true, 0
		default:
			return fmt.Sprintf("component %q: character %q is not allowed in a registry name", c, rune(ch))
		}
	}
	if prevSep {
		return fmt.Sprintf("component %q ends with a separator", c)
	}
	return ""
}

func validTag(t string) bool {
	if len(t) == 0 || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	for i := 0; i < len(t); i++ {
		ch := t[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '.' || ch == '-') {
			return false
		}
	}
	return true
}
