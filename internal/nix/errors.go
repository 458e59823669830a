package nix

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"strata/internal/errcode"
)

// The errors of this package carry ErrorCode() (a distribution-spec error
// code), HTTPStatus() and ErrorDetail() so that the registry can answer
// with them as they are; their messages say what to do next and never hold
// secrets.

// InvalidNameError is a package name with characters outside
// [A-Za-z0-9._+-] or empty dotted segments. No Nix runs for such names.
type InvalidNameError struct {
	Names []string
}

func (e *InvalidNameError) Error() string {
	q := make([]string, len(e.Names))
	for i, n := range e.Names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return fmt.Sprintf("invalid package name(s) %s: a package name is a dotted attribute path of letters, digits and . _ + - (e.g. python3Packages.numpy)", strings.Join(q, ", "))
}

// ErrorCode is the distribution-spec code of the error.
func (e *InvalidNameError) ErrorCode() string { return string(errcode.NameInvalid) }

// HTTPStatus is the status the registry answers with.
func (e *InvalidNameError) HTTPStatus() int { return 400 }

// UnknownPackage is one name that matched no package.
type UnknownPackage struct {
	// Name is the name as requested.
	Name string `json:"name"`
	// Suggestion is a close attribute path, "" when there is none.
	Suggestion string `json:"suggestion,omitempty"`
	// Reason says why a name that exists is not a package (e.g. it is a
	// set of packages); "" for names that do not exist.
	Reason string `json:"reason,omitempty"`
	// Replacement is the attribute path that the package set names as the
	// package's new name, when its attribute is an alias that throws a
	// rename ("'mysql' has been renamed to/replaced by 'mariadb'"); "" else.
	Replacement string `json:"replacement,omitempty"`
	// Message is what the attribute threw when evaluated (first lines,
	// cleaned), "" when it did not throw or Nix's output held no message.
	Message string `json:"message,omitempty"`
}

// Causes of an UnknownPackage, from the most specific.
const (
	CauseRenamed    = "renamed"     // an alias that throws naming the replacement
	CauseRemoved    = "removed"     // an alias that throws saying it was removed
	CauseEvalFailed = "eval_failed" // an attribute that throws something else
	CauseUnknown    = "unknown"     // no such attribute, or not a package
)

// Cause classifies p: CauseRenamed, CauseRemoved, CauseEvalFailed or
// CauseUnknown.
func (p UnknownPackage) Cause() string {
	switch {
	case p.Replacement != "":
		return CauseRenamed
	case p.Message != "" && isRemoval(p.Message):
		return CauseRemoved
	case p.Message != "":
		return CauseEvalFailed
	}
	return CauseUnknown
}

// threw says what the package set threw for p, naming p when the message
// does not.
func (p UnknownPackage) threw() string {
	if strings.Contains(p.Message, p.Name) {
		return p.Message
	}
	return p.Name + ": " + p.Message
}

// Describe says what is wrong with p in one phrase, without the advice
// that goes with a list of them: "mysql was renamed to mariadb", "foo:
// 'foo' has been removed ...", "helo (did you mean "hello"?)".
func (p UnknownPackage) Describe() string {
	switch p.Cause() {
	case CauseRenamed:
		return p.Name + " was renamed to " + p.Replacement
	case CauseRemoved, CauseEvalFailed:
		return p.threw()
	}
	s := p.Name
	switch {
	case p.Reason != "" && p.Suggestion != "":
		s += fmt.Sprintf(" (%s; did you mean %q?)", p.Reason, p.Suggestion)
	case p.Reason != "":
		s += " (" + p.Reason + ")"
	case p.Suggestion != "":
		s += fmt.Sprintf(" (did you mean %q?)", p.Suggestion)
	}
	return s
}

// UnknownPackagesError lists every requested name that matched no package.
type UnknownPackagesError struct {
	Packages []UnknownPackage
}

// Names are the unknown names, in request order.
func (e *UnknownPackagesError) Names() []string {
	out := make([]string, len(e.Packages))
	for i, p := range e.Packages {
		out[i] = p.Name
	}
	return out
}

func (e *UnknownPackagesError) Error() string {
	var renamed []string
	for _, p := range e.Packages {
		if p.Replacement != "" {
			renamed = append(renamed, p.Replacement)
		}
	}
	advice := ""
	if len(renamed) > 0 {
		advice = ": ask for " + strings.Join(renamed, " and ") + " instead"
	}
	return e.message(advice)
}

// message is the error's text with advice after the renames.
func (e *UnknownPackagesError) message(advice string) string {
	var unknown, renamed, threw []string
	for _, p := range e.Packages {
		switch p.Cause() {
		case CauseRenamed:
			renamed = append(renamed, p.Describe())
		case CauseRemoved, CauseEvalFailed:
			threw = append(threw, p.Describe())
		default:
			unknown = append(unknown, p.Describe())
		}
	}
	var parts []string
	if len(renamed) > 0 {
		parts = append(parts, strings.Join(renamed, ", ")+advice)
	}
	parts = append(parts, threw...)
	if len(unknown) > 0 {
		parts = append(parts, "unknown package(s): "+strings.Join(unknown, ", "))
	}
	return redact(strings.Join(parts, "; "))
}

// registryComponentRE is the distribution spec's grammar of a path
// component: a replacement that does not match it cannot be pulled by name.
var registryComponentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// MessageFor is the error's text for a registry client that asked for
// host/repo:ref: a rename comes with the pull command of the image with
// the new names ("mysql was renamed to mariadb: pull HOST/shell/mariadb"),
// the other path components kept. Without a rename, or when a renamed
// package is not a component of repo (it came from the shell
// meta-package), it is Error().
func (e *UnknownPackagesError) MessageFor(host, repo, ref string) string {
	comps := strings.Split(repo, "/")
	found := false
	for _, p := range e.Packages {
		if p.Replacement == "" {
			continue
		}
		hit := false
		for i, c := range comps {
			if strings.EqualFold(c, p.Name) {
				comps[i] = strings.ToLower(p.Replacement)
				hit = true
			}
		}
		if !hit || !registryComponentRE.MatchString(strings.ToLower(p.Replacement)) {
			return e.Error()
		}
		found = true
	}
	if !found || host == "" {
		return e.Error()
	}
	// A replacement may already be in the name: keep each component once.
	seen := map[string]bool{}
	kept := comps[:0]
	for _, c := range comps {
		if !seen[c] {
			seen[c] = true
			kept = append(kept, c)
		}
	}
	image := host + "/" + strings.Join(kept, "/")
	if ref != "" && ref != "latest" && !strings.Contains(ref, ":") {
		image += ":" + ref
	}
	return e.message(": pull " + image)
}

// Cause is the most specific cause among the packages: CauseRenamed,
// CauseRemoved, CauseEvalFailed or CauseUnknown.
func (e *UnknownPackagesError) Cause() string {
	rank := map[string]int{CauseUnknown: 0, CauseEvalFailed: 1, CauseRemoved: 2, CauseRenamed: 3}
	best := CauseUnknown
	for _, p := range e.Packages {
		if c := p.Cause(); rank[c] > rank[best] {
			best = c
		}
	}
	return best
}

// ErrorCode is the distribution-spec code of the error.
func (e *UnknownPackagesError) ErrorCode() string { return string(errcode.ManifestUnknown) }

// HTTPStatus is the status the registry answers with.
func (e *UnknownPackagesError) HTTPStatus() int { return 404 }

// ErrorDetail is the machine-readable detail of the error response.
func (e *UnknownPackagesError) ErrorDetail() any {
	return map[string]any{"unknown": e.Packages}
}

// AmbiguousPackageError is a name that matches several attributes that
// differ only by case, and none exactly.
type AmbiguousPackageError struct {
	Name       string
	Candidates []string
}

func (e *AmbiguousPackageError) Error() string {
	return fmt.Sprintf("package name %q is ambiguous: it matches %s, which differ only by case; registry names are lower case, so use an image description (strata build) with the exact attribute, or rename one of them in the package set",
		e.Name, strings.Join(e.Candidates, ", "))
}

// ErrorCode is the distribution-spec code of the error.
func (e *AmbiguousPackageError) ErrorCode() string { return string(errcode.ManifestUnknown) }

// HTTPStatus is the status the registry answers with.
func (e *AmbiguousPackageError) HTTPStatus() int { return 404 }

// ErrorDetail is the machine-readable detail of the error response.
func (e *AmbiguousPackageError) ErrorDetail() any {
	return map[string]any{"name": e.Name, "candidates": e.Candidates}
}

// Kinds of PackageError.
const (
	KindUnfree      = "unfree"
	KindBroken      = "broken"
	KindUnsupported = "unsupported"
)

// PackageError is a package that exists but will not be built: unfree
// (meta.license.free = false), broken (meta.broken) or unsupported
// (meta.platforms lacks the target).
type PackageError struct {
	Attr    string
	Name    string
	Kind    string
	License string
	Target  Target
}

func (e *PackageError) Error() string {
	pkg := e.Attr
	if e.Name != "" && e.Name != e.Attr {
		pkg = fmt.Sprintf("%s (%s)", e.Attr, e.Name)
	}
	switch e.Kind {
	case KindUnfree:
		lic := ""
		if e.License != "" {
			lic = " (" + e.License + ")"
		}
		return fmt.Sprintf("package %s has an unfree license%s and is not built; remove it from the image name", pkg, lic)
	case KindBroken:
		return fmt.Sprintf("package %s is marked broken in the package set and is not built; remove it from the image name or use another revision", pkg)
	case KindUnsupported:
		return fmt.Sprintf("package %s does not support %s (meta.platforms); choose another platform or package", pkg, e.Target.Host())
	}
	return fmt.Sprintf("package %s cannot be built (%s)", pkg, e.Kind)
}

// ErrorCode is the distribution-spec code of the error.
func (e *PackageError) ErrorCode() string { return string(errcode.Unknown) }

// HTTPStatus is the status the registry answers with.
func (e *PackageError) HTTPStatus() int { return 400 }

// ErrorDetail is the machine-readable detail of the error response.
func (e *PackageError) ErrorDetail() any {
	return map[string]any{"package": e.Attr, "kind": e.Kind}
}

// BuildError is a failed, timed-out or cancelled nix-build.
type BuildError struct {
	Attrs  []string
	Target Target
	// Log is the end of Nix's output (up to 50 lines).
	Log string
	// Timeout is set when the build ran out of time (Config.Timeout or the
	// context's deadline); Limit is Config.Timeout when that was the cause.
	Timeout bool
	Limit   time.Duration
	// Canceled is set when the caller's context was cancelled.
	Canceled bool
	Err      error
}

func (e *BuildError) what() string {
	return fmt.Sprintf("nix build of %s for %s", strings.Join(e.Attrs, ", "), e.Target)
}

func (e *BuildError) Error() string {
	switch {
	case e.Timeout && e.Limit > 0:
		return redact(fmt.Sprintf("%s timed out after %s; raise the build timeout (NIX_TIMEOUT, --nix-timeout) or ask for fewer packages", e.what(), e.Limit))
	case e.Timeout:
		return redact(e.what() + " timed out; retry, or ask for fewer packages")
	case e.Canceled:
		return redact(e.what() + " was cancelled")
	}
	lines := strings.Split(e.Log, "\n")
	msg := e.what() + " failed"
	if l := lastError(lines); l != "" {
		msg += ": " + l
	}
	if b := lastBuilderLine(lines); b != "" {
		msg += fmt.Sprintf(" (last log line: %q)", b)
	}
	return redact(msg)
}

func (e *BuildError) Unwrap() error { return e.Err }

// ErrorCode is the distribution-spec code of the error.
func (e *BuildError) ErrorCode() string { return string(errcode.Unknown) }

// HTTPStatus is the status the registry answers with.
func (e *BuildError) HTTPStatus() int {
	if e.Timeout {
		return 504
	}
	return 500
}

// ErrorDetail is the machine-readable detail of the error response.
func (e *BuildError) ErrorDetail() any {
	return map[string]any{"attrs": e.Attrs, "target": e.Target.String(), "timeout": e.Timeout, "log": redact(e.Log)}
}

// lastBuilderLine is the last line the builder printed, or "": newer Nix
// quotes it as "> line" in its error message, Nix 2.8 prints it before its
// own "error: builder for '...drv' failed" line.
func lastBuilderLine(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "> ") {
			return strings.TrimSpace(l[2:])
		}
	}
	i := len(lines) - 1
	for i >= 0 {
		l := strings.TrimSpace(lines[i])
		if l == "" || (strings.HasPrefix(l, "error:") && strings.Contains(l, ".drv")) {
			i--
			continue
		}
		break
	}
	if i < 0 {
		return ""
	}
	l := strings.TrimSpace(lines[i])
	for _, p := range []string{"building '", "these ", "this derivation", "/nix/store/", "error:"} {
		if strings.HasPrefix(l, p) && !(p == "error:" && !strings.Contains(l, "/nix/store/")) {
			return ""
		}
	}
	return l
}

// EvalError is a failed evaluation of the package set (a syntax error, a
// source that cannot be fetched).
type EvalError struct {
	What string
	Log  string
	Err  error
}

func (e *EvalError) Error() string {
	msg := e.What + " failed"
	if l := lastError(strings.Split(e.Log, "\n")); l != "" {
		msg += ": " + l
	} else if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return redact(msg + "; check the package source")
}

func (e *EvalError) Unwrap() error { return e.Err }

// ErrorCode is the distribution-spec code of the error.
func (e *EvalError) ErrorCode() string { return string(errcode.Unknown) }
