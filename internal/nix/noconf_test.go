package nix

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBuildWithoutNixConfig builds with Nix as Debian's nix-bin leaves it:
// no nix.conf anywhere (so, as root, Nix wants the build users of a
// 'nixbld' group that does not exist). The driver passes what it needs.
func TestBuildWithoutNixConfig(t *testing.T) {
	requireNix(t)
	empty := t.TempDir()
	t.Setenv("NIX_CONF_DIR", empty)
	t.Setenv("NIX_USER_CONF_FILES", filepath.Join(empty, "none.conf"))
	t.Setenv("XDG_CONFIG_HOME", empty)
	t.Setenv("NIX_CONFIG", "")

	// A derivation no other run has built, so Nix really builds it.
	nonce := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	dir := t.TempDir()
	expr := `{ system ? builtins.currentSystem, crossSystem ? null, ... }:
let bb = builtins.path { name = "busybox"; path = ` + busyboxDir(t) + `; filter = p: t: baseNameOf p == "busybox"; };
in {
  noconf = derivation {
    name = "noconf-` + nonce + `";
    inherit system;
    builder = "${bb}/busybox";
    args = [ "sh" "-c" "${bb}/busybox mkdir -p $out && echo ok > $out/ok" ];
  };
}
`
	if err := os.WriteFile(filepath.Join(dir, "default.nix"), []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := newDriver(t, Config{PkgsPath: dir})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := d.Build(ctx, "", Target{System: "x86_64-linux"}, []string{"noconf"})
	if err != nil {
		t.Fatalf("build with no Nix configuration: %v", err)
	}
	if len(res.Packages) != 1 {
		t.Fatalf("packages = %v, want one", res.Packages)
	}
	b, err := os.ReadFile(filepath.Join(res.Packages[0].OutPath, "ok"))
	if err != nil || string(b) != "ok\n" {
		t.Fatalf("built output holds %q, %v; want \"ok\\n\"", b, err)
	}
}

// busyboxDir is the directory holding the static amd64 busybox.
func busyboxDir(t testing.TB) string {
	for _, p := range []string{"/usr/bin/busybox", "/bin/busybox"} {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(r)
		}
	}
	t.Fatal("static busybox missing: run scripts/deps.sh run")
	return ""
}
