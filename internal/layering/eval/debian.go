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
	pkgs := make(map[string]*debPkg)
	providers := make(map[string][]string)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var cur *debPkg
	field := ""
	flush := func() {
		if cur != nil && cur.name != "" {
			if _, dup := pkgs[cur.name]; !dup {
				pkgs[cur.name] = cur
				for _, pv := range cur.provides {
					providers[pv] = append(providers[pv], cur.name)
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
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("debian: malformed line %q", line)
		}
		field, v = k, strings.TrimSpace(v)
		switch field {
		case "Package":
			cur.name = v
		case "Version":
			cur.version = v
		case "Installed-Size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("debian: %s: Installed-Size %q: %w", cur.name, v, err)
			}
			cur.size = n * 1024
		case "Depends", "Pre-Depends":
			for _, clause := range strings.Split(v, ",") {
				var alts []string
				for _, a := range strings.Split(clause, "|") {
					if n := depName(a); n != "" {
						alts = append(alts, n)
					}
				}
				if len(alts) > 0 {
					cur.deps = append(cur.deps, alts)
				}
			}
		case "Provides":
			for _, a := range strings.Split(v, ",") {
				if n := depName(a); n != "" {
					cur.provides = append(cur.provides, n)
				}
			}
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("debian: read Packages: %w", err)
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("debian: no packages in the index (give the uncompressed Packages file)")
	}
	for _, ps := range providers {
		sort.Strings(ps)
	}
	resolve := func(alts []string) string {
		for _, a := range alts {
			if _, ok := pkgs[a]; ok {
				return a
			}
		}
		for _, a := range alts {
			if ps := providers[a]; len(ps) > 0 {
				return ps[0]
			}
		}
		return ""
	}
	// The packages the images need, and their resolved dependencies.
	edges := make(map[string][]string)
	var visit func(n string)
	visit = func(n string) {
		if _, ok := edges[n]; ok {
			return
		}
		edges[n] = nil
		seen := map[string]bool{}
		for _, alts := range pkgs[n].deps {
			d := resolve(alts)
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
	names := make([]string, 0, len(images))
	for name := range images {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, p := range images[name] {
			if _, ok := pkgs[p]; !ok {
				return nil, fmt.Errorf("debian: image %s asks for %s, which is not in the index", name, p)
			}
			visit(p)
		}
	}
	// Merge dependency cycles (strongly connected components) into one
	// path each, as a Debian-to-Nix package set must.
	comp := sccs(edges)
	members := make(map[int][]string)
	for n, c := range comp {
		members[c] = append(members[c], n)
	}
	for _, m := range members {
		sort.Strings(m)
	}
	c := &Corpus{Paths: make(map[string]CorpusPath)}
	pathOf := make(map[int]string)
	var emit func(ci int) string
	emit = func(ci int) string {
		if p, ok := pathOf[ci]; ok {
			return p
		}
		var refs []string
		seen := map[string]bool{}
		var size int64
		for _, n := range members[ci] {
			size += pkgs[n].size
			for _, d := range edges[n] {
				if comp[d] == ci {
					continue
				}
				if p := emit(comp[d]); !seen[p] {
					seen[p] = true
					refs = append(refs, p)
				}
			}
		}
		sort.Strings(refs)
		head := pkgs[members[ci][0]]
		name := strings.Join(members[ci], "+")
		if len(members[ci]) > 2 {
			name = fmt.Sprintf("%s+%d", members[ci][0], len(members[ci])-1)
		}
		name += "-" + storeSafe(head.version)
		h := sha256.Sum256([]byte("strata-debian12\x00" + name + "\x00" + strings.Join(refs, "\x00")))
		p := "/nix/store/" + closure.EncodeBase32(h[:20]) + "-" + name
		c.Paths[p] = CorpusPath{NarSize: size, References: refs}
		pathOf[ci] = p
		return p
	}
	for _, name := range names {
		im := CorpusImage{Name: name}
		seen := map[string]bool{}
		for _, pk := range images[name] {
			if p := emit(comp[pk]); !seen[p] {
				seen[p] = true
				im.Roots = append(im.Roots, p)
			}
		}
		sort.Strings(im.Roots)
		c.Images = append(c.Images, im)
	}
	if err := c.init(); err != nil {
		return nil, err
	}
	// The mixed update.
	set := c.PackageSet()
	rev := make(map[string][]string)
	for _, p := range set.Sorted() {
		for _, r := range set.Paths[p].References {
			rev[r] = append(rev[r], p)
		}
	}
	var bumped []string
	for _, b := range bumps {
		ci, ok := comp[b]
		if !ok {
			return nil, fmt.Errorf("debian: the update bumps %s, which no image holds", b)
		}
		bumped = append(bumped, pathOf[ci])
	}
	u := c.bump(UpdateMixed, bumped, rev)
	c.Updated = u.Map
	for to := range u.isNew {
		n := u.graph.Paths[to]
		c.Paths[to] = CorpusPath{NarSize: n.NarSize, References: n.References}
	}
	c.graph = nil
	c.prune()
	if err := c.init(); err != nil {
		return nil, err
	}
	return c, nil
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
