package eval

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"strata/internal/closure"
)

// DebianImages are the images of the Debian 12 corpus: sets of top-level
// packages, as a user would ask for them (apt-get install without
// recommends), from one tool to a desktop application.
var DebianImages = map[string][]string{
	"bash":              {"bash", "coreutils"},
	"curl":              {"curl", "ca-certificates"},
	"wget":              {"wget", "ca-certificates"},
	"git":               {"git"},
	"git-curl":          {"git", "curl", "ca-certificates"},
	"openssh-client":    {"openssh-client"},
	"openssh-server":    {"openssh-server"},
	"rsync":             {"rsync", "openssh-client"},
	"python3":           {"python3"},
	"python3-requests":  {"python3", "python3-requests"},
	"python3-numpy":     {"python3", "python3-numpy"},
	"python3-pandas":    {"python3", "python3-pandas"},
	"python3-scipy":     {"python3", "python3-scipy", "python3-matplotlib"},
	"python3-flask":     {"python3", "python3-flask"},
	"python3-django":    {"python3", "python3-django"},
	"python3-sklearn":   {"python3", "python3-sklearn"},
	"python3-git":       {"python3", "git", "curl"},
	"perl":              {"perl"},
	"ruby":              {"ruby"},
	"php":               {"php-cli"},
	"nodejs":            {"nodejs"},
	"nodejs-npm":        {"nodejs", "npm"},
	"golang":            {"golang-go"},
	"rust":              {"rustc", "cargo"},
	"gcc":               {"gcc", "make", "libc6-dev"},
	"g++-cmake":         {"g++", "cmake", "make"},
	"clang":             {"clang"},
	"openjdk":           {"openjdk-17-jre-headless"},
	"maven":             {"maven"},
	"nginx":             {"nginx"},
	"apache2":           {"apache2"},
	"postgresql":        {"postgresql-15"},
	"mariadb":           {"mariadb-server"},
	"redis":             {"redis-server"},
	"sqlite3":           {"sqlite3"},
	"vim":               {"vim"},
	"emacs":             {"emacs-nox"},
	"tmux-htop":         {"tmux", "htop"},
	"jq":                {"jq"},
	"gnupg":             {"gnupg"},
	"net-tools":         {"iproute2", "iputils-ping", "dnsutils", "netcat-openbsd"},
	"debug":             {"gdb", "strace", "ltrace"},
	"valgrind":          {"valgrind"},
	"imagemagick":       {"imagemagick"},
	"ffmpeg":            {"ffmpeg"},
	"graphviz":          {"graphviz"},
	"pandoc":            {"pandoc"},
	"texlive":           {"texlive-latex-base"},
	"gimp":              {"gimp"},
	"inkscape":          {"inkscape"},
	"libreoffice":       {"libreoffice-writer"},
	"firefox":           {"firefox-esr"},
	"ansible":           {"ansible"},
	"awscli":            {"awscli"},
	"certbot":           {"certbot"},
	"prometheus":        {"prometheus"},
	"samba":             {"samba"},
	"bind9":             {"bind9"},
	"postfix":           {"postfix"},
	"qemu":              {"qemu-system-x86"},
	"jupyter":           {"jupyter-notebook"},
	"octave":            {"octave"},
	"r-base":            {"r-base-core"},
	"shell-git-python3": {"bash", "coreutils", "git", "python3", "curl"},
}

// DebianBumps are the packages the Debian corpus's mixed update bumps:
// a TLS library, a compression library, an interpreter, two tools and an
// image library.
var DebianBumps = []string{"libssl3", "libzstd1", "python3.11-minimal", "git", "curl", "libpng16-16"}

// debPkg is one package of a Packages index.
type debPkg struct {
	name, version string
	size          int64 // bytes
	deps          [][]string
	provides      []string
}

// DebianCorpus builds a corpus from Debian's dependency graph: the
// Packages index read from r (plain text), one store path per package
// (Depends and Pre-Depends; the first alternative that exists, else its
// first provider; version constraints ignored; a dependency cycle merged
// into one path), Installed-Size as the path's size, an image per entry of
// images (the closures of its packages), and a mixed update that bumps the
// packages of bumps and, as Nix does, changes every path depending on them.
func DebianCorpus(r io.Reader, images map[string][]string, bumps []string) (*Corpus, error) {
	idx, err := readDebianIndex(r)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(images))
	for name := range images {
		names = append(names, name)
	}
	sort.Strings(names)
	edges, err := idx.needed(names, images)
	if err != nil {
		return nil, err
	}
	e := newDebianEmitter(idx, edges)
	for _, name := range names {
		im := CorpusImage{Name: name}
		seen := map[string]bool{}
		for _, pk := range images[name] {
			if p := e.emit(e.comp[pk]); !seen[p] {
				seen[p] = true
				im.Roots = append(im.Roots, p)
			}
		}
		sort.Strings(im.Roots)
		e.c.Images = append(e.c.Images, im)
	}
	if err := e.c.init(); err != nil {
		return nil, err
	}
	if err := e.mixedUpdate(bumps); err != nil {
		return nil, err
	}
	return e.c, nil
}

// debianIndex is a parsed Packages index.
type debianIndex struct {
	pkgs map[string]*debPkg
	// providers maps a virtual package to the packages providing it,
	// sorted.
	providers map[string][]string
}

// readDebianIndex parses the Packages index read from r: the fields
// DebianCorpus uses, the first stanza of each package name.
func readDebianIndex(r io.Reader) (*debianIndex, error) {
	idx := &debianIndex{pkgs: make(map[string]*debPkg), providers: make(map[string][]string)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var cur *debPkg
	flush := func() {
		if cur != nil && cur.name != "" {
			if _, dup := idx.pkgs[cur.name]; !dup {
				idx.pkgs[cur.name] = cur
				for _, pv := range cur.provides {
					idx.providers[pv] = append(idx.providers[pv], cur.name)
				}
			}
		}
		cur = nil
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a field we do not read
		}
		if cur == nil {
			cur = &debPkg{}
		}
		if err := cur.field(line); err != nil {
			return nil, err
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("debian: read Packages: %w", err)
	}
	if len(idx.pkgs) == 0 {
		return nil, fmt.Errorf("debian: no packages in the index (give the uncompressed Packages file)")
	}
	for _, ps := range idx.providers {
		sort.Strings(ps)
	}
	return idx, nil
}

// field reads one "Field: value" line of a package's stanza.
func (p *debPkg) field(line string) error {
	k, v, ok := strings.Cut(line, ":")
	if !ok {
		return fmt.Errorf("debian: malformed line %q", line)
	}
	v = strings.TrimSpace(v)
	switch k {
	case "Package":
		p.name = v
	case "Version":
		p.version = v
	case "Installed-Size":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("debian: %s: Installed-Size %q: %w", p.name, v, err)
		}
		p.size = n * 1024
	case "Depends", "Pre-Depends":
		for _, clause := range strings.Split(v, ",") {
			var alts []string
			for _, a := range strings.Split(clause, "|") {
				if n := depName(a); n != "" {
					alts = append(alts, n)
				}
			}
			if len(alts) > 0 {
				p.deps = append(p.deps, alts)
			}
		}
	case "Provides":
		for _, a := range strings.Split(v, ",") {
			if n := depName(a); n != "" {
				p.provides = append(p.provides, n)
			}
		}
	}
	return nil
}

// resolve picks the package a dependency clause stands for: the first
// alternative that exists, else the first provider of one; "" if none.
func (idx *debianIndex) resolve(alts []string) string {
	for _, a := range alts {
		if _, ok := idx.pkgs[a]; ok {
			return a
		}
	}
	for _, a := range alts {
		if ps := idx.providers[a]; len(ps) > 0 {
			return ps[0]
		}
	}
	return ""
}

// needed returns the packages the images (named by names, in that order)
// need, each with its resolved dependencies, sorted.
func (idx *debianIndex) needed(names []string, images map[string][]string) (map[string][]string, error) {
	edges := make(map[string][]string)
	var visit func(n string)
	visit = func(n string) {
		if _, ok := edges[n]; ok {
			return
		}
		edges[n] = nil
		seen := map[string]bool{}
		for _, alts := range idx.pkgs[n].deps {
			d := idx.resolve(alts)
			if d == "" || d == n || seen[d] {
				continue
			}
			seen[d] = true
			edges[n] = append(edges[n], d)
		}
		sort.Strings(edges[n])
		for _, d := range edges[n] {
			visit(d)
		}
	}
	for _, name := range names {
		for _, p := range images[name] {
			if _, ok := idx.pkgs[p]; !ok {
				return nil, fmt.Errorf("debian: image %s asks for %s, which is not in the index", name, p)
			}
			visit(p)
		}
	}
	return edges, nil
}

// debianEmitter turns the needed packages into store paths: a dependency
// cycle (strongly connected component) becomes one path, as a
// Debian-to-Nix package set must.
type debianEmitter struct {
	idx   *debianIndex
	edges map[string][]string
	// comp is each package's component; members each component's
	// packages, sorted.
	comp    map[string]int
	members map[int][]string
	pathOf  map[int]string
	c       *Corpus
}

func newDebianEmitter(idx *debianIndex, edges map[string][]string) *debianEmitter {
	e := &debianEmitter{idx: idx, edges: edges, comp: sccs(edges), members: make(map[int][]string),
		pathOf: make(map[int]string), c: &Corpus{Paths: make(map[string]CorpusPath)}}
	for n, c := range e.comp {
		e.members[c] = append(e.members[c], n)
	}
	for _, m := range e.members {
		sort.Strings(m)
	}
	return e
}

// emit returns the store path of component ci, adding it and its
// dependencies to the corpus first.
func (e *debianEmitter) emit(ci int) string {
	if p, ok := e.pathOf[ci]; ok {
		return p
	}
	var refs []string
	seen := map[string]bool{}
	var size int64
	for _, n := range e.members[ci] {
		size += e.idx.pkgs[n].size
		for _, d := range e.edges[n] {
			if e.comp[d] == ci {
				continue
			}
			if p := e.emit(e.comp[d]); !seen[p] {
				seen[p] = true
				refs = append(refs, p)
			}
		}
	}
	sort.Strings(refs)
	head := e.idx.pkgs[e.members[ci][0]]
	name := strings.Join(e.members[ci], "+")
	if len(e.members[ci]) > 2 {
		name = fmt.Sprintf("%s+%d", e.members[ci][0], len(e.members[ci])-1)
	}
	name += "-" + storeSafe(head.version)
	h := sha256.Sum256([]byte("strata-debian12\x00" + name + "\x00" + strings.Join(refs, "\x00")))
	p := "/nix/store/" + closure.EncodeBase32(h[:20]) + "-" + name
	e.c.Paths[p] = CorpusPath{NarSize: size, References: refs}
	e.pathOf[ci] = p
	return p
}

// mixedUpdate bumps the packages of bumps and, as Nix does, changes every
// path depending on them; the corpus's "updated" records it.
func (e *debianEmitter) mixedUpdate(bumps []string) error {
	c := e.c
	set := c.PackageSet()
	rev := make(map[string][]string)
	for _, p := range set.Sorted() {
		for _, r := range set.Paths[p].References {
			rev[r] = append(rev[r], p)
		}
	}
	var bumped []string
	for _, b := range bumps {
		ci, ok := e.comp[b]
		if !ok {
			return fmt.Errorf("debian: the update bumps %s, which no image holds", b)
		}
		bumped = append(bumped, e.pathOf[ci])
	}
	u := c.bump(UpdateMixed, bumped, rev)
	c.Updated = u.Map
	for to := range u.isNew {
		n := u.graph.Paths[to]
		c.Paths[to] = CorpusPath{NarSize: n.NarSize, References: n.References}
	}
	c.graph = nil
	c.prune()
	return c.init()
}

// depName returns the package name of one alternative of a dependency
// field: "libc6 (>= 2.34)" gives "libc6", "python3:any" gives "python3".
func depName(a string) string {
	a = strings.TrimSpace(a)
	if i := strings.IndexAny(a, " ("); i >= 0 {
		a = a[:i]
	}
	if i := strings.IndexByte(a, ':'); i >= 0 {
		a = a[:i]
	}
	return a
}

// storeSafe makes a Debian version usable in a store path name, which may
// not hold '~' or ':'.
func storeSafe(v string) string {
	return strings.NewReplacer(":", "_", "~", "_").Replace(v)
}

// sccs returns the strongly connected component of every node of the
// graph edges (Tarjan's algorithm, iterative), numbered in an order fixed
// by the sorted node names.
func sccs(edges map[string][]string) map[string]int {
	nodes := make([]string, 0, len(edges))
	for n := range edges {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	index := make(map[string]int)
	low := make(map[string]int)
	onStack := make(map[string]bool)
	comp := make(map[string]int)
	var stack []string
	next, ncomp := 0, 0
	type frame struct {
		n string
		i int
	}
	for _, start := range nodes {
		if _, ok := index[start]; ok {
			continue
		}
		call := []frame{{start, 0}}
		index[start], low[start] = next, next
		next++
		stack = append(stack, start)
		onStack[start] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.i < len(edges[f.n]) {
				w := edges[f.n][f.i]
				f.i++
				if _, ok := index[w]; !ok {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{w, 0})
				} else if onStack[w] && index[w] < low[f.n] {
					low[f.n] = index[w]
				}
				continue
			}
			n := f.n
			call = call[:len(call)-1]
			if len(call) > 0 {
				if p := call[len(call)-1].n; low[n] < low[p] {
					low[p] = low[n]
				}
			}
			if low[n] == index[n] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = ncomp
					if w == n {
						break
					}
				}
				ncomp++
			}
		}
	}
	return comp
}
