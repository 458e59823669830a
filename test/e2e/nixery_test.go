package e2e

import (
	"strings"
	"testing"
	"time"
)

// Nixery's variables configure strata; a flag wins over its variable.
func TestNixeryVariablesAndFailures(t *testing.T) {
	s := startServer(t, serverOpts{
		envOnly: true,
		// PORT would listen on every interface; --listen (set by the
		// harness to 127.0.0.1) must win over it.
		env: []string{"PORT=1", "NIX_TIMEOUT=3"},
	})
	if d, _, _ := manifestDigest(t, s.Addr, "hello", "latest"); !strings.HasPrefix(d, "sha256:") {
		t.Fatalf("digest %q", d)
	}
	if got := listStorage(t, s.Storage); len(got) == 0 {
		t.Fatal("STORAGE_PATH was not used: nothing stored there")
	}

	// A failing build: the error says the build failed, and the end of the
	// Nix log is in the server's log.
	resp, body := rawGet(t, s.Addr, "/v2/failingbuild/manifests/latest")
	if resp.StatusCode < 400 || !strings.Contains(string(body), "failed") || !strings.Contains(string(body), "failingBuild") {
		t.Fatalf("failing build: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(s.Log(), "error: this build always fails") {
		t.Fatal("the server log lacks the end of the Nix log")
	}

	// NIX_TIMEOUT=3: a build that hangs answers with a timeout error, soon.
	start := time.Now()
	resp, body = rawGet(t, s.Addr, "/v2/slowbuild/manifests/latest")
	took := time.Since(start)
	if resp.StatusCode < 400 || !strings.Contains(string(body), "timed out") {
		t.Fatalf("hanging build: %d %s", resp.StatusCode, body)
	}
	if took > 30*time.Second {
		t.Fatalf("a 3s NIX_TIMEOUT answered after %s", took)
	}
}

// The flags document themselves and name their variables.
func TestServeHelpDocumentsEachFlag(t *testing.T) {
	out := mustRun(t, time.Minute, strataBin, "serve", "--help")
	for _, want := range []string{"--listen", "PORT", "--pkgs-path", "NIXERY_PKGS_PATH", "--channel", "NIXERY_CHANNEL",
		"--pkgs-repo", "NIXERY_PKGS_REPO", "--storage", "NIXERY_STORAGE_BACKEND", "--storage-path", "STORAGE_PATH",
		"--nix-timeout", "NIX_TIMEOUT", "--popularity", "NIX_POPULARITY_URL", "--platforms", "--max-layers"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help does not mention %s", want)
		}
	}
}
