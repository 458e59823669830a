package nix

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"strata/internal/closure"
)

// Build builds the (resolved, canonical) attribute paths attrs for target
// t with one nix-build --no-out-link, then reads the closure of the
// outputs with one `nix path-info --json -r` (nix-store --dump-db when
// that fails). Duplicate attrs are built once. A failure, time-out or
// cancellation is a *BuildError; Config.Timeout bounds the nix-build, and
// on time-out its process group is interrupted and then killed.
func (d *Driver) Build(ctx context.Context, ref string, t Target, attrs []string) (*Result, error) {
	if err := checkTarget(t); err != nil {
		return nil, err
	}
	var (
		uniq []string
		segs [][]string
		bad  []string
		seen = map[string]bool{}
	)
	for _, a := range attrs {
		s, ok := splitName(a)
		if !ok {
			bad = append(bad, a)
			continue
		}
		if seen[a] {
			continue
		}
		seen[a] = true
		uniq = append(uniq, a)
		segs = append(segs, s)
	}
	if len(bad) > 0 {
		return nil, &InvalidNameError{Names: bad}
	}
	if len(uniq) == 0 {
		g, _ := closure.New(nil, nil)
		return &Result{Graph: g}, nil
	}
	src, err := d.source(ctx, ref)
	if err != nil {
		return nil, err
	}
	var list strings.Builder
	list.WriteString("[\n")
	for _, s := range segs {
		list.WriteString("  ")
		list.WriteString(nixAttrPath("pkgs", s))
		list.WriteString("\n")
	}
	list.WriteString("]\n")
	expr := d.pkgsExpr(src, t) + list.String()

	bctx := ctx
	if d.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		bctx, cancel = context.WithTimeout(ctx, d.cfg.Timeout)
		defer cancel()
	}
	args := append([]string{"--no-out-link"}, d.commonArgs()...)
	args = append(args, "-E", expr)
	d.builds.Add(1)
	d.log.Info("nix-build", "attrs", uniq, "target", t.String())
	out, tail, err := d.run(bctx, "nix-build", args, "")
	if err != nil {
		var pe *procError
		if !errors.As(err, &pe) {
			return nil, fmt.Errorf("nix: build: %w", err)
		}
		be := &BuildError{Attrs: uniq, Target: t, Log: strings.Join(tail, "\n"), Err: err}
		if pe.timedOut {
			be.Timeout = true
			if ctx.Err() == nil {
				be.Limit = d.cfg.Timeout
			}
		}
		be.Canceled = pe.canceled
		return nil, be
	}
	outs := storePaths(out)
	if len(outs) != len(uniq) {
		// An attribute with several outputs or a list of derivations:
		// ask the evaluator for the out paths (already built).
		outs, err = d.outPaths(ctx, src, t, segs)
		if err != nil {
			return nil, err
		}
	}
	g, err := d.closure(ctx, outs)
	if err != nil {
		return nil, err
	}
	res := &Result{Graph: g}
	for i, a := range uniq {
		res.Packages = append(res.Packages, Package{Attr: a, Name: storeName(outs[i]), OutPath: outs[i]})
	}
	return res, nil
}

// storePaths are the absolute paths printed one a line by nix-build.
func storePaths(out []byte) []string {
	var ps []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "/") {
			ps = append(ps, l)
		}
	}
	return ps
}

// storeName is a store path's name without its hash: "hello-2.12.1".
func storeName(p string) string {
	b := path.Base(p)
	if i := strings.IndexByte(b, '-'); i == 32 {
		return b[i+1:]
	}
	return b
}

// outPaths evaluates the out path of each attribute.
func (d *Driver) outPaths(ctx context.Context, src source, t Target, segs [][]string) ([]string, error) {
	var list strings.Builder
	list.WriteString("map (d: d.outPath) [\n")
	for _, s := range segs {
		list.WriteString("  ")
		list.WriteString(nixAttrPath("pkgs", s))
		list.WriteString("\n")
	}
	list.WriteString("]\n")
	var outs []string
	if err := d.eval(ctx, "evaluating out paths", d.pkgsExpr(src, t)+list.String(), &outs); err != nil {
		return nil, err
	}
	if len(outs) != len(segs) {
		return nil, fmt.Errorf("nix: %d out paths for %d attributes", len(outs), len(segs))
	}
	return outs, nil
}

// closure reads the closure graph of roots: narSize, narHash and
// references of every path.
func (d *Driver) closure(ctx context.Context, roots []string) (*closure.Graph, error) {
	args := []string{"--extra-experimental-features", "nix-command", "path-info", "--json", "--recursive"}
	args = append(args, d.commonArgs()...)
	args = append(args, "--")
	args = append(args, roots...)
	out, _, err := d.run(ctx, "nix", args, "")
	var nodes []*closure.Path
	if err == nil {
		nodes, err = parsePathInfo(out)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("nix: closure: %w", ctx.Err())
		}
		d.log.Debug("nix path-info failed, falling back to nix-store --dump-db", "err", err)
		nodes, err = d.closureDumpDB(ctx, roots)
		if err != nil {
			return nil, err
		}
	}
	g, err := closure.New(nodes, roots)
	if err != nil {
		return nil, fmt.Errorf("nix: closure: %w", err)
	}
	return g, nil
}

// closureDumpDB is the closure read with nix-store only.
func (d *Driver) closureDumpDB(ctx context.Context, roots []string) ([]*closure.Path, error) {
	args := append([]string{"--query", "--requisites", "--"}, roots...)
	out, _, err := d.run(ctx, "nix-store", args, "")
	if err != nil {
		return nil, fmt.Errorf("nix: closure of %s: %w", strings.Join(roots, " "), err)
	}
	reqs := storePaths(out)
	out, _, err = d.run(ctx, "nix-store", append([]string{"--dump-db", "--"}, reqs...), "")
	if err != nil {
		return nil, fmt.Errorf("nix: closure: %w", err)
	}
	nodes, err := parseDumpDB(out)
	if err != nil {
		return nil, fmt.Errorf("nix: closure: %w", err)
	}
	return nodes, nil
}
