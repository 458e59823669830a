package cli

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOneWriter: the command line writes images only through
// internal/publish (build --output, push, copy, index, publish): no file
// of the package imports go-containerregistry's writers or its default
// keychain, which would bypass the transport (retries, chunked uploads,
// the plain-HTTP guard, redacted logs) and the credential chain.
func TestOneWriter(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{
		"github.com/google/go-containerregistry/pkg/v1/remote",
		"github.com/google/go-containerregistry/pkg/v1/layout",
		"github.com/google/go-containerregistry/pkg/v1/tarball",
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		fs := token.NewFileSet()
		af, err := parser.ParseFile(fs, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if p == bad {
					t.Errorf("%s imports %s: write through internal/publish (publish.Write, publish.Copy) instead", f, p)
				}
			}
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(src), "authn.DefaultKeychain") {
			t.Errorf("%s uses authn.DefaultKeychain: use publish.Keychain, the one credential chain", f)
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("checked %d files: the test runs in the wrong directory", checked)
	}
}
