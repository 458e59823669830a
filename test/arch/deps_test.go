package arch

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// forbiddenDeps are dependencies a package must not have, even through
// others, though the layers would allow them: package → dependency → why.
var forbiddenDeps = map[string]map[string]string{
	"internal/builder": {
		"internal/registry": "the builder takes requests; the registry's Backend is internal/ondemand",
		"internal/spec":     "an image name becomes a request in internal/ondemand, not in the builder",
	},
	"internal/buildspec": {
		"internal/builder": "a description becomes a buildreq.Request without the orchestrator",
	},
	"internal/buildreq": {
		"internal/builder": "the request is plain data below the builder",
		"internal/spec":    "the request knows no front door",
	},
}

// TestNoFrontDoorInTheBuilder checks forbiddenDeps against go list -deps.
func TestNoFrontDoorInTheBuilder(t *testing.T) {
	for pkg, bad := range forbiddenDeps {
		cmd := exec.Command("go", "list", "-deps", "./"+pkg)
		cmd.Dir = filepath.Join("..", "..")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, module+pkg) {
			t.Fatalf("go list -deps ./%s does not name the package itself: %q", pkg, deps)
		}
		for dep, why := range bad {
			if slices.Contains(deps, module+dep) {
				t.Errorf("%s depends on %s: %s (docs/architecture.md)", pkg, dep, why)
			}
		}
	}
}
