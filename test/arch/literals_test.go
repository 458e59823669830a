package arch

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"strata/internal/errcode"
)

// eachLiteral calls visit with every string literal of the module's
// non-test Go files (outside testdata, tools and the directories skipDir
// names), its position and its file relative to the module root.
func eachLiteral(t *testing.T, skipDir func(rel string) bool, visit func(pos token.Position, rel, s string)) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "tools" || skipDir(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					visit(fset.Position(lit.Pos()), rel, s)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read %d Go files under %s: the walk missed the module's sources", files, root)
	}
}

// keyPrefixes are the beginnings of storage keys that only
// internal/storage/paths.go may spell.
var keyPrefixes = []string{
	"blobs/", "cache/", "repos/", "uploads/", "nixcache/", "readyz/", "images/",
	"_locks", "_staging", "_tags", "_manifests", "_blobs", "_referrers",
	"/_tags", "/_manifests", "/_blobs", "/_referrers",
}

// notKeys are literals that begin like a key but are not one:
// file → literal → why.
var notKeys = map[string]map[string]string{
	"internal/registry/route.go": {"uploads/": "the distribution API's URL path /v2/<name>/blobs/uploads/"},
}

// TestKeyPrefixesSpelledOnce checks that every storage key prefix is
// spelled in internal/storage/paths.go only.
func TestKeyPrefixesSpelledOnce(t *testing.T) {
	skip := func(rel string) bool {
		// storagetest is the backends' suite: its keys are sample data.
		return rel == "internal/storage/storagetest"
	}
	eachLiteral(t, skip, func(pos token.Position, rel, s string) {
		if rel == "internal/storage/paths.go" {
			return
		}
		for _, p := range keyPrefixes {
			if strings.HasPrefix(s, p) {
				if _, ok := notKeys[rel][s]; !ok {
					t.Errorf("%s: the key prefix %q is spelled outside internal/storage/paths.go: use its layout function", pos, s)
				}
				return
			}
		}
	})
}

// TestCodesSpelledOnce checks that no error code is spelled outside
// internal/errcode.
func TestCodesSpelledOnce(t *testing.T) {
	codes := map[string]bool{}
	for _, c := range errcode.All() {
		codes[string(c)] = true
	}
	skip := func(rel string) bool { return rel == "internal/errcode" }
	eachLiteral(t, skip, func(pos token.Position, _ string, s string) {
		if codes[s] {
			t.Errorf("%s: the error code %q is spelled outside internal/errcode: use its errcode constant", pos, s)
		}
	})
}
