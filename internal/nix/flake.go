package nix

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// flakeFeatures enables flakes on Nix versions where they are
// experimental.
var flakeFeatures = []string{"--extra-experimental-features", "nix-command flakes"}

// flakeSource locks the configured flake reference with `nix flake
// metadata`: the locked URL is what gets evaluated, so that the revision
// and the build agree; the revision is the locked git revision, else the
// locked NAR hash.
func (d *Driver) flakeSource(ctx context.Context) (source, error) {
	args := append(append([]string(nil), flakeFeatures...), "flake", "metadata", "--json")
	args = append(args, d.commonArgs()...)
	args = append(args, "--", d.cfg.Flake)
	out, tail, err := d.run(ctx, "nix", args, "")
	if err != nil {
		return source{}, &EvalError{What: "locking the flake " + d.cfg.Flake, Log: strings.Join(tail, "\n"), Err: err}
	}
	var md struct {
		URL    string `json:"url"`
		Locked struct {
			Rev     string `json:"rev"`
			NarHash string `json:"narHash"`
		} `json:"locked"`
	}
	if err := json.Unmarshal(out, &md); err != nil {
		return source{}, fmt.Errorf("nix: flake metadata of %s: %w", redact(d.cfg.Flake), err)
	}
	if md.URL == "" {
		md.URL = d.cfg.Flake
	}
	rev := md.Locked.Rev
	if rev == "" {
		rev = md.Locked.NarHash
	}
	if rev == "" {
		rev = md.URL
	}
	return source{expr: nixString(md.URL), rev: rev, flake: true}, nil
}

// crossAttrs maps Nix systems to nixpkgs' pkgsCross attribute names.
var crossAttrs = map[string]string{
	"aarch64-linux": "aarch64-multiplatform",
	"x86_64-linux":  "gnu64",
	"armv7l-linux":  "armv7l-hf-multiplatform",
	"riscv64-linux": "riscv64",
}

// flakePkgsExpr binds pkgs to the flake's package set for t.
func (d *Driver) flakePkgsExpr(src source, t Target) string {
	sys := "builtins.currentSystem"
	if t.System != "" {
		sys = nixString(t.System)
	}
	cross := "null"
	if t.CrossSystem != "" {
		cross = nixString(t.CrossSystem)
		if a, ok := crossAttrs[t.CrossSystem]; ok {
			cross = nixString(a)
		}
	}
	return `let
  flake = builtins.getFlake ` + src.expr + `;
  sys = ` + sys + `;
  cross = ` + cross + `;
  native = flake.legacyPackages.${sys} or flake.packages.${sys}
    or (throw "the flake has neither legacyPackages.${sys} nor packages.${sys}");
  pkgs = if cross == null then native
    else native.pkgsCross.${cross}
      or (throw "the flake's package set has no pkgsCross.${cross}: build this platform natively or with a remote builder");
in
`
}
