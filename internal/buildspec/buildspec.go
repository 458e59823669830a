// Package buildspec is the declarative image description of `strata build`:
// a YAML file (JSON is accepted too, being YAML), or the JSON value a Nix
// expression evaluates to. It parses a description strictly (an unknown key
// or a value of the wrong type is an error that names its line), checks it
// before anything is built (overlapping layer groups, duplicate users,
// groups, uids and paths, bad modes, ports and platforms), and turns it into
// a buildreq.Request.
//
// The format is documented in docs/build.md; schema.json (Schema) is its
// JSON Schema, for editors and CI linters.
package buildspec

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"strata/internal/buildreq"
	"strata/internal/image"
	"strata/internal/layer"
)

// Schema is the JSON Schema of the description format.
//
//go:embed schema.json
var Schema []byte

// Description is an image description.
type Description struct {
	// Name is the image's name: its org.opencontainers.image.title unless
	// annotations say otherwise; default "image".
	Name string `yaml:"name"`
	// Packages are attribute paths of the package set, or store paths;
	// merged into / in this order; default none.
	Packages []string `yaml:"packages"`
	// Include are packages or store paths whose closures are in the image
	// without being merged into /; default none.
	Include []string `yaml:"include"`
	// Layers are explicit layer groups, the image's first layers in order;
	// default none.
	Layers []Layer `yaml:"layers"`
	// Config is the runtime configuration; default empty.
	Config Config `yaml:"config"`
	// Users and Groups are accounts besides root and nobody; default none.
	Users  []User  `yaml:"users"`
	Groups []Group `yaml:"groups"`
	// Files are extra files, directories and symlinks; default none.
	Files []File `yaml:"files"`
	// NixDatabase puts an initialised Nix database listing the image's
	// closure at /nix/var/nix/db; default false.
	NixDatabase bool `yaml:"nixDatabase"`
	// Platforms are os/arch names; default the build machine's platform.
	Platforms []string `yaml:"platforms"`
	// Annotations go on the manifests and the index; default none.
	Annotations map[string]string `yaml:"annotations"`
	// MaxLayers is the layer budget; default 100.
	MaxLayers int `yaml:"maxLayers"`
	// Compression is gzip or zstd; default gzip.
	Compression string `yaml:"compression"`

	// Inputs are store paths a Nix description depends on (set by the
	// caller, not part of the format).
	Inputs []string `yaml:"-"`

	file string     // for messages
	root *yaml.Node // for line numbers
	nix  bool       // evaluated from Nix: no useful line numbers
}

// Layer is an explicit layer group.
type Layer struct {
	// Name describes the layer in the image history; default its packages.
	Name string `yaml:"name"`
	// Packages are attribute paths or store paths; at least one.
	Packages []string `yaml:"packages"`
}

// Config is the runtime configuration.
type Config struct {
	Cmd          []string          `yaml:"cmd"`
	Entrypoint   []string          `yaml:"entrypoint"`
	Env          map[string]string `yaml:"env"`
	WorkingDir   string            `yaml:"workingDir"`
	ExposedPorts []string          `yaml:"exposedPorts"`
	User         string            `yaml:"user"`
	Labels       map[string]string `yaml:"labels"`
	StopSignal   string            `yaml:"stopSignal"`
}

// User is an account.
type User struct {
	Name  string `yaml:"name"`
	UID   *int   `yaml:"uid"`
	GID   *int   `yaml:"gid"`
	Home  string `yaml:"home"`
	Shell string `yaml:"shell"`
	Gecos string `yaml:"gecos"`
}

// Group is a group.
type Group struct {
	Name    string   `yaml:"name"`
	GID     *int     `yaml:"gid"`
	Members []string `yaml:"members"`
}

// File is an extra file, directory or symlink.
type File struct {
	Path    string  `yaml:"path"`
	Content *string `yaml:"content"`
	// Source is a file whose bytes become Content, relative to the
	// description's directory (read when the description is parsed).
	Source  string `yaml:"source"`
	Dir     bool   `yaml:"dir"`
	Symlink string `yaml:"symlink"`
	Mode    Mode   `yaml:"mode"`
	UID     int    `yaml:"uid"`
	GID     int    `yaml:"gid"`
}

// Mode is a file mode written in octal ("0644", "1777", 0755); 0 means
// the default (0644 for files, 0755 for directories).
type Mode uint32

// UnmarshalYAML reads the mode's text as octal digits, quoted or not.
func (m *Mode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int") {
		return fmt.Errorf("line %d: mode must be octal digits such as \"0644\" or \"1777\"", n.Line)
	}
	s := strings.TrimPrefix(strings.TrimPrefix(n.Value, "0o"), "0O")
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("line %d: mode %q is not an octal mode such as \"0644\" or \"1777\"", n.Line, n.Value)
	}
	*m = Mode(v)
	return nil
}

// Error is a mistake in a description, with its place.
type Error struct {
	// File is the description's file name.
	File string
	// Line is the 1-based line, 0 when unknown (an evaluated Nix value).
	Line int
	// Path is where in the description, e.g. "users[3].uid".
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are all the mistakes of a description, in file order.
type Errors []*Error

func (es Errors) Error() string {
	var s []string
	for _, e := range es {
		s = append(s, e.Error())
	}
	return strings.Join(s, "\n")
}

// Parse reads a YAML (or JSON) description; file names it in messages. The
// result is checked (Check).
func Parse(file string, data []byte) (*Description, error) {
	return parse(file, data, false)
}

// ParseNix reads the JSON value of an evaluated Nix description; messages
// name keys by path, as the value has no useful line numbers.
func ParseNix(file string, data []byte, inputs []string) (*Description, error) {
	d, err := parse(file, data, true)
	if err != nil {
		return nil, err
	}
	d.Inputs = inputs
	return d, nil
}

var (
	reUnknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type buildspec\.(\w+)$`)
	reCannot       = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `?(.*?)`? into (.+)$")
	reLine         = regexp.MustCompile(`^line (\d+): (.*)$`)
)

func parse(file string, data []byte, fromNix bool) (*Description, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, syntaxError(file, err)
	}
	d := &Description{file: file, root: &root, nix: fromNix}
	if root.Kind == 0 {
		return nil, &Error{File: file, Msg: "the description is empty; see docs/build.md for the format"}
	}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 && root.Content[0].Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: root.Content[0].Line, Msg: "the description must be a mapping of keys such as packages, layers, config; see docs/build.md"}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(d); err != nil {
		return nil, d.decodeError(err)
	}
	if err := d.Check(); err != nil {
		return nil, err
	}
	return d, nil
}

func syntaxError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := reLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: n, Msg: "syntax error: " + m[2]}
	}
	return &Error{File: file, Msg: "syntax error: " + msg}
}

// sections names the types of the format as a user sees them.
var sections = map[string]reflect.Type{
	"Description": reflect.TypeOf(Description{}),
	"Layer":       reflect.TypeOf(Layer{}),
	"Config":      reflect.TypeOf(Config{}),
	"User":        reflect.TypeOf(User{}),
	"Group":       reflect.TypeOf(Group{}),
	"File":        reflect.TypeOf(File{}),
}

var sectionNames = map[string]string{
	"Description": "the description", "Layer": "a layer group", "Config": "config",
	"User": "a user", "Group": "a group", "File": "a file",
}

// Keys lists the keys a section of the format knows.
func Keys(t reflect.Type) []string {
	var ks []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		ks = append(ks, strings.Split(tag, ",")[0])
	}
	return ks
}

func (d *Description) decodeError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		var out Errors
		msg := err.Error()
		if m := reLine.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			return append(out, d.errAt(n, "", m[2]))
		}
		return append(out, &Error{File: d.file, Msg: msg})
	}
	var out Errors
	for _, e := range te.Errors {
		if m := reUnknownField.FindStringSubmatch(e); m != nil {
			n, _ := strconv.Atoi(m[1])
			msg := fmt.Sprintf("unknown key %q in %s", m[2], sectionNames[m[3]])
			if t, ok := sections[m[3]]; ok {
				known := Keys(t)
				if best := closest(m[2], known); best != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", best)
				} else {
					msg += " (known keys: " + strings.Join(known, ", ") + ")"
				}
			}
			out = append(out, d.errAt(n, "", msg))
			continue
		}
		if m := reCannot.FindStringSubmatch(e); m != nil {
			n, _ := strconv.Atoi(m[1])
			out = append(out, d.errAt(n, "", fmt.Sprintf("wrong type: %s, want %s", describeValue(m[2], m[3]), describeType(m[4]))))
			continue
		}
		if m := reLine.FindStringSubmatch(e); m != nil {
			n, _ := strconv.Atoi(m[1])
			out = append(out, d.errAt(n, "", m[2]))
			continue
		}
		out = append(out, &Error{File: d.file, Msg: e})
	}
	return out
}

func describeValue(kind, v string) string {
	switch kind {
	case "str":
		return fmt.Sprintf("the string %q", v)
	case "int", "float":
		return "the number " + v
	case "bool":
		return "the boolean " + v
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	case "null":
		return "null"
	}
	return kind + " " + v
}

func describeType(t string) string {
	switch {
	case t == "int" || t == "*int" || t == "buildspec.Mode":
		return "a number"
	case t == "string" || t == "*string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping of names to strings"
	case strings.HasPrefix(t, "buildspec."):
		return "a mapping (" + sectionNames[strings.TrimPrefix(t, "buildspec.")] + ")"
	}
	return t
}

// errAt makes an error at a line (YAML) or at a path (Nix).
func (d *Description) errAt(line int, path, msg string) *Error {
	e := &Error{File: d.file, Path: path, Msg: msg}
	if !d.nix {
		e.Line = line
	}
	return e
}

// line finds the line of a place in the description: path elements are
// mapping keys (string) and sequence indexes (int). It returns the
// deepest line found.
func (d *Description) line(path ...any) int {
	if d.root == nil {
		return 0
	}
	n := d.root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						line = n.Content[i].Line
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

func pathString(path ...any) string {
	var b strings.Builder
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		}
	}
	return b.String()
}

// at is an error about the place path.
func (d *Description) at(msg string, path ...any) *Error {
	return d.errAt(d.line(path...), pathString(path...), msg)
}

// LineOfPackage is the first line that names package name (in packages or
// a layer group), 0 when none does or the description came from Nix.
func (d *Description) LineOfPackage(name string) int {
	if d.nix {
		return 0
	}
	for i, p := range d.Packages {
		if p == name {
			return d.line("packages", i)
		}
	}
	for i, l := range d.Layers {
		for j, p := range l.Packages {
			if p == name {
				return d.line("layers", i, "packages", j)
			}
		}
	}
	return 0
}

// File is the description's file name.
func (d *Description) File() string { return d.file }

var (
	attrRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_'-]*(\.[A-Za-z_][A-Za-z0-9_'-]*)*$`)
	envRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	portRE = regexp.MustCompile(`^[0-9]{1,5}(/(tcp|udp|sctp))?$`)
	nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]*\$?$`)
)

func checkPackage(p string) string {
	if strings.HasPrefix(p, "/") {
		if !strings.HasPrefix(p, "/nix/store/") || len(p) < len("/nix/store/")+34 {
			return fmt.Sprintf("%q is not a store path (/nix/store/<hash>-<name>)", p)
		}
		return ""
	}
	if !attrRE.MatchString(p) {
		return fmt.Sprintf("%q is not a package attribute such as hello or python3Packages.numpy", p)
	}
	return ""
}

// Check validates the description: everything that can be known wrong
// before Nix runs. It returns Errors, in file order.
func (d *Description) Check() error {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	d.checkPackages(add)
	d.checkLayers(add)
	d.checkBuild(add)
	d.checkConfig(add)
	users := d.checkUsers(add)
	d.checkGroups(users, add)
	d.checkFiles(add)
	if len(es) == 0 {
		return nil
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
	return es
}

// checkPackages checks the names of packages and include.
func (d *Description) checkPackages(add func(*Error)) {
	for i, p := range d.Packages {
		if msg := checkPackage(p); msg != "" {
			add(d.at(msg, "packages", i))
		}
	}
	for i, p := range d.Include {
		if msg := checkPackage(p); msg != "" {
			add(d.at(msg, "include", i))
		}
	}
}

// checkLayers checks the layer groups: not empty, valid names, and no
// package in two groups.
func (d *Description) checkLayers(add func(*Error)) {
	inGroup := map[string]int{}
	for i, l := range d.Layers {
		if len(l.Packages) == 0 {
			add(d.at("a layer group needs at least one package", "layers", i))
		}
		for j, p := range l.Packages {
			if msg := checkPackage(p); msg != "" {
				add(d.at(msg, "layers", i, "packages", j))
				continue
			}
			if prev, ok := inGroup[p]; ok {
				add(d.at(fmt.Sprintf("package %q is in layer groups %d and %d (overlapping layer groups): a package belongs to one group; remove it from one of them", p, prev+1, i+1), "layers", i, "packages", j))
				continue
			}
			inGroup[p] = i
		}
	}
}

// checkBuild checks how the image is built: maxLayers against the layer
// groups, compression and platforms.
func (d *Description) checkBuild(add func(*Error)) {
	if d.MaxLayers != 0 && d.MaxLayers < 2 {
		add(d.at(fmt.Sprintf("maxLayers %d leaves no room for store paths; use 2 or more", d.MaxLayers), "maxLayers"))
	}
	if d.MaxLayers != 0 && len(d.Layers)+1 > d.MaxLayers {
		add(d.at(fmt.Sprintf("%d layer groups and the customisation layer need %d layers, over maxLayers %d", len(d.Layers), len(d.Layers)+1, d.MaxLayers), "maxLayers"))
	}
	switch d.Compression {
	case "", "gzip", "zstd":
	default:
		add(d.at(fmt.Sprintf("compression %q: use gzip or zstd", d.Compression), "compression"))
	}
	for i, p := range d.Platforms {
		if _, err := image.ParsePlatform(p); err != nil {
			add(d.at(fmt.Sprintf("platform %q: want os/arch such as linux/amd64", p), "platforms", i))
		}
	}
}

// checkConfig checks the image config's environment names and ports, and
// the annotations' keys.
func (d *Description) checkConfig(add func(*Error)) {
	for _, k := range sortedKeys(d.Config.Env) {
		if !envRE.MatchString(k) {
			add(d.at(fmt.Sprintf("%q is not an environment variable name", k), "config", "env", k))
		}
	}
	for i, p := range d.Config.ExposedPorts {
		if !portRE.MatchString(p) {
			add(d.at(fmt.Sprintf("port %q: want a number with an optional /tcp or /udp, e.g. 8080/tcp", p), "config", "exposedPorts", i))
		}
	}
	for _, k := range sortedKeys(d.Annotations) {
		if k == "" {
			add(d.at("an annotation needs a key", "annotations"))
		}
	}
}

// checkUsers checks the users: a valid name and a uid each, neither
// given twice. It returns the index of each user name.
func (d *Description) checkUsers(add func(*Error)) map[string]int {
	users := map[string]int{}
	uids := map[int]int{}
	for i, u := range d.Users {
		switch {
		case u.Name == "":
			add(d.at("a user needs a name", "users", i))
		case !nameRE.MatchString(u.Name):
			add(d.at(fmt.Sprintf("user name %q: use lower-case letters, digits, _, - and .", u.Name), "users", i, "name"))
		}
		if prev, ok := users[u.Name]; ok && u.Name != "" {
			add(d.at(fmt.Sprintf("user %q is defined twice (also users[%d])", u.Name, prev), "users", i, "name"))
		}
		users[u.Name] = i
		if u.UID == nil {
			add(d.at(fmt.Sprintf("user %q needs a uid", u.Name), "users", i))
			continue
		}
		if *u.UID < 0 || (u.GID != nil && *u.GID < 0) {
			add(d.at(fmt.Sprintf("user %q: ids are 0 or more", u.Name), "users", i, "uid"))
		}
		if prev, ok := uids[*u.UID]; ok {
			add(d.at(fmt.Sprintf("user %q has uid %d, which user %q already has (duplicate uid); give each user its own uid", u.Name, *u.UID, d.Users[prev].Name), "users", i, "uid"))
		}
		uids[*u.UID] = i
	}
	return users
}

// checkGroups checks the groups: a valid name and a gid each, neither
// given twice, and members that are users (or root or nobody).
func (d *Description) checkGroups(users map[string]int, add func(*Error)) {
	groups := map[string]int{}
	gids := map[int]int{}
	for i, g := range d.Groups {
		if g.Name == "" || !nameRE.MatchString(g.Name) {
			add(d.at(fmt.Sprintf("group name %q: use lower-case letters, digits, _, - and .", g.Name), "groups", i))
		}
		if prev, ok := groups[g.Name]; ok {
			add(d.at(fmt.Sprintf("group %q is defined twice (also groups[%d])", g.Name, prev), "groups", i, "name"))
		}
		groups[g.Name] = i
		if g.GID == nil {
			add(d.at(fmt.Sprintf("group %q needs a gid", g.Name), "groups", i))
			continue
		}
		if prev, ok := gids[*g.GID]; ok {
			add(d.at(fmt.Sprintf("group %q has gid %d, which group %q already has (duplicate gid)", g.Name, *g.GID, d.Groups[prev].Name), "groups", i, "gid"))
		}
		gids[*g.GID] = i
		for j, m := range g.Members {
			if _, ok := users[m]; !ok && m != "root" && m != "nobody" {
				add(d.at(fmt.Sprintf("group %q lists member %q, who is not a user; add the user or drop the member", g.Name, m), "groups", i, "members", j))
			}
		}
	}
}

// checkFiles checks the extra files: absolute paths outside the store,
// each once, one kind each (a source is read into Content), ids 0 or more.
func (d *Description) checkFiles(add func(*Error)) {
	paths := map[string]int{}
	for i, f := range d.Files {
		switch {
		case !strings.HasPrefix(f.Path, "/"):
			add(d.at(fmt.Sprintf("path %q must be absolute", f.Path), "files", i, "path"))
		case strings.HasPrefix(f.Path+"/", "/nix/store/"):
			add(d.at(fmt.Sprintf("path %q is in /nix/store, which holds store paths only; put the file in a package", f.Path), "files", i, "path"))
		}
		if prev, ok := paths[f.Path]; ok {
			add(d.at(fmt.Sprintf("path %q is given twice (also files[%d])", f.Path, prev), "files", i, "path"))
		}
		paths[f.Path] = i
		kinds := 0
		for _, set := range []bool{f.Content != nil, f.Source != "", f.Dir, f.Symlink != ""} {
			if set {
				kinds++
			}
		}
		if kinds > 1 {
			add(d.at("a file has one of content, source, dir and symlink", "files", i))
		} else if f.Source != "" {
			if e := d.readSource(i); e != nil {
				add(e)
			}
		}
		if f.UID < 0 || f.GID < 0 {
			add(d.at("ids are 0 or more", "files", i))
		}
	}
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// readSource reads files[i].source, relative to the description's
// directory, into its Content.
func (d *Description) readSource(i int) *Error {
	f := &d.Files[i]
	p := f.Source
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(d.file), p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return d.at(fmt.Sprintf("source %q: %v; the path is relative to the description's directory", f.Source, err), "files", i, "source")
	}
	s := string(b)
	f.Content = &s
	f.Source = ""
	return nil
}

// Request turns the description into a build request.
func (d *Description) Request() buildreq.Request {
	req := buildreq.Request{
		Name:        d.Name,
		Packages:    d.Packages,
		Include:     d.Include,
		Inputs:      d.Inputs,
		NixDB:       d.NixDatabase,
		Platforms:   d.Platforms,
		Annotations: d.Annotations,
		MaxLayers:   d.MaxLayers,
	}
	for _, l := range d.Layers {
		req.Layers = append(req.Layers, buildreq.LayerGroup{Name: l.Name, Packages: l.Packages})
	}
	c := d.Config
	req.Config = image.Config{
		Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir,
		ExposedPorts: c.ExposedPorts, User: c.User, Labels: c.Labels, StopSignal: c.StopSignal,
	}
	for _, k := range sortedKeys(c.Env) {
		req.Config.Env = append(req.Config.Env, k+"="+c.Env[k])
	}
	for _, u := range d.Users {
		lu := layer.User{Name: u.Name, UID: *u.UID, Home: u.Home, Shell: u.Shell, Gecos: u.Gecos}
		if u.GID != nil {
			lu.GID = *u.GID
		} else {
			lu.GID = *u.UID
		}
		req.Users = append(req.Users, lu)
	}
	for _, g := range d.Groups {
		req.Groups = append(req.Groups, layer.Group{Name: g.Name, GID: *g.GID, Members: g.Members})
	}
	for _, f := range d.Files {
		lf := layer.File{Path: f.Path, Dir: f.Dir, Symlink: f.Symlink, UID: f.UID, GID: f.GID, Mode: fileMode(uint32(f.Mode))}
		if f.Content != nil {
			lf.Content = []byte(*f.Content)
		}
		req.Files = append(req.Files, lf)
	}
	return req
}

// fileMode turns Unix mode bits (with 04000, 02000, 01000) into an
// fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

// closest is the known key nearest to s, if it is near.
func closest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := distance(strings.ToLower(s), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
