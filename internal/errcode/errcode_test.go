package errcode_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"strata/internal/errcode"
)

func TestAll(t *testing.T) {
	codes := errcode.All()
	if len(codes) != 16 {
		t.Errorf("All() has %d codes, want 16: %q", len(codes), codes)
	}
	if !slices.IsSorted(codes) || len(slices.Compact(slices.Clone(codes))) != len(codes) {
		t.Errorf("All() is not sorted and unique: %q", codes)
	}
	for _, c := range []errcode.Code{errcode.ManifestUnknown, errcode.NameInvalid, errcode.Unknown, errcode.PaginationNumberInvalid} {
		if !slices.Contains(codes, c) {
			t.Errorf("All() lacks %s", c)
		}
	}
}

type coded struct{ code string }

func (e coded) Error() string     { return "coded " + e.code }
func (e coded) ErrorCode() string { return e.code }

func TestOf(t *testing.T) {
	err := fmt.Errorf("outer: %w", coded{string(errcode.ManifestUnknown)})
	if c, ok := errcode.Of(err); !ok || c != errcode.ManifestUnknown {
		t.Errorf("Of(wrapped) = %q, %v; want MANIFEST_UNKNOWN, true", c, ok)
	}
	if c, ok := errcode.Of(errors.New("plain")); ok || c != "" {
		t.Errorf("Of(plain) = %q, %v; want \"\", false", c, ok)
	}
}

// TestCodesSpelledOnce checks that no non-test Go file of the module
// outside this package spells an error code as a string literal.
func TestCodesSpelledOnce(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]bool{}
	for _, c := range errcode.All() {
		codes[string(c)] = true
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
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "tools" || rel == "internal/errcode" {
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
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && codes[s] {
				t.Errorf("%s: the error code %q is spelled outside internal/errcode: use its errcode constant", fset.Position(lit.Pos()), s)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read %d files under %s: the walk missed the module's sources", files, root)
	}
}
