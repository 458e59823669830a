package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"strata/internal/nix"
)

func TestParseCheckSource(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if err := os.MkdirAll(filepath.Join(repo, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   string
		want nix.Config
		ref  string
	}{
		{dir, nix.Config{PkgsPath: dir}, ""},
		{repo + "#v2", nix.Config{PkgsRepo: repo}, "v2"},
		{"git:https://example.org/pkgs.git#main", nix.Config{PkgsRepo: "https://example.org/pkgs.git"}, "main"},
		{"git:" + repo, nix.Config{PkgsRepo: repo}, ""},
		{"channel:nixos-24.05", nix.Config{Channel: "nixos-24.05"}, ""},
		{"flake:github:NixOS/nixpkgs/nixos-24.05", nix.Config{Flake: "github:NixOS/nixpkgs/nixos-24.05"}, ""},
		{"github:NixOS/nixpkgs/nixos-unstable", nix.Config{Flake: "github:NixOS/nixpkgs/nixos-unstable"}, ""},
		{"git+https://example.org/pkgs", nix.Config{Flake: "git+https://example.org/pkgs"}, ""},
	} {
		s, err := parseCheckSource("--to", c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if s.cfg.PkgsPath != c.want.PkgsPath || s.cfg.PkgsRepo != c.want.PkgsRepo || s.cfg.Channel != c.want.Channel || s.cfg.Flake != c.want.Flake || s.ref != c.ref {
			t.Errorf("%s: %+v ref %q, want %+v ref %q", c.in, s.cfg, s.ref, c.want, c.ref)
		}
	}
	for _, bad := range []string{"", "nosuchdir", dir + "#v1", "git:", "channel:"} {
		if _, err := parseCheckSource("--to", bad); err == nil || !strings.Contains(err.Error(), "--to") {
			t.Errorf("%q: err %v, want an error naming --to", bad, err)
		}
	}
	s, _ := parseCheckSource("--from", "git:https://user:hunter2@example.org/pkgs.git#v1")
	if strings.Contains(s.label, "hunter2") || s.cfg.PkgsRepo != "https://user:hunter2@example.org/pkgs.git" {
		t.Errorf("label %q, repo %q", s.label, s.cfg.PkgsRepo)
	}
}

func TestClassify(t *testing.T) {
	ok := func(v string) *nix.PackageState {
		return &nix.PackageState{State: nix.StateOK, Version: v, DrvName: "p-" + v}
	}
	for _, c := range []struct {
		from *nix.PackageState
		to   nix.PackageState
		want string
	}{
		{ok("1"), *ok("1"), changeUnchanged},
		{ok("1"), *ok("2"), changeVersion},
		{ok("1"), nix.PackageState{State: nix.StateOK, Version: "1", DrvName: "p-1", Replacement: "q"}, changeDeprecated},
		{ok("1"), nix.PackageState{State: nix.StateRenamed, Replacement: "q"}, changeRenamed},
		{ok("1"), nix.PackageState{State: nix.StateRemoved}, changeRemoved},
		{ok("1"), nix.PackageState{State: nix.StateBroken}, changeEvalFailed},
		{ok("1"), nix.PackageState{State: nix.StateEvalFailed}, changeEvalFailed},
		{&nix.PackageState{State: nix.StateRemoved}, *ok("1"), changeFixed},
		{&nix.PackageState{State: nix.StateRenamed}, nix.PackageState{State: nix.StateRenamed}, changeStillFailing},
		{nil, nix.PackageState{State: nix.StateRenamed}, changeRenamed},
		{nil, *ok("1"), changeUnchanged},
	} {
		if got := classify(c.from, c.to); got != c.want {
			t.Errorf("classify(%+v, %+v) = %s, want %s", c.from, c.to, got, c.want)
		}
	}
}
