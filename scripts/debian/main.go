// Command debian turns Debian packages into the sources of a Nix package
// set: it resolves the Depends closure of some packages from apt's
// Packages lists, downloads the .debs (apt-get says from where), checks
// each against the list's SHA256, unpacks them into trees laid out like
// Nix store paths (/usr merged into /, absolute symlinks made relative,
// hard links made symlinks, documentation left out), finds their ELF
// files, and writes the data files the package
// set's default.nix (scripts/debian/default.nix) turns into derivations.
// scripts/debian-pkgs.sh runs it; see that script for the whole picture.
//
//	go run ./scripts/debian -out DIR -arch amd64,arm64 python3 git curl ...
//
// Everything it writes appears atomically: a tree is unpacked beside its
// final place and renamed into it, data files are written and renamed, so
// an interrupted run leaves only temporary files the next run removes.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	debpkg "pault.ag/go/debian/deb"
	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"
)

// pkg is one stanza of a Packages list.
type pkg struct {
	Name, Version, Arch string
	Depends             string // Pre-Depends and Depends
	Recommends          string
	Provides            string
	Filename, SHA256    string
	Size                int64 // of the .deb
	Description         string
	Homepage            string
	ver                 version.Version
}

// index is the newest version of every package of one architecture.
type index struct {
	arch     string
	pkgs     map[string]*pkg
	provides map[string][]*pkg
}

type config struct {
	out        string
	lists      string
	arches     []string
	roots      []string
	tools      []string // extra roots of the build architecture (patchelf)
	exclude    map[string]bool
	recommends map[string]bool // Recommends followed when they name these
	merges     []merge
	env        map[string][]string // package → KEY=VALUE lines (@out@ = its store path)
	caBundle   string              // the package whose .crt files make the bundle
	jobs       int
}

type merge struct {
	name string
	re   *regexp.Regexp
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "debian-pkgs:", err)
		os.Exit(1)
	}
}

func run() error {
	var c config
	var arches, excl, recs, tools string
	var merges, envs listFlag
	flag.StringVar(&c.out, "out", "", "the package set's directory")
	flag.StringVar(&c.lists, "lists", "/var/lib/apt/lists", "apt's Packages lists")
	flag.StringVar(&arches, "arch", "amd64,arm64", "Debian architectures")
	flag.StringVar(&excl, "exclude", "", "packages left out of closures (comma-separated)")
	flag.StringVar(&recs, "recommends", "", "Recommends followed when they name one of these")
	flag.StringVar(&tools, "tools", "", "extra packages of amd64 the builders use")
	flag.Var(&merges, "merge", "NAME=REGEX: packages whose names match go into one store path NAME (repeatable)")
	flag.Var(&envs, "env", "PKG=KEY=VALUE: environment PKG's store path declares; @out@ is the path (repeatable)")
	flag.StringVar(&c.caBundle, "ca-bundle", "", "the package whose share/ca-certificates/**/*.crt become etc/ssl/certs/ca-bundle.crt")
	flag.IntVar(&c.jobs, "j", runtime.NumCPU()+1, "parallel unpacks")
	flag.Parse()
	c.roots = flag.Args()
	if c.out == "" || len(c.roots) == 0 {
		return errors.New("usage: debian -out DIR [flags] PACKAGE (one or more)")
	}
	c.arches = splitList(arches)
	c.tools = splitList(tools)
	c.exclude = set(splitList(excl))
	c.recommends = set(splitList(recs))
	c.env = map[string][]string{}
	for _, m := range merges {
		n, re, ok := strings.Cut(m, "=")
		if !ok {
			return fmt.Errorf("-merge %q: want NAME=REGEX", m)
		}
		r, err := regexp.Compile("^(" + re + ")$")
		if err != nil {
			return fmt.Errorf("-merge %q: %w", m, err)
		}
		c.merges = append(c.merges, merge{n, r})
	}
	for _, e := range envs {
		p, kv, ok := strings.Cut(e, "=")
		if !ok || !strings.Contains(kv, "=") {
			return fmt.Errorf("-env %q: want PKG=KEY=VALUE", e)
		}
		c.env[p] = append(c.env[p], kv)
	}
	return build(c)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func set(l []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range l {
		m[s] = true
	}
	return m
}

// archData is what one architecture resolves to.
type archData struct {
	ix     *index
	pkgs   []*pkg // the closure, sorted by name
	groups []*group
	byName map[string]*group
}

// group is one store path: one package, or several merged.
type group struct {
	Name    string
	members []*pkg
	deps    []*group
}

func build(c config) error {
	if err := os.MkdirAll(filepath.Join(c.out, "debs"), 0o755); err != nil {
		return err
	}
	for _, d := range []string{"debs/.partial", ".tmp"} {
		if err := os.RemoveAll(filepath.Join(c.out, d)); err != nil {
			return err
		}
	}
	ph := newPhases()
	defer ph.print()
	// The architectures resolve side by side (reading a Packages list
	// takes about a second).
	resolved := make([]*archData, len(c.arches))
	errs := make([]error, len(c.arches))
	var wg sync.WaitGroup
	for i, a := range c.arches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resolved[i], errs[i] = resolveArch(c, a)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	data := map[string]*archData{}
	var all []*pkg
	for i, a := range c.arches {
		data[a] = resolved[i]
		all = append(all, resolved[i].pkgs...)
	}
	if _, ok := data["amd64"]; !ok && len(c.tools) > 0 {
		return errors.New("the builders' tools come from amd64: include amd64 in -arch")
	}
	ph.done("resolve")
	trees, err := fetchAndUnpack(c, all, ph)
	if err != nil {
		return err
	}
	ph.done("download and unpack")
	gen := filepath.Join(c.out, "gen")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		return err
	}
	for _, a := range c.arches {
		if err := writeArch(c, a, data[a], trees); err != nil {
			return err
		}
	}
	if len(c.tools) > 0 {
		if err := writeTools(c, data["amd64"], trees); err != nil {
			return err
		}
	}
	// Unpacked trees no closure needs any more are removed.
	used := map[string]bool{}
	for _, t := range trees {
		used[filepath.Base(t.dir)] = true
	}
	ents, _ := os.ReadDir(filepath.Join(c.out, "trees"))
	for _, e := range ents {
		if !used[e.Name()] {
			os.RemoveAll(filepath.Join(c.out, "trees", e.Name()))
		}
	}
	if err := os.RemoveAll(filepath.Join(c.out, ".tmp")); err != nil {
		return err
	}
	for _, a := range c.arches {
		fmt.Fprintf(os.Stderr, "debian-pkgs: %s: %d packages in %d store paths\n", a, len(data[a].pkgs), len(data[a].groups))
	}
	return nil
}

// resolveArch reads the Packages lists of one architecture and resolves
// the closure into store paths.
func resolveArch(c config, a string) (*archData, error) {
	ix, err := readIndex(c.lists, a)
	if err != nil {
		return nil, err
	}
	roots := c.roots
	if a == "amd64" {
		roots = append(slices.Clone(roots), c.tools...)
	}
	ps, err := resolve(ix, roots, c)
	if err != nil {
		return nil, err
	}
	gs, byName, err := makeGroups(ps, ix, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a, err)
	}
	return &archData{ix: ix, pkgs: ps, groups: gs, byName: byName}, nil
}

// readIndex reads every *_binary-ARCH_Packages(.lz4) list of dir and keeps
// the newest version of each package.
func readIndex(dir, arch string) (*index, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*_binary-"+arch+"_Packages*"))
	if len(files) == 0 {
		return nil, fmt.Errorf("no Packages lists for %s in %s: run scripts/deps.sh (it adds the architecture and runs apt-get update)", arch, dir)
	}
	ix := &index{arch: arch, pkgs: map[string]*pkg{}, provides: map[string][]*pkg{}}
	for _, f := range files {
		var r io.Reader
		var cmd *exec.Cmd
		switch {
		case strings.HasSuffix(f, ".lz4"):
			cmd = exec.Command("lz4cat", f)
		case strings.HasSuffix(f, "_Packages"):
		default:
			continue
		}
		if cmd != nil {
			out, err := cmd.StdoutPipe()
			if err != nil {
				return nil, err
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				return nil, fmt.Errorf("lz4cat %s: %w (install lz4: scripts/deps.sh)", f, err)
			}
			r = out
		} else {
			fh, err := os.Open(f)
			if err != nil {
				return nil, err
			}
			defer fh.Close()
			r = fh
		}
		if err := parseList(r, ix); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if cmd != nil {
			if err := cmd.Wait(); err != nil {
				return nil, fmt.Errorf("lz4cat %s: %w", f, err)
			}
		}
	}
	for _, p := range ix.pkgs {
		if p.Provides == "" {
			continue
		}
		d, err := dependency.Parse(p.Provides)
		if err != nil {
			continue
		}
		for _, rel := range d.Relations {
			for _, pos := range rel.Possibilities {
				ix.provides[pos.Name] = append(ix.provides[pos.Name], p)
			}
		}
	}
	for _, l := range ix.provides {
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	}
	return ix, nil
}

func parseList(r io.Reader, ix *index) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var cur *pkg
	flush := func() error {
		if cur == nil || cur.Name == "" {
			cur = nil
			return nil
		}
		v, err := version.Parse(cur.Version)
		if err != nil {
			return fmt.Errorf("package %s: version %q: %w", cur.Name, cur.Version, err)
		}
		cur.ver = v
		if old, ok := ix.pkgs[cur.Name]; !ok || version.Compare(v, old.ver) > 0 {
			ix.pkgs[cur.Name] = cur
		}
		cur = nil
		return nil
	}
	for sc.Scan() {
		// Bytes, not Text: most lines are fields this never reads, and
		// a string for each would be most of the time spent here.
		line := sc.Bytes()
		if len(line) == 0 {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if cur == nil {
			cur = &pkg{}
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation lines: only long descriptions use them
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		val := func() string { return string(bytes.TrimSpace(v)) }
		switch string(k) {
		case "Package":
			cur.Name = val()
		case "Version":
			cur.Version = val()
		case "Architecture":
			cur.Arch = val()
		case "Pre-Depends", "Depends":
			if cur.Depends != "" {
				cur.Depends += ", " + val()
			} else {
				cur.Depends = val()
			}
		case "Recommends":
			cur.Recommends = val()
		case "Provides":
			cur.Provides = val()
		case "Filename":
			cur.Filename = val()
		case "SHA256":
			cur.SHA256 = val()
		case "Size":
			cur.Size, _ = strconv.ParseInt(val(), 10, 64)
		case "Description":
			cur.Description = val()
		case "Homepage":
			cur.Homepage = val()
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return flush()
}

// resolve is the closure of roots over Pre-Depends and Depends (and the
// Recommends c.recommends names): the newest version of each package, the
// first alternative that can be satisfied, virtual packages through
// Provides.
func resolve(ix *index, roots []string, c config) ([]*pkg, error) {
	seen := map[string]*pkg{}
	var queue []*pkg
	for _, r := range roots {
		p, ok := ix.pkgs[r]
		if !ok {
			return nil, fmt.Errorf("unknown package %q for %s: not in the Packages lists (apt-cache search %s)", r, ix.arch, r)
		}
		if !seen[r].exists() {
			seen[r] = p
			queue = append(queue, p)
		}
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		rels := p.Depends
		if p.Recommends != "" {
			d, err := dependency.Parse(p.Recommends)
			if err == nil {
				for _, rel := range d.Relations {
					for _, pos := range rel.Possibilities {
						if c.recommends[pos.Name] {
							rels += ", " + pos.Name
						}
					}
				}
			}
		}
		rels = strings.TrimPrefix(rels, ", ")
		if rels == "" {
			continue
		}
		d, err := dependency.Parse(rels)
		if err != nil {
			return nil, fmt.Errorf("%s %s: depends %q: %w", p.Name, ix.arch, rels, err)
		}
	rel:
		for _, rel := range d.Relations {
			for _, pos := range rel.Possibilities {
				if c.exclude[pos.Name] {
					continue rel
				}
			}
			for _, pos := range rel.Possibilities {
				q := ix.satisfy(pos)
				if q == nil {
					continue
				}
				if c.exclude[q.Name] {
					continue rel
				}
				if seen[q.Name] == nil {
					seen[q.Name] = q
					queue = append(queue, q)
				}
				continue rel
			}
			return nil, fmt.Errorf("%s (%s): cannot satisfy %q from the Packages lists", p.Name, ix.arch, rel.String())
		}
	}
	var out []*pkg
	for _, p := range seen {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (p *pkg) exists() bool { return p != nil }

// satisfy is the package that satisfies one possibility, or nil.
func (ix *index) satisfy(pos dependency.Possibility) *pkg {
	if p, ok := ix.pkgs[pos.Name]; ok {
		if pos.Version == nil || pos.Version.SatisfiedBy(p.ver) {
			return p
		}
	}
	if pos.Version == nil {
		if l := ix.provides[pos.Name]; len(l) > 0 {
			return l[0]
		}
	}
	return nil
}

// makeGroups turns the closure into store paths: packages matching a merge
// expression share one, and so do the members of a dependency cycle.
func makeGroups(ps []*pkg, ix *index, c config) ([]*group, map[string]*group, error) {
	parent := map[string]string{}
	find := func(s string) string {
		for parent[s] != s {
			s = parent[s]
		}
		return s
	}
	union := func(a, b string) {
		ra, rb := find(a), find(b)
		if ra != rb {
			if rb < ra {
				ra, rb = rb, ra
			}
			parent[rb] = ra
		}
	}
	in := map[string]*pkg{}
	for _, p := range ps {
		parent[p.Name] = p.Name
		in[p.Name] = p
	}
	mergeOf := map[string]string{} // root → merge name
	for _, m := range c.merges {
		var first string
		for _, p := range ps {
			if m.re.MatchString(p.Name) {
				if first == "" {
					first = p.Name
				} else {
					union(first, p.Name)
				}
			}
		}
		if first != "" {
			mergeOf[find(first)] = m.name
		}
	}
	// Edges between packages of the closure.
	edges := map[string][]string{}
	for _, p := range ps {
		d, err := dependency.Parse(strings.TrimPrefix(p.Depends+recommended(p, c), ", "))
		if err != nil {
			if p.Depends == "" && recommended(p, c) == "" {
				continue
			}
			return nil, nil, err
		}
	rel:
		for _, rel := range d.Relations {
			for _, pos := range rel.Possibilities {
				if q := ix.satisfy(pos); q != nil && in[q.Name] == q {
					edges[p.Name] = append(edges[p.Name], q.Name)
					continue rel
				}
			}
		}
	}
	// Merge cycles until the group graph is acyclic.
	for {
		cyc := sccs(ps, edges, find)
		if len(cyc) == 0 {
			break
		}
		for _, comp := range cyc {
			// Keep a merge's name when it takes part in a cycle.
			var name string
			for _, m := range comp {
				if n, ok := mergeOf[find(m)]; ok {
					name = n
				}
			}
			for _, m := range comp[1:] {
				union(comp[0], m)
			}
			if name != "" {
				mergeOf[find(comp[0])] = name
			}
		}
	}
	groups := map[string]*group{}
	byName := map[string]*group{}
	for _, p := range ps {
		r := find(p.Name)
		g, ok := groups[r]
		if !ok {
			name := r
			if n, ok := mergeOf[r]; ok {
				name = n
			}
			g = &group{Name: name}
			groups[r] = g
		}
		g.members = append(g.members, p)
		byName[p.Name] = g
	}
	var out []*group
	for _, g := range groups {
		deps := map[*group]bool{}
		for _, m := range g.members {
			for _, e := range edges[m.Name] {
				if d := byName[e]; d != g {
					deps[d] = true
				}
			}
		}
		for d := range deps {
			g.deps = append(g.deps, d)
		}
		sort.Slice(g.deps, func(i, j int) bool { return g.deps[i].Name < g.deps[j].Name })
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := 1; i < len(out); i++ {
		if out[i].Name == out[i-1].Name {
			return nil, nil, fmt.Errorf("two store paths named %s", out[i].Name)
		}
	}
	return out, byName, nil
}

func recommended(p *pkg, c config) string {
	if p.Recommends == "" {
		return ""
	}
	d, err := dependency.Parse(p.Recommends)
	if err != nil {
		return ""
	}
	var s string
	for _, rel := range d.Relations {
		for _, pos := range rel.Possibilities {
			if c.recommends[pos.Name] {
				s += ", " + pos.Name
			}
		}
	}
	return s
}

// sccs are the strongly connected components (of more than one group) of
// the graph of groups (find maps a package to its group).
func sccs(ps []*pkg, edges map[string][]string, find func(string) string) [][]string {
	gedges := map[string]map[string]bool{}
	var nodes []string
	for _, p := range ps {
		g := find(p.Name)
		if gedges[g] == nil {
			gedges[g] = map[string]bool{}
			nodes = append(nodes, g)
		}
		for _, e := range edges[p.Name] {
			if h := find(e); h != g {
				gedges[g][h] = true
			}
		}
	}
	sort.Strings(nodes)
	idx, low := map[string]int{}, map[string]int{}
	on := map[string]bool{}
	var stack []string
	var out [][]string
	n := 0
	var visit func(v string)
	visit = func(v string) {
		idx[v], low[v] = n, n
		n++
		stack = append(stack, v)
		on[v] = true
		var succ []string
		for w := range gedges[v] {
			succ = append(succ, w)
		}
		sort.Strings(succ)
		for _, w := range succ {
			if _, ok := idx[w]; !ok {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if on[w] {
				low[v] = min(low[v], idx[w])
			}
		}
		if low[v] == idx[v] {
			var comp []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			if len(comp) > 1 {
				sort.Strings(comp)
				out = append(out, comp)
			}
		}
	}
	for _, v := range nodes {
		if _, ok := idx[v]; !ok {
			visit(v)
		}
	}
	return out
}

// debPath is where a package's .deb is kept.
func debPath(c config, p *pkg) string {
	return filepath.Join(c.out, "debs", path.Base(p.Filename))
}

// fetchAndUnpack downloads the .debs not yet kept and unpacks every
// package not yet unpacked: apt-get says where each .deb is (one call,
// apt's sources and mirrors), several downloads run side by side (apt
// fetches one file after another), and each .deb is unpacked as soon as
// it is there, while the others download.
func fetchAndUnpack(c config, ps []*pkg, ph *phases) (map[string]*tree, error) {
	var have, want []*pkg
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.SHA256] {
			continue
		}
		seen[p.SHA256] = true
		_, errDeb := os.Stat(debPath(c, p))
		if errDeb == nil || readTree(c, p) != nil {
			have = append(have, p)
		} else {
			want = append(want, p)
		}
	}
	var urls map[*pkg]string
	if len(want) > 0 {
		var err error
		if urls, err = debURLs(want); err != nil {
			return nil, err
		}
		ph.done("apt-get --print-uris")
	}

	ready := make(chan *pkg, len(have)+len(want))
	for _, p := range have {
		ready <- p
	}
	trees := map[string]*tree{}
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	var unpackers sync.WaitGroup
	for range max(1, c.jobs) {
		unpackers.Add(1)
		go func() {
			defer unpackers.Done()
			for p := range ready {
				t, err := unpack(c, p)
				if err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				trees[p.SHA256] = t
				mu.Unlock()
			}
		}()
	}

	// The largest first: the downloads end together.
	slices.SortStableFunc(want, func(a, b *pkg) int { return cmp.Compare(b.Size, a.Size) })
	partial := filepath.Join(c.out, "debs", ".partial")
	if len(want) > 0 {
		if err := os.MkdirAll(partial, 0o755); err != nil {
			close(ready)
			unpackers.Wait()
			return nil, err
		}
	}
	queue := make(chan *pkg, len(want))
	for _, p := range want {
		queue <- p
	}
	close(queue)
	var downloaders sync.WaitGroup
	for range min(len(want), downloadJobs) {
		downloaders.Add(1)
		go func() {
			defer downloaders.Done()
			for p := range queue {
				if err := fetchDeb(c, partial, urls[p], p); err != nil {
					fail(err)
					continue
				}
				ready <- p
			}
		}()
	}
	downloaders.Wait()
	close(ready)
	unpackers.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(partial); err != nil {
		return nil, err
	}
	return trees, nil
}

// downloadJobs is the number of downloads that run at once.
const downloadJobs = 6

// debURLs asks apt-get where the .debs of ps are.
func debURLs(ps []*pkg) (map[*pkg]string, error) {
	args := []string{"--print-uris", "download", "-q", "-o", "APT::Sandbox::User=root"}
	bySum := map[string]*pkg{}
	for _, p := range ps {
		bySum[p.SHA256] = p
		if p.Arch == "all" {
			args = append(args, p.Name+"="+p.Version)
		} else {
			args = append(args, p.Name+":"+p.Arch+"="+p.Version)
		}
	}
	cmd := exec.Command("apt-get", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("apt-get --print-uris download of %d packages: %w\n%s", len(ps), err, strings.TrimSpace(stderr.String()))
	}
	// 'URL' FILE SIZE SHA256:HEX
	urls := map[*pkg]string{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		u := strings.Trim(f[0], "'")
		sum, ok := strings.CutPrefix(strings.ToLower(f[3]), "sha256:")
		if p := bySum[sum]; ok && p != nil {
			urls[p] = u
		}
	}
	for _, p := range ps {
		if urls[p] == "" {
			return nil, fmt.Errorf("apt-get --print-uris names no .deb with SHA256 %s for %s %s (%s): apt's lists and the Packages lists read differ; run apt-get update and this script again", p.SHA256, p.Name, p.Version, p.Arch)
		}
	}
	return urls, nil
}

// fetchDeb downloads one .deb into dir, checks it against the Packages
// list's SHA256 while it arrives, and moves it to the kept .debs.
func fetchDeb(c config, dir, url string, p *pkg) error {
	var err error
	for attempt := range 3 {
		if err = fetchOnce(c, dir, url, p); err == nil || errors.Is(err, errChecksum) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
	}
	return err
}

var errChecksum = errors.New("checksum mismatch")

var httpClient = &http.Client{Timeout: 5 * time.Minute}

func fetchOnce(c config, dir, url string, p *pkg) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return fmt.Errorf("download %s: %w", p.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: GET %s: %s", p.Name, url, resp.Status)
	}
	tmp := filepath.Join(dir, p.SHA256[:16]+"-"+path.Base(p.Filename))
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("download %s: %w", p.Name, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != p.SHA256 {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w: SHA256 %s, but the Packages list says %s: the download is corrupt or the lists are stale; run apt-get update and this script again", url, errChecksum, sum, p.SHA256)
	}
	return os.Rename(tmp, debPath(c, p))
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// tree is an unpacked package.
type tree struct {
	dir  string // trees/<sha>-<name>: tree/ and info.json
	info treeInfo
}

type treeInfo struct {
	Format  int      `json:"format"`  // treeFormat when it was unpacked
	NarHash string   `json:"narHash"` // sha256 of the NAR of tree/, hex
	Interp  []string `json:"interp"`  // ELF files with an interpreter
	Dynamic []string `json:"dynamic"` // other dynamically linked ELF files
	LibDirs []string `json:"libDirs"` // directories of shared libraries
	LdSo    string   `json:"ldSo"`    // the dynamic loader, if the package has it
}

// treeFormat changes whenever unpacking makes a different tree from the
// same .deb (2: documentation left out): trees of another format are
// unpacked again, so a kept tree never gives another store path than a
// fresh one.
const treeFormat = 2

// readTree is the kept tree of p, or nil when there is none of this
// treeFormat.
func readTree(c config, p *pkg) *tree {
	dir := treeDir(c, p)
	b, err := os.ReadFile(filepath.Join(dir, "info.json"))
	if err != nil {
		return nil
	}
	t := &tree{dir: dir}
	if json.Unmarshal(b, &t.info) != nil || t.info.Format != treeFormat {
		return nil
	}
	return t
}

func treeDir(c config, p *pkg) string {
	return filepath.Join(c.out, "trees", p.SHA256[:16]+"-"+p.Name)
}

func unpack(c config, p *pkg) (*tree, error) {
	dir := treeDir(c, p)
	t := &tree{dir: dir}
	if kept := readTree(c, p); kept != nil {
		return kept, nil
	}
	t.info.Format = treeFormat
	deb := debPath(c, p)
	sum, err := fileSHA256(deb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	if sum != p.SHA256 {
		os.Remove(deb)
		return nil, fmt.Errorf("%s: SHA256 %s, but the Packages list says %s: removed it; run this script again to fetch it anew", deb, sum, p.SHA256)
	}
	tmp := filepath.Join(c.out, ".tmp", filepath.Base(dir))
	os.RemoveAll(tmp)
	td := filepath.Join(tmp, "tree")
	if err := extract(deb, td); err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	if p.Name == c.caBundle {
		if err := caBundle(td); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	if err := scanELF(td, &t.info); err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	h := sha256.New()
	if err := nar(h, td); err != nil {
		return nil, fmt.Errorf("%s: nar: %w", p.Name, err)
	}
	t.info.NarHash = hex.EncodeToString(h.Sum(nil))
	b, _ := json.MarshalIndent(t.info, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "info.json"), b, 0o644); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	return t, nil
}

// mapPath moves /usr/X to /X (rel is slash-separated, without a leading /).
func mapPath(rel string) string {
	if rel == "usr" {
		return ""
	}
	return strings.TrimPrefix(rel, "usr/")
}

// dropped reports whether a path (after mapPath) is left out of the trees:
// manual pages, info manuals, message translations, lintian overrides and
// documentation, except each package's copyright file (and the links
// Debian makes from one package's doc folder to another's). Nothing runs
// from them, and they are a third of the unpacked bytes every step after
// unpacking would copy, hash and scan.
func dropped(rel string) bool {
	top, rest, _ := strings.Cut(rel, "/")
	if top != "share" {
		return false
	}
	dir, rest, _ := strings.Cut(rest, "/")
	switch dir {
	case "man", "info", "locale", "lintian":
		return true
	case "doc":
		// share/doc and share/doc/PKG stay; within share/doc/PKG only
		// the copyright file does.
		_, file, ok := strings.Cut(rest, "/")
		return ok && file != "copyright"
	}
	return false
}

// extract unpacks the data member of a .deb into dst (see unpackTar).
// xz, the compression of Debian's packages, is decompressed by the xz
// program (several times faster than a Go decoder); zstd and gzip in
// process.
func extract(deb, dst string) error {
	f, err := os.Open(deb)
	if err != nil {
		return err
	}
	defer f.Close()
	ar, err := debpkg.LoadAr(f)
	if err != nil {
		return fmt.Errorf("%s: %w", deb, err)
	}
	for {
		e, err := ar.Next()
		if err == io.EOF {
			return fmt.Errorf("%s: no data.tar member", deb)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", deb, err)
		}
		name := strings.TrimSuffix(e.Name, "/")
		if !strings.HasPrefix(name, "data.tar") {
			continue
		}
		switch path.Ext(name) {
		case ".xz":
			cmd := exec.Command("xz", "-dc")
			cmd.Stdin = e.Data
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				return err
			}
			if err := cmd.Start(); err != nil {
				return fmt.Errorf("xz: %w (install xz-utils: scripts/deps.sh)", err)
			}
			err = unpackTar(out, dst)
			if err != nil {
				io.Copy(io.Discard, out)
			}
			if werr := cmd.Wait(); werr != nil && err == nil {
				err = fmt.Errorf("xz -dc %s: %w: %s", name, werr, strings.TrimSpace(stderr.String()))
			}
			return err
		case ".zst":
			z, err := zstd.NewReader(e.Data)
			if err != nil {
				return err
			}
			defer z.Close()
			return unpackTar(z, dst)
		case ".gz":
			z, err := gzip.NewReader(e.Data)
			if err != nil {
				return err
			}
			return unpackTar(z, dst)
		case ".tar":
			return unpackTar(e.Data, dst)
		default:
			return fmt.Errorf("%s: %s: unsupported compression", deb, name)
		}
	}
}

// unpackTar writes the files of a package's data tar to dst with /usr
// merged into /, symlinks re-pointed relative to their new place, hard
// links made symlinks to the first name, and what dropped names left out.
func unpackTar(r io.Reader, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	written := map[string]bool{} // new rel paths of regular files
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if rel == "" {
			continue
		}
		nrel := mapPath(rel)
		if nrel == "" || dropped(nrel) {
			continue
		}
		np := filepath.Join(dst, filepath.FromSlash(nrel))
		exists := func() error {
			if _, err := os.Lstat(np); err == nil {
				return fmt.Errorf("%s and /usr/%s are both in the package", "/"+nrel, nrel)
			}
			return nil
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if fi, err := os.Lstat(np); err == nil && fi.IsDir() {
				continue
			}
			if err := os.MkdirAll(np, fs.FileMode(h.Mode).Perm()|0o700); err != nil {
				return err
			}
		case tar.TypeSymlink, tar.TypeLink:
			if err := exists(); err != nil {
				return err
			}
			var mt string // the target, as a new absolute path
			if h.Typeflag == tar.TypeLink {
				first := mapPath(strings.TrimPrefix(path.Clean("/"+h.Linkname), "/"))
				if !written[first] {
					return fmt.Errorf("/%s: a hard link to %s, which is not in the tree", nrel, h.Linkname)
				}
				mt = "/" + first
			} else {
				abs := h.Linkname
				if !path.IsAbs(abs) {
					abs = path.Join("/", path.Dir(rel), abs)
				}
				mt = "/" + mapPath(strings.TrimPrefix(path.Clean(abs), "/"))
			}
			nt, err := filepath.Rel(path.Dir("/"+nrel), mt)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(np), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(nt, np); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := exists(); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(np), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(np, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(h.Mode).Perm()|0o200)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("/%s: %w", nrel, err)
			}
			written[nrel] = true
		default:
			// devices, fifos: nothing a store path can hold
		}
	}
}

// caBundle concatenates the certificates under share/ca-certificates into
// etc/ssl/certs/ca-bundle.crt, with ca-certificates.crt linked to it.
func caBundle(td string) error {
	var crts []string
	err := filepath.WalkDir(filepath.Join(td, "share/ca-certificates"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(p, ".crt") {
			crts = append(crts, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	if len(crts) == 0 {
		return errors.New("no .crt files under share/ca-certificates")
	}
	sort.Strings(crts)
	var b bytes.Buffer
	for _, f := range crts {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		b.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	dir := filepath.Join(td, "etc/ssl/certs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca-bundle.crt"), b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Symlink("ca-bundle.crt", filepath.Join(dir, "ca-certificates.crt"))
}

var libDirRE = regexp.MustCompile(`^lib(32|64|x32)?(/[a-z0-9_]+-linux-gnu[a-z0-9_]*)?$`)

// scanELF lists the dynamically linked ELF files of a tree.
func scanELF(td string, info *treeInfo) error {
	libDirs := map[string]bool{}
	err := filepath.WalkDir(td, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		var magic [4]byte
		if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != "\x7fELF" {
			return nil
		}
		ef, err := elf.NewFile(f)
		if err != nil {
			return nil
		}
		if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
			return nil
		}
		rel, _ := filepath.Rel(td, p)
		rel = filepath.ToSlash(rel)
		base := path.Base(rel)
		if strings.HasPrefix(base, "ld-linux") || strings.HasPrefix(base, "ld-") && strings.Contains(base, ".so") {
			info.LdSo = rel
			libDirs[path.Dir(rel)] = true
			return nil
		}
		var interp, dyn bool
		for _, pr := range ef.Progs {
			switch pr.Type {
			case elf.PT_INTERP:
				interp = true
			case elf.PT_DYNAMIC:
				dyn = true
			}
		}
		switch {
		case interp:
			info.Interp = append(info.Interp, rel)
		case dyn:
			info.Dynamic = append(info.Dynamic, rel)
			if strings.Contains(base, ".so") && libDirRE.MatchString(path.Dir(rel)) {
				libDirs[path.Dir(rel)] = true
			}
		}
		return nil
	})
	for d := range libDirs {
		info.LibDirs = append(info.LibDirs, d)
	}
	sort.Strings(info.LibDirs)
	sort.Strings(info.Interp)
	sort.Strings(info.Dynamic)
	return err
}

// nar writes the Nix archive of p to w.
func nar(w hash.Hash, p string) error {
	str := func(s string) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		w.Write(n[:])
		io.WriteString(w, s)
		if pad := (8 - len(s)%8) % 8; pad > 0 {
			w.Write(make([]byte, pad))
		}
	}
	var node func(p string) error
	node = func(p string) error {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		str("(")
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			str("type")
			str("symlink")
			str("target")
			str(t)
		case fi.IsDir():
			str("type")
			str("directory")
			ents, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			names := make([]string, len(ents))
			for i, e := range ents {
				names[i] = e.Name()
			}
			sort.Strings(names)
			for _, n := range names {
				str("entry")
				str("(")
				str("name")
				str(n)
				str("node")
				if err := node(filepath.Join(p, n)); err != nil {
					return err
				}
				str(")")
			}
		case fi.Mode().IsRegular():
			str("type")
			str("regular")
			if fi.Mode()&0o100 != 0 {
				str("executable")
				str("")
			}
			str("contents")
			var n [8]byte
			binary.LittleEndian.PutUint64(n[:], uint64(fi.Size()))
			w.Write(n[:])
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			k, err := io.Copy(w, f)
			f.Close()
			if err != nil {
				return err
			}
			if k != fi.Size() {
				return fmt.Errorf("%s changed while read", p)
			}
			if pad := (8 - k%8) % 8; pad > 0 {
				w.Write(make([]byte, pad))
			}
		default:
			return fmt.Errorf("%s: not a file, directory or symlink", p)
		}
		str(")")
		return nil
	}
	str("nix-archive-1")
	return node(p)
}

// storeName makes a string usable in a store path name.
func storeName(s string) string {
	if _, v, ok := strings.Cut(s, ":"); ok {
		s = v // the epoch
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("+-._?=", r):
			return r
		}
		return '_'
	}, s)
}

func nixStr(s string) string {
	b, _ := json.Marshal(s)
	return strings.ReplaceAll(string(b), "${", "\\${")
}

func nixList(l []string) string {
	var b strings.Builder
	b.WriteString("[")
	for _, s := range l {
		b.WriteString(" ")
		b.WriteString(nixStr(s))
	}
	b.WriteString(" ]")
	return b.String()
}

func purl(p *pkg) string {
	esc := func(s string) string {
		return strings.NewReplacer("%", "%25", ":", "%3A", "+", "%2B", "~", "%7E").Replace(s)
	}
	return "pkg:deb/debian/" + p.Name + "@" + esc(p.Version) + "?arch=" + p.Arch
}

func srcExpr(p *pkg, t *tree) string {
	return fmt.Sprintf("{ name = %s; path = ./../trees/%s/tree; sha256 = %s; }",
		nixStr("deb-"+p.Name+"-"+storeName(p.Version)), filepath.Base(t.dir), nixStr(t.info.NarHash))
}

// writeArch writes gen/ARCH.nix: the groups of one architecture as data.
func writeArch(c config, arch string, a *archData, trees map[string]*tree) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by scripts/debian-pkgs.sh: Debian packages of %s as store paths.\n{\n  groups = {\n", arch)
	var ldso, ldsoLine string
	for _, g := range a.groups {
		main := g.members[0]
		for _, m := range g.members {
			if m.Name == g.Name {
				main = m
			}
		}
		var srcs, interp, dyn, libdirs, purls, deps, env, debs []string
		for _, m := range g.members {
			t := trees[m.SHA256]
			srcs = append(srcs, srcExpr(m, t))
			interp = append(interp, t.info.Interp...)
			dyn = append(dyn, t.info.Dynamic...)
			libdirs = append(libdirs, t.info.LibDirs...)
			purls = append(purls, purl(m))
			debs = append(debs, m.Name+" "+m.Version+" "+m.Arch)
			env = append(env, c.env[m.Name]...)
			if t.info.LdSo != "" {
				if ldso != "" && ldso != g.Name {
					return fmt.Errorf("%s: two packages have a dynamic loader (%s, %s)", arch, ldso, g.Name)
				}
				ldso = g.Name
				ldsoLine = fmt.Sprintf("  ldso = { group = %s; path = %s; };\n", nixStr(g.Name), nixStr(t.info.LdSo))
			}
		}
		for _, d := range g.deps {
			deps = append(deps, d.Name)
		}
		slices.Sort(libdirs)
		libdirs = slices.Compact(libdirs)
		fmt.Fprintf(&b, "    %s = {\n", nixStr(g.Name))
		fmt.Fprintf(&b, "      pname = %s;\n      version = %s;\n      storeVersion = %s;\n",
			nixStr(g.Name), nixStr(main.Version), nixStr(storeName(main.Version)))
		fmt.Fprintf(&b, "      description = %s;\n      homepage = %s;\n", nixStr(main.Description), nixStr(main.Homepage))
		fmt.Fprintf(&b, "      srcs = [\n")
		for _, s := range srcs {
			fmt.Fprintf(&b, "        %s\n", s)
		}
		fmt.Fprintf(&b, "      ];\n")
		fmt.Fprintf(&b, "      deps = %s;\n", nixList(deps))
		fmt.Fprintf(&b, "      interp = %s;\n", nixList(interp))
		fmt.Fprintf(&b, "      dynamic = %s;\n", nixList(dyn))
		fmt.Fprintf(&b, "      libDirs = %s;\n", nixList(libdirs))
		fmt.Fprintf(&b, "      purls = %s;\n", nixList(purls))
		fmt.Fprintf(&b, "      debs = %s;\n", nixList(debs))
		fmt.Fprintf(&b, "      env = %s;\n", nixList(env))
		fmt.Fprintf(&b, "    };\n")
	}
	fmt.Fprintf(&b, "  };\n  names = {\n")
	var names []string
	for n := range a.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "    %s = %s;\n", nixStr(n), nixStr(a.byName[n].Name))
	}
	fmt.Fprintf(&b, "  };\n")
	if ldso == "" {
		return fmt.Errorf("%s: no package of the closure has a dynamic loader (ld-linux*)", arch)
	}
	b.WriteString(ldsoLine)
	b.WriteString("}\n")
	return writeGen(c, arch+".nix", b.String)
}

// writeGen writes gen/NAME atomically.
func writeGen(c config, name string, text func() string) error {
	p := filepath.Join(c.out, "gen", name)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(text()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// writeTools writes gen/tools.nix: the unpatched amd64 trees the builders
// run patchelf from (through the unpatched dynamic loader).
func writeTools(c config, a *archData, trees map[string]*tree) error {
	var b strings.Builder
	b.WriteString("# Generated by scripts/debian-pkgs.sh: the builders' tools (amd64, unpatched).\n{\n  srcs = [\n")
	closure, err := resolve(a.ix, c.tools, c)
	if err != nil {
		return err
	}
	var ldso string
	for _, p := range closure {
		t := trees[p.SHA256]
		fmt.Fprintf(&b, "    { pkg = %s; libDirs = %s; src = %s; }\n", nixStr(p.Name), nixList(t.info.LibDirs), srcExpr(p, t))
		if t.info.LdSo != "" {
			ldso = fmt.Sprintf("  ldso = { pkg = %s; path = %s; };\n", nixStr(p.Name), nixStr(t.info.LdSo))
		}
	}
	b.WriteString("  ];\n")
	b.WriteString(ldso)
	b.WriteString("}\n")
	return writeGen(c, "tools.nix", b.String)
}

// phases measures the steps of a run: wall time and CPU time (user and
// system, of this process and the programs it ran).
type phases struct {
	last  time.Time
	cpu   time.Duration
	lines []string
}

func cpuTime() time.Duration {
	var d time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			d += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return d
}

func newPhases() *phases { return &phases{last: time.Now(), cpu: cpuTime()} }

func (p *phases) done(name string) {
	now, cpu := time.Now(), cpuTime()
	p.lines = append(p.lines, fmt.Sprintf("%s %.1f s (cpu %.1f s)", name, now.Sub(p.last).Seconds(), (cpu-p.cpu).Seconds()))
	p.last, p.cpu = now, cpu
}

func (p *phases) print() {
	if len(p.lines) > 0 {
		fmt.Fprintf(os.Stderr, "debian-pkgs: %s\n", strings.Join(p.lines, ", "))
	}
}
