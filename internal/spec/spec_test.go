package spec

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, tag string
		want      Spec
	}{
		{"hello", "", Spec{Packages: []string{"hello"}, Ref: "latest"}},
		{"shell/hello", "v1", Spec{Packages: []string{"hello"}, Shell: true, Ref: "v1"}},
		{"hello/shell/hello", "", Spec{Packages: []string{"hello"}, Shell: true, Ref: "latest"}},
		{"shell", "", Spec{Shell: true, Ref: "latest"}},
		{"arm64/shell/htop/git", "", Spec{Packages: []string{"git", "htop"}, Shell: true, Platform: "linux/arm64", Ref: "latest"}},
		{"amd64/hello/amd64", "", Spec{Packages: []string{"hello"}, Platform: "linux/amd64", Ref: "latest"}},
		{"python3packages.numpy", "", Spec{Packages: []string{"python3packages.numpy"}, Ref: "latest"}},
		{"buildpacks/hello", "", Spec{Packages: []string{"hello"}, Buildpacks: true, Ref: "latest"}},
		{"a__b/c-d/e--f", "", Spec{Packages: []string{"a__b", "c-d", "e--f"}, Ref: "latest"}},
		{"nix-snapshotter/shell/hello", "", Spec{Packages: []string{"hello"}, Shell: true, NixSnapshotter: true, Ref: "latest"}},
	}
	for _, c := range cases {
		got, err := Parse(c.name, c.tag)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestNixSnapshotterName(t *testing.T) {
	a, err := Parse("hello/nix-snapshotter/shell", "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != "nix-snapshotter/shell/hello" {
		t.Errorf("Name() = %q", a.Name())
	}
	if b, _ := Parse("shell/hello", ""); b.Name() == a.Name() {
		t.Error("a nix-snapshotter image has the name of a layered one")
	}
	if _, err := Parse("nix-snapshotter", ""); err == nil {
		t.Error("nix-snapshotter alone names no package, yet parsed")
	}
}

func TestOrderAndDuplicatesDoNotMatter(t *testing.T) {
	a, _ := Parse("shell/git/htop", "")
	b, _ := Parse("htop/git/shell/git", "")
	if a.Name() != b.Name() || !reflect.DeepEqual(a, b) {
		t.Fatalf("%+v != %+v", a, b)
	}
	if a.Name() != "shell/git/htop" {
		t.Fatalf("canonical name %q", a.Name())
	}
}

func TestParseRejects(t *testing.T) {
	bad := []struct{ name, tag string }{
		{"", ""},
		{"Hello", ""},
		{"hello/../etc", ""},
		{"hello//git", ""},
		{"/hello", ""},
		{"hello/", ""},
		{".hello", ""},
		{"hello.", ""},
		{"-hello", ""},
		{"he___llo", ""},
		{"he@llo", ""},
		{"amd64/arm64/hello", ""},
		{"amd64", ""},
		{strings.Repeat("a", 10000), ""},
		{"hello", "-bad"},
		{"hello", strings.Repeat("t", 129)},
		{"hello", "a/b"},
	}
	for _, c := range bad {
		_, err := Parse(c.name, c.tag)
		var se *Error
		if !errors.As(err, &se) {
			t.Errorf("Parse(%.40q, %q): want *Error, got %v", c.name, c.tag, err)
			continue
		}
		if se.ErrorCode() != "NAME_INVALID" {
			t.Errorf("code %q", se.ErrorCode())
		}
		if len(se.Error()) > 300 {
			t.Errorf("error message too long: %d bytes", len(se.Error()))
		}
	}
}

// The distribution spec's grammar for a repository name.
var nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)

func FuzzParse(f *testing.F) {
	for _, s := range []string{"hello", "shell/hello", "a.b/c_d", "a__b", "x--y", "arm64/shell", "../x", "A", "a/", strings.Repeat("a/", 50)} {
		f.Add(s, "latest")
	}
	f.Fuzz(func(t *testing.T, name, tag string) {
		s, err := Parse(name, tag)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("non-spec error %T", err)
			}
			return
		}
		if !nameRE.MatchString(name) || len(name) > MaxNameLength {
			t.Fatalf("accepted %q, which the distribution grammar rejects", name)
		}
		// The canonical name parses back to the same spec.
		again, err := Parse(s.Name(), tag)
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("canonical %q: %+v, %v; want %+v", s.Name(), again, err, s)
		}
	})
}
