// Package arch checks the import layers written in docs/architecture.md
// against what the packages import.
package arch

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const module = "strata/"

// layerMap reads the table under "## Import layers" in
// docs/architecture.md: package (without the module prefix) → layer.
func layerMap(t *testing.T) map[string]int {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile(`^\| (\d+) \| (.*) \|$`)
	name := regexp.MustCompile("`([^`]+)`")
	layers := map[string]int{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Import layers"
			continue
		}
		m := row.FindStringSubmatch(line)
		if !in || m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		for _, p := range name.FindAllStringSubmatch(m[2], -1) {
			if prev, ok := layers[p[1]]; ok {
				t.Errorf("docs/architecture.md: %s is in layers %d and %d", p[1], prev, n)
			}
			layers[p[1]] = n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(layers) < 10 {
		t.Fatalf("docs/architecture.md: the import layers table names %d packages; is the section \"## Import layers\" there?", len(layers))
	}
	return layers
}

// TestImportLayers checks that every package of internal/, cmd/ and web is
// in the table and imports only packages of lower layers.
func TestImportLayers(t *testing.T) {
	layers := layerMap(t)
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./internal/...", "./cmd/...", "./web/...")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		pkgs++
		l, ok := layers[pkg]
		if !ok {
			t.Errorf("%s is not in the import layers table of docs/architecture.md: add it to the lowest layer above everything it imports", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			dl, ok := layers[dep]
			if !ok {
				continue // reported as a package of its own
			}
			if dl >= l {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports run from higher layers to lower ones only (docs/architecture.md, Import layers)", pkg, l, dep, dl)
			}
		}
	}
	if pkgs < 10 {
		t.Fatalf("go list named %d packages", pkgs)
	}
}
