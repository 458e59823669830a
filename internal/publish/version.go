package publish

import (
	"fmt"
	"regexp"
	"strings"
)

// VersionSource names where ResolveVersion found the version.
type VersionSource string

// The places a version comes from, in the order ResolveVersion tries them.
const (
	FromEnv      VersionSource = "$VERSION"
	FromGitLab   VersionSource = "$CI_COMMIT_TAG"
	FromGitHub   VersionSource = "$GITHUB_REF_NAME"
	FromFallback VersionSource = "config"
)

// ResolveVersion picks the release version: $VERSION as it is, else the CI
// tag with a leading "v" stripped ($CI_COMMIT_TAG on GitLab;
// $GITHUB_REF_NAME on GitHub when $GITHUB_REF_TYPE is "tag", or the part of
// $GITHUB_REF after refs/tags/), else fallback (the config's version). It
// fails when none is set or the version cannot be a tag.
func ResolveVersion(getenv func(string) string, fallback string) (string, VersionSource, error) {
	v, src := "", VersionSource("")
	switch {
	case strings.TrimSpace(getenv("VERSION")) != "":
		v, src = strings.TrimSpace(getenv("VERSION")), FromEnv
	case strings.TrimSpace(getenv("CI_COMMIT_TAG")) != "":
		v, src = stripV(getenv("CI_COMMIT_TAG")), FromGitLab
	case getenv("GITHUB_REF_TYPE") == "tag" && strings.TrimSpace(getenv("GITHUB_REF_NAME")) != "":
		v, src = stripV(getenv("GITHUB_REF_NAME")), FromGitHub
	case strings.HasPrefix(getenv("GITHUB_REF"), "refs/tags/"):
		v, src = stripV(strings.TrimPrefix(getenv("GITHUB_REF"), "refs/tags/")), FromGitHub
	case strings.TrimSpace(fallback) != "":
		v, src = strings.TrimSpace(fallback), FromFallback
	default:
		return "", "", fmt.Errorf("no version: set $VERSION, run from a CI tag ($CI_COMMIT_TAG, $GITHUB_REF_NAME), or set version in the publish config")
	}
	if _, err := VersionTag(v); err != nil {
		return "", "", fmt.Errorf("version %q from %s: %w", v, src, err)
	}
	return v, src, nil
}

func stripV(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 1 && (s[0] == 'v' || s[0] == 'V') && s[1] >= '0' && s[1] <= '9' {
		return s[1:]
	}
	return s
}

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// VersionTag is the tag a version is pushed as: the version itself, with
// "+" (semver build metadata, not allowed in tags) written as "_" as Helm
// does. "latest" is refused: it is moved, never named.
func VersionTag(version string) (string, error) {
	t := strings.ReplaceAll(version, "+", "_")
	if !tagRE.MatchString(t) {
		return "", fmt.Errorf("not usable as a tag (letters, digits, '_', '.', '-', '+'; at most 128; no leading '.' or '-')")
	}
	if t == "latest" {
		return "", fmt.Errorf(`"latest" is not a version: publish moves latest itself; give a version such as 1.2.3`)
	}
	return t, nil
}

var releaseRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

// IsRelease reports whether version is a release, which moves latest: a
// semantic version MAJOR.MINOR.PATCH with neither a pre-release part
// ("1.2.3-rc.1", "0.0.0-dev") nor build metadata ("1.2.3+dirty",
// "1.2.3+dev"): build metadata marks a build that is not the release.
func IsRelease(version string) bool { return releaseRE.MatchString(version) }
