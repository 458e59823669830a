package buildspec

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const good = `name: demo
packages: [busybox, hello]
layers:
  - name: base
    packages: [busybox]
  - packages: [zlib, libbar]
config:
  cmd: [hello]
  env: {LANG: C.UTF-8}
  exposedPorts: ["8080", 53/udp]
  labels: {a: b}
users:
  - {name: app, uid: 1000}
groups:
  - {name: app, gid: 1000, members: [app]}
files:
  - {path: /tmp, dir: true, mode: 1777}
  - {path: /etc/motd, content: "hi\n", mode: "0600", uid: 1000}
nixDatabase: true
platforms: [linux/amd64]
annotations: {org.opencontainers.image.version: "1.0"}
maxLayers: 50
compression: zstd
`

func TestParseGood(t *testing.T) {
	d, err := Parse("image.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	r := d.Request()
	if r.Name != "demo" || len(r.Layers) != 2 || r.Layers[1].Packages[1] != "libbar" || !r.NixDB || r.MaxLayers != 50 {
		t.Fatalf("request: %+v", r)
	}
	if r.Files[0].Mode != fs.ModeSticky|0o777 {
		t.Errorf("/tmp mode = %v, want sticky 0777", r.Files[0].Mode)
	}
	if r.Files[1].Mode != 0o600 || string(r.Files[1].Content) != "hi\n" || r.Files[1].UID != 1000 {
		t.Errorf("motd: %+v", r.Files[1])
	}
	if r.Users[0].GID != 1000 {
		t.Errorf("gid defaults to uid: %+v", r.Users[0])
	}
	if !slices.Equal(r.Config.Env, []string{"LANG=C.UTF-8"}) {
		t.Errorf("env %v", r.Config.Env)
	}
}

func TestErrorsNameTheLine(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"unknown key", "name: x\npackages: [hello]\nconfig:\n  cmd: [hello]\n  entrypiont: [sh]\n", `line 5: unknown key "entrypiont" in config (did you mean "entrypoint"?)`},
		{"unknown top key", "name: x\nlayer:\n  - packages: [a]\n", `line 2: unknown key "layer"`},
		{"wrong type", "name: x\nmaxLayers: many\n", `line 2: wrong type: the string "many", want a number`},
		{"wrong type list", "packages: hello\n", "line 1: wrong type"},
		{"overlap", "layers:\n  - packages: [busybox]\n  - packages:\n      - zlib\n      - busybox\n", `line 5: layers[1].packages[1]: package "busybox" is in layer groups 1 and 2`},
		{"dup uid", "users:\n  - name: a\n    uid: 1\n  - name: b\n    uid: 1\n", `line 5: users[1].uid: user "b" has uid 1, which user "a" already has`},
		{"bad mode", "files:\n  - path: /x\n    mode: 999\n", "line 3:"},
		{"bad package", "packages:\n  - hello\n  - 'not a/name'\n", "line 3: packages[1]"},
		{"syntax", "packages: [hello\n", "syntax error"},
		{"store file", "files:\n  - path: /nix/store/x\n", "line 2: files[0].path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("image.yaml", []byte(c.doc))
			if err == nil {
				t.Fatalf("no error for\n%s", c.doc)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "image.yaml: ") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestNixErrorsNamePaths(t *testing.T) {
	_, err := ParseNix("image.nix", []byte(`{"users":[{"name":"a","uid":1},{"name":"b","uid":1}]}`), nil)
	if err == nil || !strings.Contains(err.Error(), "users[1].uid") || strings.Contains(err.Error(), "line ") {
		t.Fatalf("error %v: want a path and no line", err)
	}
}

// TestSchemaMatchesFormat keeps schema.json and the Go types in step.
func TestSchemaMatchesFormat(t *testing.T) {
	var s struct {
		Properties map[string]struct {
			Properties map[string]any `json:"properties"`
			Items      struct {
				Properties map[string]any `json:"properties"`
			} `json:"items"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(Schema, &s); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) []string {
		var k []string
		for x := range m {
			k = append(k, x)
		}
		slices.Sort(k)
		return k
	}
	sorted := func(t reflect.Type) []string { k := Keys(t); slices.Sort(k); return k }
	var top []string
	for k := range s.Properties {
		top = append(top, k)
	}
	slices.Sort(top)
	if want := sorted(reflect.TypeOf(Description{})); !slices.Equal(top, want) {
		t.Errorf("schema top-level keys %v, Go %v", top, want)
	}
	for name, typ := range map[string]reflect.Type{"layers": reflect.TypeOf(Layer{}), "users": reflect.TypeOf(User{}), "groups": reflect.TypeOf(Group{}), "files": reflect.TypeOf(File{})} {
		if got, want := keys(s.Properties[name].Items.Properties), sorted(typ); !slices.Equal(got, want) {
			t.Errorf("schema %s keys %v, Go %v", name, got, want)
		}
	}
	if got, want := keys(s.Properties["config"].Properties), sorted(reflect.TypeOf(Config{})); !slices.Equal(got, want) {
		t.Errorf("schema config keys %v, Go %v", got, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("packages: [a]\nlayers: [{packages: [a]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("f.yaml", data)
		if err == nil {
			_ = d.Request()
		}
	})
}

func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte("print('hi')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := "files:\n  - {path: /app/app.py, source: app.py, mode: \"0644\"}\n"
	d, err := Parse(filepath.Join(dir, "image.yaml"), []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(d.Request().Files[0].Content); got != "print('hi')\n" {
		t.Errorf("content %q, want the source file's", got)
	}
	_, err = Parse(filepath.Join(dir, "image.yaml"), []byte("files:\n  - path: /x\n    source: missing.py\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3: files[0].source") || !strings.Contains(err.Error(), "missing.py") {
		t.Errorf("missing source: error %v, want its line and name", err)
	}
	_, err = Parse(filepath.Join(dir, "image.yaml"), []byte("files:\n  - {path: /x, source: app.py, content: x}\n"))
	if err == nil || !strings.Contains(err.Error(), "one of content, source") {
		t.Errorf("content and source: error %v", err)
	}
}
