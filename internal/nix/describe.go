package nix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Evaluated is an image description evaluated from a Nix expression.
type Evaluated struct {
	// Value is the description as JSON; derivations in it became their
	// out paths (as builtins.toJSON makes them).
	Value json.RawMessage
	// Inputs are the store paths the value's strings depend on: .drv
	// files to realise, and sources already in the store.
	Inputs []string
}

// EvalFile evaluates the Nix file file to an image description. The file
// is an attribute set or a function of { pkgs, system, ... } (pkgs is the
// configured package set for t; a function gets only the arguments it
// names); attr, when not empty, selects a dotted attribute of the result.
// When withPkgs is false, no pkgs argument is passed (the file's default
// is used).
func (d *Driver) EvalFile(ctx context.Context, ref string, t Target, file, attr string, withPkgs bool) (*Evaluated, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("nix: description %s: %w", file, err)
	}
	prelude := "let pkgs = null; in\n"
	if withPkgs {
		src, err := d.source(ctx, ref)
		if err != nil {
			return nil, err
		}
		prelude = d.pkgsExpr(src, t)
	}
	sys := "builtins.currentSystem"
	if h := t.Host(); h != "" {
		sys = nixString(h)
	}
	args := "{ system = " + sys + "; }"
	if withPkgs {
		args = "{ inherit pkgs; system = " + sys + "; }"
	}
	sel, err := attrSelect(attr)
	if err != nil {
		return nil, err
	}
	expr := prelude + `let
  f = import ` + nixPath(abs) + `;
  a = ` + args + `;
  v0 = if builtins.isFunction f then f (builtins.intersectAttrs (builtins.functionArgs f) a) else f;
  v = v0` + sel + `;
in { value = v; inputs = builtins.attrNames (builtins.getContext (builtins.toJSON v)); }
`
	return d.evalDescription(ctx, "evaluating the image description "+file, expr)
}

// EvalFlakeAttr evaluates the dotted attribute attr of the configured
// flake to an image description.
func (d *Driver) EvalFlakeAttr(ctx context.Context, attr string) (*Evaluated, error) {
	if d.cfg.Flake == "" {
		return nil, errors.New("nix: a flake attribute needs a flake: set --flake")
	}
	src, err := d.flakeSource(ctx)
	if err != nil {
		return nil, err
	}
	sel, err := attrSelect(attr)
	if err != nil {
		return nil, err
	}
	if sel == "" {
		return nil, errors.New("nix: name the flake attribute that holds the image description, e.g. --nix-attr images.x86_64-linux.default")
	}
	expr := `let v = (builtins.getFlake ` + src.expr + `)` + sel + `;
in { value = v; inputs = builtins.attrNames (builtins.getContext (builtins.toJSON v)); }
`
	return d.evalDescription(ctx, "evaluating the flake attribute "+attr, expr)
}

func (d *Driver) evalDescription(ctx context.Context, what, expr string) (*Evaluated, error) {
	var out struct {
		Value  json.RawMessage `json:"value"`
		Inputs []string        `json:"inputs"`
	}
	if d.cfg.Flake != "" {
		// eval passes no feature flags; flakes need them on older Nix.
		if err := d.evalWith(ctx, what, expr, flakeFeatures, &out); err != nil {
			return nil, err
		}
	} else if err := d.eval(ctx, what, expr, &out); err != nil {
		return nil, err
	}
	return &Evaluated{Value: out.Value, Inputs: out.Inputs}, nil
}

// attrSelect turns "a.b" into `.a.b` with quoted segments.
func attrSelect(attr string) (string, error) {
	if attr == "" {
		return "", nil
	}
	segs, ok := splitName(attr)
	if !ok {
		return "", fmt.Errorf("nix: %q is not an attribute path such as images.lix", attr)
	}
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(".")
		b.WriteString(nixString(s))
	}
	return b.String(), nil
}

// Realise builds the derivations among inputs (.drv store paths; other
// inputs must already be valid) and returns the closure graph of paths,
// whose store paths must be valid once inputs are realised. A failed
// build is a *BuildError.
func (d *Driver) Realise(ctx context.Context, inputs, paths []string) (*Result, error) {
	var drvs []string
	for _, in := range inputs {
		if strings.HasSuffix(in, ".drv") {
			drvs = append(drvs, in)
		}
	}
	if len(drvs) > 0 {
		bctx := ctx
		if d.cfg.Timeout > 0 {
			var cancel context.CancelFunc
			bctx, cancel = context.WithTimeout(ctx, d.cfg.Timeout)
			defer cancel()
		}
		args := append([]string{"--realise"}, d.commonArgs()...)
		args = append(args, "--")
		args = append(args, drvs...)
		d.builds.Add(1)
		d.log.Info("nix-store --realise", "drvs", drvs)
		if _, tail, err := d.run(bctx, "nix-store", args, ""); err != nil {
			var pe *procError
			if !errors.As(err, &pe) {
				return nil, fmt.Errorf("nix: realise: %w", err)
			}
			names := make([]string, len(drvs))
			for i, p := range drvs {
				names[i] = strings.TrimSuffix(storeName(p), ".drv")
			}
			return nil, &BuildError{Attrs: names, Log: strings.Join(tail, "\n"), Err: err,
				Timeout: pe.timedOut, Canceled: pe.canceled}
		}
	}
	roots := make([]string, 0, len(paths))
	for _, p := range paths {
		r, err := StorePathOf(p)
		if err != nil {
			return nil, err
		}
		roots = append(roots, r)
	}
	res := &Result{}
	if len(roots) == 0 {
		return res, nil
	}
	g, err := d.closure(ctx, roots)
	if err != nil {
		return nil, err
	}
	res.Graph = g
	for _, p := range roots {
		res.Packages = append(res.Packages, Package{Attr: p, Name: storeName(p), OutPath: p})
	}
	return res, nil
}

// StorePathOf is the store path that holds p ("/nix/store/<hash>-name"
// for "/nix/store/<hash>-name/bin/sh").
func StorePathOf(p string) (string, error) {
	const dir = "/nix/store/"
	if !strings.HasPrefix(p, dir) || len(p) <= len(dir)+33 {
		return "", fmt.Errorf("nix: %q is not a store path under /nix/store", p)
	}
	rest := p[len(dir):]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	if len(rest) < 34 || rest[32] != '-' {
		return "", fmt.Errorf("nix: %q is not a store path (want /nix/store/<hash>-<name>)", p)
	}
	return dir + rest, nil
}
