package cli

import (
	"io"
	"testing"
	"time"
)

func TestServeFlagsDefaultToNixeryVariables(t *testing.T) {
	vars := map[string]string{
		"PORT":                   "9999",
		"NIXERY_PKGS_PATH":       "/pkgs",
		"NIXERY_CHANNEL":         "nixos-unstable",
		"NIXERY_PKGS_REPO":       "https://example.invalid/pkgs.git",
		"NIXERY_STORAGE_BACKEND": "filesystem",
		"STORAGE_PATH":           "/var/lib/strata",
		"NIX_TIMEOUT":            "42",
		"NIX_POPULARITY_URL":     "/pop.json",
	}
	env := &Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string { return vars[k] }}
	cmd := newServeCmd(env)
	want := map[string]string{
		"listen":       ":9999",
		"pkgs-path":    "/pkgs",
		"channel":      "nixos-unstable",
		"pkgs-repo":    "https://example.invalid/pkgs.git",
		"storage":      "filesystem",
		"storage-path": "/var/lib/strata",
		"nix-timeout":  (42 * time.Second).String(),
		"popularity":   "/pop.json",
	}
	for name, v := range want {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			t.Fatalf("no --%s", name)
		}
		if f.DefValue != v {
			t.Errorf("--%s defaults to %q, want %q from the environment", name, f.DefValue, v)
		}
	}
	// A flag on the command line wins over its variable.
	if err := cmd.Flags().Parse([]string{"--listen", "127.0.0.1:1", "--storage-path", "/elsewhere"}); err != nil {
		t.Fatal(err)
	}
	if got := cmd.Flags().Lookup("listen").Value.String(); got != "127.0.0.1:1" {
		t.Errorf("--listen = %q", got)
	}
	if got := cmd.Flags().Lookup("storage-path").Value.String(); got != "/elsewhere" {
		t.Errorf("--storage-path = %q", got)
	}
}
