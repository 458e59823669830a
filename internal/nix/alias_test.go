package nix

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// Nix's stderr for an attribute that throws, as each version prints it.
var throwLogs = map[string]string{
	"nix-2.8": `error: 'mysql' has been renamed to/replaced by 'mariadb'
(use '--show-trace' to show detailed location information)`,
	"nix-2.24": `error:
       … while calling the 'seq' builtin
         at «string»:24:1:
           23| in
           24| builtins.seq (pkgs."mysql") null
             | ^
           25|

       … while evaluating the attribute 'mysql'
         at /src/pkgs/default.nix:480:3:
          479|
          480|   mysql = throw "'mysql' has been renamed to/replaced by 'mariadb'"; # Converted to throw 2022-02-22
             |   ^
          481|   oldtool = throw "'oldtool' has been removed from nixpkgs, as it was unmaintained";

       … caused by explicit throw
         at /src/pkgs/default.nix:480:11:
          479|
          480|   mysql = throw "'mysql' has been renamed to/replaced by 'mariadb'"; # Converted to throw 2022-02-22
             |           ^

       error: 'mysql' has been renamed to/replaced by 'mariadb'`,
	"colour":         "\x1b[31;1merror:\x1b[0m 'mysql' has been renamed to/replaced by 'mariadb'\n(use '--show-trace' to show detailed location information)",
	"warnings first": "warning: unknown setting 'foo'\ntrace: \x1b[1;31mwarning: 'pkgconfig' has been renamed to/replaced by 'pkg-config'\x1b[0m\nerror: 'mysql' has been renamed to/replaced by 'mariadb'\n",
}

func TestThrowMessage(t *testing.T) {
	for name, log := range throwLogs {
		got := throwMessage(strings.Split(log, "\n"))
		if got != "'mysql' has been renamed to/replaced by 'mariadb'" {
			t.Errorf("%s: message %q", name, got)
		}
	}
	multi := "error: line one\n       line two\n(use '--show-trace' to show detailed location information)"
	if got := throwMessage(strings.Split(multi, "\n")); got != "line one line two" {
		t.Errorf("multi-line message %q", got)
	}
	assertion := "error: assertion '((base).lib.version == \"openssl-3.2\")' failed\n\n       at /src/pkgs-next/default.nix:44:10:\n\n           43|   # Newly failing\n"
	if got := throwMessage(strings.Split(assertion, "\n")); got != `assertion '((base).lib.version == "openssl-3.2")' failed` {
		t.Errorf("assertion message %q", got)
	}
	if got := throwMessage([]string{"", "warning: Git tree is dirty"}); got != "" {
		t.Errorf("no error line: %q", got)
	}
	long := "error: " + strings.Repeat("é", 1000)
	if got := throwMessage([]string{long}); len(got) > maxMessage || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Errorf("long message not clipped on a rune boundary: %d bytes", len(got))
	}
}

func TestTraceWarnings(t *testing.T) {
	lines := []string{
		"trace: \x1b[1;31mwarning: 'pkgconfig' has been renamed to/replaced by 'pkg-config'\x1b[0m",
		"evaluation warning: 'exa' has been renamed to 'eza'",
		"warning: unknown setting 'foo'",
		"trace: warning: 'pkgconfig' has been renamed to/replaced by 'pkg-config'",
	}
	got := traceWarnings(lines)
	want := []string{"'pkgconfig' has been renamed to/replaced by 'pkg-config'", "'exa' has been renamed to 'eza'"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("warnings %q, want %q", got, want)
	}
}

func TestParseRename(t *testing.T) {
	cases := []struct{ msg, old, new string }{
		{"'mysql' has been renamed to/replaced by 'mariadb'", "mysql", "mariadb"},
		{"'runCommandNoCC' has been renamed to/replaced by 'runCommand'", "runCommandNoCC", "runCommand"},
		{"'prometheus_client' has been renamed to 'prometheus-client'.", "prometheus_client", "prometheus-client"},
		{"nix-review has been renamed to nixpkgs-review", "nix-review", "nixpkgs-review"},
		{"`oauth2_proxy` was renamed to `oauth2-proxy`", "oauth2_proxy", "oauth2-proxy"},
		{"‘pkgconfig’ has been replaced by ‘pkg-config’", "pkgconfig", "pkg-config"},
		{"\"foo\" has been superseded by \"bar\"", "foo", "bar"},
		{"error: 'x' has been moved to pkgs.python3Packages.x", "x", "python3Packages.x"},
		{"'MYSQL' HAS BEEN RENAMED TO 'MariaDB'", "MYSQL", "MariaDB"},
	}
	for _, c := range cases {
		o, n, ok := parseRename(c.msg)
		if !ok || o != c.old || n != c.new {
			t.Errorf("parseRename(%q) = %q, %q, %v; want %q, %q", c.msg, o, n, ok, c.old, c.new)
		}
	}
	for _, msg := range []string{
		"'oldtool' has been removed from nixpkgs, as it was unmaintained",
		"assertion 'false' failed",
		"'foo' has been renamed to/replaced by ''",
		"'foo' has been renamed to/replaced by '.bar'",
		"renamed to bar",
		"",
	} {
		if o, n, ok := parseRename(msg); ok {
			t.Errorf("parseRename(%q) = %q, %q: want no rename", msg, o, n)
		}
	}
	if !isRemoval("'oldtool' has been removed from nixpkgs, as it was unmaintained") || !isRemoval("foo is no longer maintained upstream") {
		t.Error("removals not recognised")
	}
	if isRemoval("assertion 'removed' failed") || isRemoval("'mysql' has been renamed to/replaced by 'mariadb'") {
		t.Error("non-removals recognised as removals")
	}
	if q := qualify("python3Packages.prometheus_client", "prometheus-client"); q != "python3Packages.prometheus-client" {
		t.Errorf("qualify = %q", q)
	}
	if q := qualify("mysql", "mariadb"); q != "mariadb" {
		t.Errorf("qualify = %q", q)
	}
}

func FuzzThrowMessage(f *testing.F) {
	for _, l := range throwLogs {
		f.Add(l)
	}
	f.Add("error: a\n\tb\x00c\x1b[31m\n")
	f.Add("trace: warning: 'a' was renamed to 'b'")
	f.Add("'x' has been renamed to/replaced by 'y.z'")
	f.Fuzz(func(t *testing.T, log string) {
		lines := strings.Split(log, "\n")
		for _, m := range append([]string{throwMessage(lines)}, traceWarnings(lines)...) {
			if len(m) > maxMessage || !utf8.ValidString(m) || strings.ContainsAny(m, "\n\r\x00\x1b") {
				t.Fatalf("message %q: too long, invalid UTF-8 or control characters", m)
			}
		}
		if _, n, ok := parseRename(log); ok {
			if _, valid := splitName(n); !valid {
				t.Fatalf("parseRename(%q) gave an invalid attribute path %q", log, n)
			}
		}
		_ = isRemoval(log)
	})
}

func TestUnknownPackagesMessages(t *testing.T) {
	e := &UnknownPackagesError{Packages: []UnknownPackage{
		{Name: "mysql", Replacement: "mariadb", Message: "'mysql' has been renamed to/replaced by 'mariadb'"},
	}}
	if got, want := e.MessageFor("reg.example:5000", "shell/mysql", "latest"), "mysql was renamed to mariadb: pull reg.example:5000/shell/mariadb"; got != want {
		t.Errorf("MessageFor = %q, want %q", got, want)
	}
	if got, want := e.MessageFor("h", "mysql/arm64", "v2"), "mysql was renamed to mariadb: pull h/mariadb/arm64:v2"; got != want {
		t.Errorf("MessageFor = %q, want %q", got, want)
	}
	if got, want := e.Error(), "mysql was renamed to mariadb: ask for mariadb instead"; got != want {
		t.Errorf("Error = %q, want %q", got, want)
	}
	// A renamed package that is not in the name (the shell list) gets no
	// pull command.
	if got := e.MessageFor("h", "shell", ""); got != e.Error() {
		t.Errorf("MessageFor without the component = %q", got)
	}
	if e.Cause() != CauseRenamed {
		t.Errorf("cause %s", e.Cause())
	}
	mixed := &UnknownPackagesError{Packages: []UnknownPackage{
		{Name: "helo", Suggestion: "hello"},
		{Name: "oldtool", Message: "'oldtool' has been removed from nixpkgs, as it was unmaintained"},
		{Name: "curl", Message: "assertion 'false' failed"},
		{Name: "mysql", Replacement: "mariadb"},
		{Name: "pkgconfig", Replacement: "pkg-config"},
	}}
	want := `mysql was renamed to mariadb, pkgconfig was renamed to pkg-config: pull h/shell/helo/oldtool/curl/mariadb/pkg-config; ` +
		`'oldtool' has been removed from nixpkgs, as it was unmaintained; curl: assertion 'false' failed; unknown package(s): helo (did you mean "hello"?)`
	if got := mixed.MessageFor("h", "shell/helo/oldtool/curl/mysql/pkgconfig", "latest"); got != want {
		t.Errorf("mixed:\n got %s\nwant %s", got, want)
	}
	causes := []string{CauseUnknown, CauseRemoved, CauseEvalFailed, CauseRenamed, CauseRenamed}
	for i, p := range mixed.Packages {
		if p.Cause() != causes[i] {
			t.Errorf("%s: cause %s, want %s", p.Name, p.Cause(), causes[i])
		}
	}
	// A replacement a registry name cannot hold gets no pull command.
	plus := &UnknownPackagesError{Packages: []UnknownPackage{{Name: "gtk2", Replacement: "gtk+"}}}
	if got := plus.MessageFor("h", "shell/gtk2", ""); got != plus.Error() || !strings.Contains(got, "gtk2 was renamed to gtk+") {
		t.Errorf("MessageFor = %q", got)
	}
	// The replacement already in the name is kept once.
	dup := &UnknownPackagesError{Packages: []UnknownPackage{{Name: "mysql", Replacement: "mariadb"}}}
	if got, want := dup.MessageFor("h", "mariadb/mysql", ""), "mysql was renamed to mariadb: pull h/mariadb"; got != want {
		t.Errorf("MessageFor = %q, want %q", got, want)
	}
}

func TestResolveAliases(t *testing.T) {
	requireNix(t)
	t.Parallel()
	d, pl := newDriver(t, Config{})
	ctx := context.Background()
	_, err := d.Resolve(ctx, "", native, []string{"hello", "mysql", "oldtool"})
	var ue *UnknownPackagesError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UnknownPackagesError", err)
	}
	want := []UnknownPackage{
		{Name: "mysql", Replacement: "mariadb", Message: "'mysql' has been renamed to/replaced by 'mariadb'"},
		{Name: "oldtool", Message: "'oldtool' has been removed from nixpkgs, as it was unmaintained"},
	}
	if len(ue.Packages) != 2 || ue.Packages[0] != want[0] || ue.Packages[1] != want[1] {
		t.Errorf("packages %+v\nwant     %+v", ue.Packages, want)
	}
	if got, want := ue.MessageFor("127.0.0.1:5000", "shell/mysql", "latest"), "mysql was renamed to mariadb: pull 127.0.0.1:5000/shell/mariadb; 'oldtool' has been removed from nixpkgs, as it was unmaintained"; got != want {
		t.Errorf("message %q\nwant    %q", got, want)
	}
	// One evaluation for the names, one for each attribute that threw.
	if n := len(pl.named("nix-instantiate")); n != 3 {
		t.Errorf("%d nix-instantiate runs, want 3", n)
	}
	// An alias that warns still resolves, to its target.
	pkgs, err := d.Resolve(ctx, "", native, []string{"pkgconfig"})
	if err != nil || len(pkgs) != 1 || pkgs[0].Name != "pkg-config-0.29.2" {
		t.Fatalf("pkgconfig = %+v, %v", pkgs, err)
	}
}

// pkgsNextDir is the offline package set after a bump.
func pkgsNextDir(t testing.TB) string {
	return pkgsDir(t) + "-next"
}

func TestInspect(t *testing.T) {
	requireNix(t)
	t.Parallel()
	ctx := context.Background()
	names := []string{"hello", "exa", "eza", "telnet", "htop", "jq", "curl", "mysql", "oldtool", "pkgconfig", "nosuch", "python3Packages", "brokenThing", "in valid"}
	check := func(dir string, want map[string]string) map[string]PackageState {
		d, _ := newDriver(t, Config{PkgsPath: dir})
		states, rest, err := d.Inspect(ctx, "", native, names)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if len(rest) != 0 {
			t.Errorf("%s: unattributed warnings %q", dir, rest)
		}
		got := map[string]PackageState{}
		for i, s := range states {
			if s.Name != names[i] {
				t.Errorf("state %d is %q, want %q", i, s.Name, names[i])
			}
			got[s.Name] = s
			if want[s.Name] != s.State {
				t.Errorf("%s: %s is %s (%s), want %s", dir, s.Name, s.State, s.Message, want[s.Name])
			}
		}
		return got
	}
	old := check(pkgsDir(t), map[string]string{
		"hello": StateOK, "exa": StateOK, "eza": StateRemoved, "telnet": StateOK, "htop": StateOK, "jq": StateOK,
		"curl": StateOK, "mysql": StateRenamed, "oldtool": StateRemoved, "pkgconfig": StateOK, "nosuch": StateRemoved,
		"python3Packages": StateNotPackage, "brokenThing": StateBroken, "in valid": StateRemoved,
	})
	next := check(pkgsNextDir(t), map[string]string{
		"hello": StateOK, "exa": StateRenamed, "eza": StateOK, "telnet": StateRemoved, "htop": StateOK, "jq": StateOK,
		"curl": StateEvalFailed, "mysql": StateRenamed, "oldtool": StateRemoved, "pkgconfig": StateOK, "nosuch": StateRemoved,
		"python3Packages": StateNotPackage, "brokenThing": StateBroken, "in valid": StateRemoved,
	})
	if old["hello"].OutPath == "" || old["hello"].OutPath != next["hello"].OutPath {
		t.Errorf("hello's out path %q, next %q: want the same", old["hello"].OutPath, next["hello"].OutPath)
	}
	if old["htop"].Version != "3.2.2" || next["htop"].Version != "3.3.0" {
		t.Errorf("htop versions %q, %q", old["htop"].Version, next["htop"].Version)
	}
	if old["jq"].OutPath == next["jq"].OutPath {
		t.Error("jq's out path did not change")
	}
	if s := next["exa"]; s.Replacement != "eza" || s.Message != "'exa' has been renamed to/replaced by 'eza'" {
		t.Errorf("exa: %+v", s)
	}
	if s := next["curl"]; !strings.Contains(s.Message, "assertion") {
		t.Errorf("curl: %+v", s)
	}
	if s := old["pkgconfig"]; s.Replacement != "pkg-config" || len(s.Warnings) != 1 || s.DrvName != "pkg-config-0.29.2" {
		t.Errorf("pkgconfig: %+v", s)
	}
	if s := old["nosuch"]; s.Message != "no such attribute" {
		t.Errorf("nosuch: %+v", s)
	}
}
