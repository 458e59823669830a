package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckPinsRefusesUnservedPins runs `make check-pins`'s script on a tree
// that pins versions the module proxy refuses (a release name where the
// proxy serves only module versions, in a script and in a tools go.mod)
// beside one it serves: it fails and names exactly the refused ones.
func TestCheckPinsRefusesUnservedPins(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Spelled in two parts, so that check-pins of this repository does not
	// take them for pins of its own.
	refused := "honnef.co/go/tools/cmd/staticcheck" + "@2025.1.1"
	served := "github.com/google/go-containerregistry/cmd/crane" + "@v0.22.1"
	write("scripts/tools.sh", "go install "+refused+"\ngo install "+served+"\n")
	write("tools/go.mod", "module x/tools\n\ngo 1.26\n\nrequire github.com/regclient/regclient v0.0.0-refused\n")
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts", "check-pins.sh"), root)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("check-pins passed on refused pins:\n%s", out)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("check-pins: %v, want exit status 1\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{refused, "tools/go.mod", "2 pinned version(s)"} {
		if !strings.Contains(s, want) {
			t.Errorf("check-pins output does not name %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, served) {
		t.Errorf("check-pins names a pin the proxy serves:\n%s", s)
	}
}
