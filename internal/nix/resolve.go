package nix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// maxNameLen bounds a requested package name.
const maxNameLen = 256

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._+-]+$`)

// splitName validates a package name and splits it into attribute-path
// segments.
func splitName(name string) ([]string, bool) {
	if len(name) == 0 || len(name) > maxNameLen || !nameRE.MatchString(name) {
		return nil, false
	}
	segs := strings.Split(name, ".")
	for _, s := range segs {
		if s == "" {
			return nil, false
		}
	}
	return segs, true
}

// resolveExpr looks every name up in pkgs: exact attribute first, else the
// one attribute equal to it ignoring case, walking nested sets for dotted
// names. It returns one record per name.
const resolveExpr = `
let
  names = %s;
  host = %s;
  withOut = %s;
  lc = builtins.replaceStrings
    [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ]
    [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  try = v: d: let r = builtins.tryEval v; in if r.success then r.value else d;
  isDrv = v: builtins.isAttrs v && (v.type or null) == "derivation";
  str = v: if builtins.isString v then v
    else if builtins.isList v && v != [ ] && builtins.isString (builtins.head v) then builtins.head v
    else "";
  licName = l: if builtins.isAttrs l then (l.spdxId or l.shortName or l.fullName or "")
    else if builtins.isString l then l else "";
  describe = path: v:
    let
      meta = try (if builtins.isAttrs (v.meta or { }) then v.meta or { } else { }) { };
      lic0 = try (meta.license or null) null;
      lics = if builtins.isList lic0 then lic0 else if lic0 == null then [ ] else [ lic0 ];
      plats = try (meta.platforms or null) null;
    in {
      status = "ok";
      attr = path;
      name = try (str (v.name or "")) "";
      pname = try (str (v.pname or "")) "";
      version = try (str (v.version or "")) "";
      description = try (str (meta.description or "")) "";
      homepage = try (str (meta.homepage or "")) "";
      license = builtins.concatStringsSep " AND "
        (builtins.filter (s: s != "") (map (l: try (licName l) "") lics));
      unfree = builtins.any (l: try (builtins.isAttrs l && (l.free or true) == false) false) lics;
      broken = try ((meta.broken or false) == true) false;
      unsupported = try (builtins.isList plats && plats != [ ]
        && builtins.all builtins.isString plats && !(builtins.elem host plats)) false;
    } // (if withOut then { out = try (toString v.outPath) ""; } else { });
  lookup = set: path: segs:
    let
      s = builtins.head segs;
      rest = builtins.tail segs;
      ns = builtins.attrNames set;
      exact = builtins.hasAttr s set;
      ci = if exact then [ ] else builtins.filter (n: lc n == lc s) ns;
      name = if exact then s else builtins.head ci;
      p = path ++ [ name ];
      r = builtins.tryEval (builtins.getAttr name set);
      v = r.value;
    in
    if !exact && ci == [ ] then { status = "unknown"; at = path; segment = s; names = ns; }
    else if builtins.length ci > 1 then { status = "ambiguous"; at = path; candidates = ci; }
    else if !r.success then { status = "error"; attr = p; }
    else if rest == [ ] then
      (if isDrv v then describe p v
       else { status = "notpackage"; attr = p;
              isSet = builtins.isAttrs v && try ((v.recurseForDerivations or false) == true) false;
              names = if builtins.isAttrs v then builtins.attrNames v else [ ]; })
    else if builtins.isAttrs v && !(isDrv v) then lookup v p rest
    else { status = "unknown"; at = p; segment = builtins.head rest; names = [ ]; };
in
if builtins.isAttrs pkgs then map (lookup pkgs [ ]) names
else throw "the package set is not an attribute set"
`

// lookupResult is one record of resolveExpr.
type lookupResult struct {
	Status      string   `json:"status"`
	Attr        []string `json:"attr"`
	At          []string `json:"at"`
	Segment     string   `json:"segment"`
	Names       []string `json:"names"`
	Candidates  []string `json:"candidates"`
	IsSet       bool     `json:"isSet"` // a set of packages (recurseForDerivations)
	Name        string   `json:"name"`
	Pname       string   `json:"pname"`
	Version     string   `json:"version"`
	Description string   `json:"description"`
	Homepage    string   `json:"homepage"`
	License     string   `json:"license"`
	Unfree      bool     `json:"unfree"`
	Broken      bool     `json:"broken"`
	Unsupported bool     `json:"unsupported"`
	OutPath     string   `json:"out"` // only when asked for; "" when it throws (not "outPath": toJSON would turn the record into that string)
}

// Resolve evaluates (without building) which package each name denotes
// for target t, with one nix-instantiate call. A name is matched exactly,
// else case-insensitively when that is unambiguous; dotted names walk
// nested sets. The packages come back in request order, without
// duplicates. Errors: *InvalidNameError, *UnknownPackagesError (every
// unknown name, with suggestions; for an attribute that throws, such as
// nixpkgs' aliases of renamed and removed packages, what it threw and the
// replacement it names, read by one more evaluation of that attribute),
// *AmbiguousPackageError, *PackageError (unfree, broken, unsupported),
// *EvalError. A renamed package is never resolved to its replacement: the
// caller chooses. Warnings the evaluation prints (an alias that still
// evaluates, lib.warn) are logged.
func (d *Driver) Resolve(ctx context.Context, ref string, t Target, names []string) ([]Package, error) {
	if err := checkTarget(t); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, nil
	}
	src, res, _, err := d.lookup(ctx, ref, t, names, false)
	if err != nil {
		return nil, err
	}

	var (
		unknown   []UnknownPackage
		ambiguous *AmbiguousPackageError
		pkgErr    *PackageError
		pkgs      []Package
		seen      = map[string]bool{}
		threws    int
	)
	for i, r := range res {
		name := names[i]
		switch r.Status {
		case "ok":
			attr := strings.Join(r.Attr, ".")
			switch {
			case pkgErr != nil:
			case r.Unfree:
				pkgErr = &PackageError{Attr: attr, Name: r.Name, Kind: KindUnfree, License: r.License, Target: t}
			case r.Broken:
				pkgErr = &PackageError{Attr: attr, Name: r.Name, Kind: KindBroken, License: r.License, Target: t}
			case r.Unsupported:
				pkgErr = &PackageError{Attr: attr, Name: r.Name, Kind: KindUnsupported, License: r.License, Target: t}
			}
			if seen[attr] {
				continue
			}
			seen[attr] = true
			pkgs = append(pkgs, Package{
				Attr: attr, Name: r.Name, Pname: r.Pname, Version: r.Version,
				Description: r.Description, License: r.License, Homepage: r.Homepage,
			})
		case "unknown":
			u := UnknownPackage{Name: name}
			if best := closest(r.Segment, r.Names); best != "" {
				u.Suggestion = strings.Join(append(append([]string(nil), r.At...), best), ".")
			}
			unknown = append(unknown, u)
		case "ambiguous":
			if ambiguous == nil {
				c := make([]string, len(r.Candidates))
				for j, x := range r.Candidates {
					c[j] = strings.Join(append(append([]string(nil), r.At...), x), ".")
				}
				sort.Strings(c)
				ambiguous = &AmbiguousPackageError{Name: name, Candidates: c}
			}
		case "notpackage":
			attr := strings.Join(r.Attr, ".")
			u := UnknownPackage{Name: name, Reason: attr + " is not a package"}
			if r.IsSet {
				u.Reason = attr + " is a set of packages, not a package"
				if ex := example(r.Names); ex != "" {
					u.Suggestion = attr + "." + ex
				}
			}
			unknown = append(unknown, u)
		case "error":
			u := UnknownPackage{Name: name, Reason: strings.Join(r.Attr, ".") + " fails to evaluate (removed or renamed?)"}
			if threws < maxThrowLookups {
				threws++
				u.Message, u.Replacement = d.explainThrow(ctx, src, t, r.Attr)
				if u.Message != "" {
					u.Reason = ""
				}
			}
			unknown = append(unknown, u)
		default:
			return nil, fmt.Errorf("nix: resolve %s: unexpected status %q", name, r.Status)
		}
	}
	switch {
	case len(unknown) > 0:
		return nil, &UnknownPackagesError{Packages: unknown}
	case ambiguous != nil:
		return nil, ambiguous
	case pkgErr != nil:
		return nil, pkgErr
	}
	return pkgs, nil
}

// maxThrowLookups bounds the extra evaluations one Resolve runs to read
// what failing attributes threw.
const maxThrowLookups = 4

// lookup evaluates resolveExpr for names (with out paths when withOut) in
// one nix-instantiate call, and returns the source, one record per name
// and the warnings the evaluation printed.
func (d *Driver) lookup(ctx context.Context, ref string, t Target, names []string, withOut bool) (source, []lookupResult, []string, error) {
	var bad []string
	segs := make([][]string, len(names))
	for i, n := range names {
		s, ok := splitName(n)
		if !ok {
			bad = append(bad, n)
		}
		segs[i] = s
	}
	if len(bad) > 0 {
		return source{}, nil, nil, &InvalidNameError{Names: bad}
	}
	src, err := d.source(ctx, ref)
	if err != nil {
		return source{}, nil, nil, err
	}
	var list strings.Builder
	list.WriteString("[ ")
	for _, s := range segs {
		list.WriteString("[ ")
		for _, p := range s {
			list.WriteString(nixString(p))
			list.WriteByte(' ')
		}
		list.WriteString("] ")
	}
	list.WriteString("]")
	host := "builtins.currentSystem"
	if h := t.Host(); h != "" {
		host = nixString(h)
	}
	expr := d.pkgsExpr(src, t) + fmt.Sprintf(resolveExpr, list.String(), host, strconv.FormatBool(withOut))
	var res []lookupResult
	tail, err := d.evalTail(ctx, "evaluating the package set", expr, nil, &res)
	if err != nil {
		return source{}, nil, nil, err
	}
	if len(res) != len(names) {
		return source{}, nil, nil, fmt.Errorf("nix: resolve: %d results for %d names", len(res), len(names))
	}
	warnings := traceWarnings(tail)
	for _, w := range warnings {
		d.log.Warn("the package set warns", "warning", w)
	}
	return src, res, warnings, nil
}

// explainThrow evaluates the attribute path attr of the package set on
// its own, which fails again, and reads from Nix's output what it threw:
// the message, and the replacement it names when it is a rename. Both are
// "" when the output holds no message.
func (d *Driver) explainThrow(ctx context.Context, src source, t Target, attr []string) (msg, replacement string) {
	return d.explainExpr(ctx, src, t, nixAttrPath("pkgs", attr), strings.Join(attr, "."))
}

// explainExpr is explainThrow for any expression over pkgs.
func (d *Driver) explainExpr(ctx context.Context, src source, t Target, value, attr string) (msg, replacement string) {
	expr := d.pkgsExpr(src, t) + "builtins.seq (" + value + ") null\n"
	var v any
	err := d.eval(ctx, "evaluating "+attr, expr, &v)
	var ee *EvalError
	if !errors.As(err, &ee) {
		return "", ""
	}
	msg = redact(throwMessage(strings.Split(ee.Log, "\n")))
	if _, newName, ok := parseRename(msg); ok && newName != attr {
		replacement = qualify(attr, newName)
	}
	return msg, replacement
}

// example picks an attribute of a package set to show in a suggestion.
func example(names []string) string {
	for _, n := range names {
		if n == "recurseForDerivations" || strings.HasPrefix(n, "_") || strings.HasPrefix(n, "override") || n == "callPackage" || n == "pkgs" || n == "lib" {
			continue
		}
		return n
	}
	return ""
}

// ShellPackages lists the packages the `shell` meta-package expands to:
// the package set's `strata.shell` list when it has one, else Nixery's
// default.
func (d *Driver) ShellPackages(ctx context.Context, ref string) ([]string, error) {
	src, err := d.source(ctx, ref)
	if err != nil {
		return nil, err
	}
	expr := d.pkgsExpr(src, Target{}) + `
let s = if builtins.isAttrs pkgs && builtins.isAttrs (pkgs.strata or null) then pkgs.strata.shell or null else null;
in if builtins.isList s && builtins.all builtins.isString s then s else null
`
	var list []string
	if err := d.eval(ctx, "evaluating the package set's shell packages", expr, &list); err != nil {
		return nil, err
	}
	if list == nil {
		return []string{"bashInteractive", "coreutils", "moreutils", "nano"}, nil
	}
	for _, n := range list {
		if _, ok := splitName(n); !ok {
			return nil, fmt.Errorf("nix: the package set's strata.shell lists %q, which is not a package name", n)
		}
	}
	return list, nil
}

// eval runs nix-instantiate --eval --strict --json on expr and decodes its
// output into v.
func (d *Driver) eval(ctx context.Context, what, expr string, v any) error {
	return d.evalWith(ctx, what, expr, nil, v)
}

// evalWith is eval with extra leading arguments.
func (d *Driver) evalWith(ctx context.Context, what, expr string, extra []string, v any) error {
	_, err := d.evalTail(ctx, what, expr, extra, v)
	return err
}

// evalTail is evalWith that also returns the end of Nix's stderr (its
// traces and warnings) after a success.
func (d *Driver) evalTail(ctx context.Context, what, expr string, extra []string, v any) ([]string, error) {
	args := append(append([]string(nil), extra...), "--eval", "--strict", "--json", "--read-write-mode")
	args = append(args, d.commonArgs()...)
	args = append(args, "-E", expr)
	out, tail, err := d.run(ctx, "nix-instantiate", args, "")
	if err != nil {
		var pe *procError
		if errors.As(err, &pe) && (pe.timedOut || pe.canceled) {
			return nil, fmt.Errorf("nix: %s: %w", what, pe.err)
		}
		if !errors.As(err, &pe) {
			return nil, fmt.Errorf("nix: %s: %w", what, err)
		}
		return nil, &EvalError{What: what, Log: strings.Join(tail, "\n"), Err: err}
	}
	if err := json.Unmarshal(out, v); err != nil {
		return nil, fmt.Errorf("nix: %s: decode nix-instantiate output: %w", what, err)
	}
	return tail, nil
}

// closest is the name in names nearest to s by edit distance, ignoring
// case, when it is near enough to be a plausible typo; "" otherwise.
func closest(s string, names []string) string {
	ls := strings.ToLower(s)
	limit := len(ls) / 3
	if limit < 1 {
		limit = 1
	}
	if limit > 3 {
		limit = 3
	}
	best, bestD := "", limit+1
	for _, n := range names {
		ln := strings.ToLower(n)
		if abs(len(ln)-len(ls)) > limit {
			continue
		}
		dist := editDistance(ls, ln, limit+1)
		if dist < bestD || (dist == bestD && best != "" && n < best) {
			best, bestD = n, dist
		}
	}
	if bestD > limit {
		return ""
	}
	return best
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// editDistance is the optimal-string-alignment distance (Levenshtein plus
// adjacent transpositions) between a and b; it may stop early and return
// cutoff once the distance is known to reach cutoff.
func editDistance(a, b string, cutoff int) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			rowMin = min(rowMin, v)
		}
		if rowMin >= cutoff {
			return cutoff
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
