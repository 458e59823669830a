package publish

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"gopkg.in/yaml.v3"
)

// Config is a publish configuration (docs/publish.md): what to build, for
// which platforms, and where to release it.
type Config struct {
	// Repository is the destination, REGISTRY/REPOSITORY, without tag or
	// digest. Required.
	Repository string `yaml:"repository"`
	// Build is the build description: a path to a YAML/JSON description
	// (relative to the config file) or an inline one. Required. Decoded
	// into BuildPath or BuildInline.
	Build yaml.Node `yaml:"build"`
	// Platforms are os/arch names. Default: the description's, else the
	// build machine's.
	Platforms []string `yaml:"platforms"`
	// Require are platforms that must be in the index; a platform of
	// Platforms that is not required may fail to build without stopping
	// the release. Default: every platform.
	Require []string `yaml:"require"`
	// Annotations go on the outer index. Default: none besides
	// org.opencontainers.image.version, which is the version unless set
	// here.
	Annotations map[string]string `yaml:"annotations"`
	// Version is used when neither $VERSION nor a CI tag is set. Default:
	// none.
	Version string `yaml:"version"`
	// Latest, when false, never moves latest. Default true: latest moves
	// for release versions (IsRelease).
	Latest *bool `yaml:"latest"`

	// BuildPath is the description's path when Build names a file
	// (resolved against the config's directory).
	BuildPath string `yaml:"-"`
	// BuildInline is an inline description's text, laid out so its line
	// numbers are the config file's (earlier lines are blank).
	BuildInline []byte `yaml:"-"`

	file string
	root *yaml.Node
}

// File is the config's file name, as given to ParseConfig.
func (c *Config) File() string { return c.file }

// MoveLatest reports whether the config lets latest move (latest: true,
// the default).
func (c *Config) MoveLatest() bool { return c.Latest == nil || *c.Latest }

// ConfigError is a mistake in a publish config, with its line.
type ConfigError struct {
	File string
	// Line is 1-based; 0 when unknown.
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

var configKeys = []string{"repository", "build", "platforms", "require", "annotations", "version", "latest"}

var (
	reUnknown = regexp.MustCompile(`^line (\d+): field (\S+) not found in type publish\.Config$`)
	reLineMsg = regexp.MustCompile(`^line (\d+): (.*)$`)
)

// ParseConfig reads a publish config; file names it in messages and is the
// base of a relative build path. Every error names its line and says what
// to change.
func ParseConfig(file string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := reLineMsg.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			return nil, &ConfigError{File: file, Line: n, Msg: "syntax error: " + m[2]}
		}
		return nil, &ConfigError{File: file, Msg: "syntax error: " + msg}
	}
	if root.Kind == 0 || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, &ConfigError{File: file, Msg: "the config must be a mapping with repository and build; see docs/publish.md"}
	}
	c := &Config{file: file, root: root.Content[0]}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, &ConfigError{File: file, Msg: err.Error()}
		}
		var msgs []string
		for _, e := range te.Errors {
			if m := reUnknown.FindStringSubmatch(e); m != nil {
				msgs = append(msgs, fmt.Sprintf("%s: line %s: unknown key %q (known keys: %s)", file, m[1], m[2], strings.Join(configKeys, ", ")))
			} else {
				msgs = append(msgs, fmt.Sprintf("%s: %s", file, e))
			}
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	if err := c.check(data); err != nil {
		return nil, err
	}
	return c, nil
}

// line is the line of top-level key k, or of the mapping.
func (c *Config) line(k string) int {
	for i := 0; i+1 < len(c.root.Content); i += 2 {
		if c.root.Content[i].Value == k {
			return c.root.Content[i].Line
		}
	}
	return c.root.Line
}

func (c *Config) errAt(k, format string, args ...any) *ConfigError {
	return &ConfigError{File: c.file, Line: c.line(k), Msg: fmt.Sprintf(format, args...)}
}

func (c *Config) check(data []byte) error {
	if c.Repository == "" {
		return c.errAt("repository", "repository is missing: name the destination, e.g. repository: ghcr.io/owner/app")
	}
	if _, err := name.NewRepository(c.Repository, name.WeakValidation); err != nil {
		return c.errAt("repository", "repository %q: want REGISTRY/REPOSITORY without tag or digest, e.g. ghcr.io/owner/app", c.Repository)
	}
	// A release names its registry: no implicit Docker Hub.
	if host, _, ok := strings.Cut(c.Repository, "/"); !ok || !strings.ContainsAny(host, ".:") {
		return c.errAt("repository", "repository %q names no registry: write it in full, e.g. docker.io/%s", c.Repository, c.Repository)
	}
	switch c.Build.Kind {
	case 0:
		return c.errAt("build", "build is missing: give a description file (build: image.yaml) or an inline description (see docs/build.md)")
	case yaml.ScalarNode:
		if c.Build.Value == "" {
			return c.errAt("build", "build is empty: give a description file or an inline description")
		}
		p := c.Build.Value
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(c.file), p)
		}
		c.BuildPath = p
	case yaml.MappingNode:
		c.BuildInline = inlineText(data, &c.Build)
	default:
		return c.errAt("build", "build must be a file name or a mapping (an inline description)")
	}
	seen := map[string]bool{}
	for _, p := range c.Platforms {
		pl, err := ParsePlatform(p)
		if err != nil {
			return c.errAt("platforms", "%v", err)
		}
		if seen[platformKey(pl)] {
			return c.errAt("platforms", "platform %s is listed twice", p)
		}
		seen[platformKey(pl)] = true
	}
	for _, p := range c.Require {
		if _, err := ParsePlatform(p); err != nil {
			return c.errAt("require", "%v", err)
		}
	}
	keys := make([]string, 0, len(c.Annotations))
	for k := range c.Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.TrimSpace(k) == "" {
			return c.errAt("annotations", "an annotation has an empty key")
		}
	}
	if c.Version != "" {
		if _, err := VersionTag(c.Version); err != nil {
			return c.errAt("version", "version %q: %v", c.Version, err)
		}
	}
	return nil
}

// RequiredPlatforms are the platforms that must be in the index: Require,
// else all of platforms.
func (c *Config) RequiredPlatforms(platforms []string) ([]v1.Platform, error) {
	src := c.Require
	if len(src) == 0 {
		src = platforms
	}
	var out []v1.Platform
	for _, s := range src {
		p, err := ParsePlatform(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// inlineText returns the lines of the mapping n from data, de-indented, with
// the lines before it blank, so a description parser's line numbers are the
// config file's. A flow mapping ({...}) is re-encoded on its own line.
func inlineText(data []byte, n *yaml.Node) []byte {
	lines := strings.Split(string(data), "\n")
	if n.Style&yaml.FlowStyle != 0 || len(n.Content) == 0 {
		out, err := yaml.Marshal(n)
		if err != nil {
			return nil
		}
		return append([]byte(strings.Repeat("\n", max(n.Line-1, 0))), out...)
	}
	start := n.Content[0].Line - 1 // first key, 0-based
	indent := n.Content[0].Column - 1
	var b strings.Builder
	b.WriteString(strings.Repeat("\n", start))
	for i := start; i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimLeft(l, " ")
		lead := len(l) - len(trimmed)
		if trimmed != "" && !strings.HasPrefix(trimmed, "#") && lead < indent {
			break // the next key of the outer mapping
		}
		if lead >= indent {
			l = l[indent:]
		} else {
			l = ""
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
