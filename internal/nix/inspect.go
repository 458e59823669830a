package nix

import (
	"context"
	"errors"
	"strings"
)

// States of a package name in a package set, as Inspect finds it.
const (
	StateOK          = "ok"          // a package that evaluates
	StateRenamed     = "renamed"     // an alias that throws naming the replacement
	StateRemoved     = "removed"     // an alias that throws saying it was removed, or no such attribute
	StateEvalFailed  = "eval_failed" // an attribute that throws something else
	StateUnfree      = "unfree"      // meta.license is unfree
	StateBroken      = "broken"      // meta.broken
	StateUnsupported = "unsupported" // meta.platforms lacks the target
	StateNotPackage  = "not_package" // a set of packages or another value
	StateAmbiguous   = "ambiguous"   // matches attributes that differ only by case
)

// PackageState is what one name denotes in a package set.
type PackageState struct {
	// Name is the name as asked.
	Name string `json:"name"`
	// Attr is the attribute path it matched, "" when none.
	Attr string `json:"attr,omitempty"`
	// State is one of the State constants.
	State string `json:"state"`
	// DrvName and Version are the derivation's name and version.
	DrvName string `json:"drvName,omitempty"`
	Version string `json:"version,omitempty"`
	// OutPath is the output's store path (not built), for StateOK.
	OutPath string `json:"outPath,omitempty"`
	// Replacement is the attribute path a rename names: for StateRenamed,
	// and for a StateOK alias that warns that it was renamed.
	Replacement string `json:"replacement,omitempty"`
	// Message is what the attribute threw, or why it is not a package.
	Message string `json:"message,omitempty"`
	// Warnings are what evaluating the attribute printed (lib.warn).
	Warnings []string `json:"warnings,omitempty"`
}

// Failing reports whether the state is not one that builds.
func (s PackageState) Failing() bool { return s.State != StateOK }

// maxInspectThrows bounds the extra evaluations one Inspect runs to read
// what attributes threw.
const maxInspectThrows = 64

// Inspect evaluates (without building) what each name denotes in the
// package set at ref for target t, and never fails for one name: a name
// that is unknown, renamed, removed, failing to evaluate, unfree, broken
// or unsupported gets that state. It returns one state per name, in
// order, and the warnings of the evaluation that name no package. When
// one attribute fails in a way builtins.tryEval cannot catch, the names
// are evaluated one by one; only an error of the package set as a whole
// is returned.
func (d *Driver) Inspect(ctx context.Context, ref string, t Target, names []string) ([]PackageState, []string, error) {
	if err := checkTarget(t); err != nil {
		return nil, nil, err
	}
	out := make([]PackageState, len(names))
	var valid []string
	var idx []int
	for i, n := range names {
		out[i] = PackageState{Name: n}
		if _, ok := splitName(n); !ok {
			out[i].State, out[i].Message = StateRemoved, "not a package name"
			continue
		}
		valid = append(valid, n)
		idx = append(idx, i)
	}
	if len(valid) == 0 {
		return out, nil, nil
	}
	states, warnings, err := d.inspect(ctx, ref, t, valid)
	var ee *EvalError
	if errors.As(err, &ee) && len(valid) > 1 {
		// One by one: the names that fail on their own say so.
		states, warnings = make([]PackageState, len(valid)), nil
		failed := 0
		for i, n := range valid {
			s, w, err1 := d.inspect(ctx, ref, t, []string{n})
			var ee1 *EvalError
			switch {
			case errors.As(err1, &ee1):
				failed++
				states[i] = PackageState{Name: n, State: StateEvalFailed, Message: throwMessage(strings.Split(ee1.Log, "\n"))}
			case err1 != nil:
				return nil, nil, err1
			default:
				states[i] = s[0]
				warnings = append(warnings, w...)
			}
		}
		if failed == len(valid) {
			return nil, nil, err
		}
	} else if err != nil {
		return nil, nil, err
	}
	for j, s := range states {
		out[idx[j]] = s
	}
	return out, warnings, nil
}

// inspect is Inspect for valid names with one batch evaluation.
func (d *Driver) inspect(ctx context.Context, ref string, t Target, names []string) ([]PackageState, []string, error) {
	src, res, warnings, err := d.lookup(ctx, ref, t, names, true)
	if err != nil {
		return nil, nil, err
	}
	out := make([]PackageState, len(names))
	throws := 0
	explain := func(value, attr string) (string, string) {
		if throws >= maxInspectThrows {
			return "", ""
		}
		throws++
		return d.explainExpr(ctx, src, t, value, attr)
	}
	for i, r := range res {
		s := PackageState{Name: names[i], Attr: strings.Join(r.Attr, ".")}
		switch r.Status {
		case "ok":
			s.DrvName, s.Version, s.OutPath = r.Name, r.Version, r.OutPath
			switch {
			case r.Unfree:
				s.State, s.Message = StateUnfree, "unfree license "+r.License
			case r.Broken:
				s.State, s.Message = StateBroken, "marked broken"
			case r.Unsupported:
				s.State, s.Message = StateUnsupported, "does not support "+t.Host()
			case r.OutPath == "":
				// Its derivation throws (nixpkgs' meta checks do).
				s.State = StateEvalFailed
				s.Message, s.Replacement = explain(nixAttrPath("pkgs", r.Attr)+".outPath", s.Attr)
				if s.Replacement != "" {
					s.State = StateRenamed
				}
			default:
				s.State = StateOK
			}
		case "unknown":
			s.Attr = ""
			s.State, s.Message = StateRemoved, "no such attribute"
			if best := closest(r.Segment, r.Names); best != "" {
				s.Message += " (did you mean " + strings.Join(append(append([]string(nil), r.At...), best), ".") + "?)"
			}
		case "ambiguous":
			s.State, s.Message = StateAmbiguous, "matches "+strings.Join(r.Candidates, ", ")
		case "notpackage":
			s.State, s.Message = StateNotPackage, "not a package"
		case "error":
			s.Message, s.Replacement = explain(nixAttrPath("pkgs", r.Attr), s.Attr)
			switch {
			case s.Replacement != "":
				s.State = StateRenamed
			case isRemoval(s.Message):
				s.State = StateRemoved
			default:
				s.State = StateEvalFailed
			}
		default:
			s.State, s.Message = StateEvalFailed, "unexpected status "+r.Status
		}
		out[i] = s
	}
	// A warning that names a package as renamed belongs to it.
	var rest []string
	for _, w := range warnings {
		oldName, newName, isRename := parseRename(w)
		hit := false
		for i := range out {
			a := out[i].Attr
			last := a[strings.LastIndexByte(a, '.')+1:]
			if a == "" {
				continue
			}
			if isRename && !strings.EqualFold(oldName, last) && !strings.EqualFold(oldName, a) {
				continue
			}
			if !isRename && !strings.Contains(w, "'"+last+"'") {
				continue
			}
			hit = true
			out[i].Warnings = append(out[i].Warnings, w)
			if isRename && out[i].State == StateOK && out[i].Replacement == "" {
				out[i].Replacement = qualify(a, newName)
			}
		}
		if !hit {
			rest = append(rest, w)
		}
	}
	return out, rest, nil
}
