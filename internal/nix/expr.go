package nix

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// nixString quotes s as a Nix string literal.
func nixString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// nixPath is a Nix path expression for the absolute path p.
func nixPath(p string) string {
	return "(/. + " + nixString(filepath.Clean(p)) + ")"
}

// nixValue is an argument value: a path when it is absolute, else a string.
func nixValue(v string) string {
	if strings.HasPrefix(v, "/") {
		return nixPath(v)
	}
	return nixString(v)
}

// nixAttrs renders a sorted attribute set of already rendered values.
func nixAttrs(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{ ")
	for _, k := range keys {
		b.WriteString(nixString(k))
		b.WriteString(" = ")
		b.WriteString(m[k])
		b.WriteString("; ")
	}
	b.WriteString("}")
	return b.String()
}

// nixAttrPath renders pkgs."a"."b" for the segments of a dotted path.
func nixAttrPath(base string, segs []string) string {
	var b strings.Builder
	b.WriteString(base)
	for _, s := range segs {
		b.WriteByte('.')
		b.WriteString(nixString(s))
	}
	return b.String()
}

var (
	identRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_'-]*$`)
	hexRE     = regexp.MustCompile(`^[0-9a-f]{40}$`)
	channelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	systemRE  = regexp.MustCompile(`^[a-z0-9_]+-[a-z0-9_]+$`)
)

func validIdent(s string) bool { return identRE.MatchString(s) }

func validChannel(s string) bool {
	if strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "file://") {
		return !strings.ContainsAny(s, "\x00\n\r")
	}
	return channelRE.MatchString(s)
}

// channelURL is the tarball of a nixpkgs channel, commit or URL.
func channelURL(ch string) string {
	switch {
	case strings.Contains(ch, "://"):
		return ch
	case hexRE.MatchString(ch):
		return "https://github.com/NixOS/nixpkgs/archive/" + ch + ".tar.gz"
	}
	return "https://nixos.org/channels/" + ch + "/nixexprs.tar.xz"
}

// source is a package source resolved for one ref.
type source struct {
	// expr evaluates to the package set's path (something to import).
	expr string
	// rev identifies the source's content.
	rev string
	// flake is set when expr is a locked flake reference (a Nix string).
	flake bool
}

// source resolves ref (an image tag) against the configured package
// source.
func (d *Driver) source(ctx context.Context, ref string) (source, error) {
	switch {
	case d.cfg.PkgsPath != "":
		// A local path has one version: the tag is not used.
		return source{expr: nixPath(d.cfg.PkgsPath)}, nil
	case d.cfg.Flake != "":
		return d.flakeSource(ctx)
	case d.cfg.PkgsRepo != "":
		r, err := d.gitResolve(ctx, ref)
		if err != nil {
			return source{}, err
		}
		attrs := map[string]string{
			"url": nixString(d.gitURL()),
			"rev": nixString(r.rev),
		}
		switch {
		case r.ref != "":
			attrs["ref"] = nixString(r.ref)
		default:
			attrs["allRefs"] = "true"
		}
		return source{expr: "(builtins.fetchGit " + nixAttrs(attrs) + ")", rev: r.rev}, nil
	default:
		ch := d.cfg.Channel
		if isLatest(ref) {
			// the configured channel
		} else if hexRE.MatchString(ref) {
			ch = ref
		}
		// Like Nixery, other tags select the configured channel.
		return source{expr: "(builtins.fetchTarball " + nixString(channelURL(ch)) + ")", rev: ch}, nil
	}
}

func isLatest(ref string) bool { return ref == "" || ref == "latest" }

// pkgsExpr is a let-binding prelude that binds `pkgs` to the package set
// of src evaluated for t. The package-set function receives system and
// crossSystem (and the default busybox arguments) only when it names them,
// and Config.Args always.
func (d *Driver) pkgsExpr(src source, t Target) string {
	if src.flake {
		return d.flakePkgsExpr(src, t)
	}
	std := map[string]string{}
	if t.System != "" {
		std["system"] = nixString(t.System)
	} else {
		std["system"] = "builtins.currentSystem"
	}
	if t.CrossSystem != "" {
		std["crossSystem"] = "{ system = " + nixString(t.CrossSystem) + "; }"
	}
	// nixpkgs would otherwise read ~/.config/nixpkgs and the environment.
	std["config"] = "{ }"
	std["overlays"] = "[ ]"
	for k, v := range d.defArgs {
		std[k] = nixValue(v)
	}
	user := map[string]string{}
	for k, v := range d.cfg.Args {
		user[k] = nixValue(v)
	}
	return `let
  f = import ` + src.expr + `;
  std = ` + nixAttrs(std) + `;
  user = ` + nixAttrs(user) + `;
  pkgs = if builtins.isFunction f
    then f ((builtins.intersectAttrs (builtins.functionArgs f) std) // user)
    else f;
in
`
}

// checkTarget rejects systems that are not Nix system doubles.
func checkTarget(t Target) error {
	for _, s := range []string{t.System, t.CrossSystem} {
		if s != "" && !systemRE.MatchString(s) {
			return fmt.Errorf("nix: %q is not a Nix system such as x86_64-linux", s)
		}
	}
	return nil
}
