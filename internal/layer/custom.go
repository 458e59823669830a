package layer

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// User is an account of /etc/passwd and /etc/shadow.
type User struct {
	// Name is the login name; required.
	Name string
	// UID and GID are the user's ids. A GID that no group has gets a group
	// of the user's name.
	UID, GID int
	// Home is the home directory; default /var/empty. A home other than
	// /var/empty is created (mode 0755, owned by UID:GID) unless the image
	// has it already.
	Home string
	// Shell is the login shell; default /bin/sh.
	Shell string
	// Gecos is the comment field; default empty.
	Gecos string
}

// Group is a group of /etc/group.
type Group struct {
	// Name is the group name; required.
	Name string
	// GID is the group id.
	GID int
	// Members are the names of the group's supplementary members.
	Members []string
}

// File is an extra file, directory or symlink of the customisation layer.
// Files win over everything else in the layer, generated /etc/passwd
// included.
type File struct {
	// Path is the absolute path in the image, e.g. /etc/nix/nix.conf; not
	// inside /nix/store. Missing parent directories are created with mode
	// 0755, owned by root.
	Path string
	// Mode holds the permission bits plus os.ModeSetuid, os.ModeSetgid and
	// os.ModeSticky; 0 means 0644 for files and 0755 for directories.
	// Ignored for symlinks (always 0777).
	Mode fs.FileMode
	// UID and GID own the entry; default 0.
	UID, GID int
	// Content is a regular file's content.
	Content []byte
	// Dir makes the entry a directory (Content is then ignored).
	Dir bool
	// Symlink, when set, makes the entry a symlink to this target; it is
	// written as given and not checked.
	Symlink string
}

// Custom describes the customisation layer: the final layer of an image,
// written by strata itself.
type Custom struct {
	// Packages are the store paths of the requested packages, in request
	// order; their top-level entries are merged into / (see
	// WriteCustomisation). Duplicates count once.
	Packages []string
	// Closure is every store path of the image; symlinks are only made to
	// targets that resolve inside it, and the CA bundle is looked for in
	// it. Default: Packages. Every package must be in it.
	Closure []string
	// Users are accounts in addition to root (0) and nobody (65534), which
	// are always present unless Users has accounts of those names.
	Users []User
	// Groups are groups in addition to root (0) and nobody (65534), which
	// are always present unless Groups has groups of those names.
	Groups []Group
	// Files are extra files, directories and symlinks.
	Files []File
	// Root is where store paths are read from, as in Options.
	Root string
	// MTime is the modification time of every entry, as in Options.
	MTime time.Time
}

// CustomResult tells what the customisation layer needs from the image
// config, and what it left out.
type CustomResult struct {
	// Env is the environment the image config should carry: PATH first,
	// then SSL_CERT_FILE when the image has a CA bundle, then what the
	// closure's store paths declare in EnvFile, sorted by name.
	Env []string
	// Skipped are image paths not linked because their target dangles or
	// resolves outside the closure, sorted.
	Skipped []string
	// Collisions are image paths that several packages provide; the first
	// package in request order won (or a generated or extra file did).
	// Sorted.
	Collisions []string
}

// Paths of the customisation layer.
const (
	// DefaultPath is the PATH of every image.
	DefaultPath = "/bin:/usr/bin:/sbin:/usr/sbin"
	// CABundle is where the image's CA bundle is linked, and SSL_CERT_FILE.
	CABundle = "/etc/ssl/certs/ca-bundle.crt"
	// caBundleInStore is where a CA package keeps its bundle.
	caBundleInStore = "etc/ssl/certs/ca-bundle.crt"
)

// caBundleAliases are linked to the bundle too, for programs that only
// look in Debian's place.
var caBundleAliases = []string{"/etc/ssl/certs/ca-certificates.crt"}

// excludedTop are top-level entries of packages that are never merged into
// /: nix would shadow the store, nix-support is Nix's metadata.
var excludedTop = map[string]bool{"nix": true, "nix-support": true}

// WriteCustomisation writes the customisation layer as an uncompressed,
// reproducible tar (same entry order, mtime and ownership rules as
// WriteStorePaths) to w. It holds, in order of precedence:
//
//  1. c.Files;
//  2. /etc/passwd, /etc/group and /etc/shadow (root, c.Users, nobody),
//     home directories (/root mode 0700), /tmp and /var/tmp (mode 1777);
//  3. the top-level entries (bin, lib, share, etc, ...; not nix or
//     nix-support) of c.Packages merged into / as buildEnv does: an entry
//     only one package has becomes a symlink to it; a directory several
//     packages have becomes a real directory (mode 0755) whose entries are
//     merged the same way, recursively; on a conflict the first package
//     wins. So a package's etc/passwd is not linked: ours wins;
//  4. /usr/bin/env, linked to the env of the merged /bin when there is one;
//     /etc/ssl/certs/ca-bundle.crt (and ca-certificates.crt), linked to the
//     bundle of a package that has etc/ssl/certs/ca-bundle.crt, preferring
//     the merged /etc, else the first closure path in byte order.
//
// A store path of the closure may declare environment the image needs in
// its nix-support/strata-env (EnvFile): NAME=VALUE lines (blank lines and
// # comments skipped), typically paths compiled into its programs that
// point elsewhere (GIT_EXEC_PATH=/nix/store/...-git/lib/git-core). They go
// into CustomResult.Env: the requested packages' declarations first (in
// request order), then the rest of the closure's (in byte order); the first
// declaration of a name wins; PATH and SSL_CERT_FILE stay the layer's, and
// declaring PATH is an error.
//
// Every symlink made from packages is absolute, points into /nix/store and
// resolves, following every link, to a file or directory inside c.Closure:
// an entry whose target dangles is skipped and reported in
// CustomResult.Skipped. Real directories are root-owned.
func WriteCustomisation(ctx context.Context, w io.Writer, c Custom) (CustomResult, error) {
	b, err := newCustomBuilder(ctx, c)
	if err != nil {
		return CustomResult{}, err
	}
	if err := b.build(c); err != nil {
		return CustomResult{}, err
	}
	if err := b.write(w, c.MTime); err != nil {
		return CustomResult{}, err
	}
	slices.Sort(b.res.Skipped)
	b.res.Skipped = slices.Compact(b.res.Skipped)
	slices.Sort(b.res.Collisions)
	b.res.Collisions = slices.Compact(b.res.Collisions)
	return b.res, nil
}

type nodeKind int

const (
	kindDir  nodeKind = iota // a real directory
	kindFile                 // a regular file with content
	kindLink                 // a symlink
)

type node struct {
	kind     nodeKind
	mode     int64 // tar mode bits
	uid, gid int
	content  []byte
	children map[string]*node

	target string // symlink target
	// pkg: a symlink into a package, made by merging.
	pkg bool
	// expandable: a package symlink to a directory, which becomes a real
	// directory when another package (or the layer) needs it to be one.
	expandable bool
}

// maxMergeDepth bounds how deep directories of several packages are merged
// (a guard against symlink loops inside packages).
const maxMergeDepth = 64

func newDir(mode int64, uid, gid int) *node {
	return &node{kind: kindDir, mode: mode, uid: uid, gid: gid, children: make(map[string]*node)}
}

type customBuilder struct {
	ctx     context.Context
	res     CustomResult
	rootDir *node
	r       *resolver
	closure map[string]bool
	sorted  []string // closure in byte order
}

func newCustomBuilder(ctx context.Context, c Custom) (*customBuilder, error) {
	b := &customBuilder{
		ctx:     ctx,
		rootDir: newDir(0o755, 0, 0),
		r:       newResolver(c.Root),
		closure: make(map[string]bool),
	}
	cl := c.Closure
	if cl == nil {
		cl = c.Packages
	}
	for _, p := range cl {
		if _, err := storePathName(p); err != nil {
			return nil, err
		}
		b.closure[p] = true
	}
	for _, p := range c.Packages {
		if _, err := storePathName(p); err != nil {
			return nil, err
		}
		if !b.closure[p] {
			return nil, fmt.Errorf("layer: package %s is not in the closure", p)
		}
	}
	for p := range b.closure {
		b.sorted = append(b.sorted, p)
	}
	slices.Sort(b.sorted)
	return b, nil
}

func (b *customBuilder) build(c Custom) error {
	for _, f := range c.Files {
		if err := b.addFile(f); err != nil {
			return err
		}
	}
	if err := b.addAccounts(c.Users, c.Groups); err != nil {
		return err
	}
	for _, d := range []string{"/tmp", "/var/tmp"} {
		if err := b.addOurs(d, newDir(0o1777, 0, 0)); err != nil {
			return err
		}
	}
	seen := make(map[string]bool)
	for _, p := range c.Packages {
		if seen[p] {
			continue
		}
		seen[p] = true
		if err := b.mergePackage(p); err != nil {
			return err
		}
	}
	if env, ok := b.lookup("/bin/env"); ok {
		if err := b.addLateLink("/usr/bin/env", env); err != nil {
			return err
		}
	}
	bundle, ok := b.lookup(CABundle)
	if !ok {
		for _, p := range b.sorted {
			t := p + "/" + caBundleInStore
			if b.valid(t) {
				bundle, ok = t, true
				break
			}
		}
	}
	b.res.Env = []string{"PATH=" + DefaultPath}
	if ok {
		for _, l := range append([]string{CABundle}, caBundleAliases...) {
			if err := b.addLateLink(l, bundle); err != nil {
				return err
			}
		}
		b.res.Env = append(b.res.Env, "SSL_CERT_FILE="+CABundle)
	}
	return b.packageEnv(c.Packages)
}

// EnvFile is where a store path declares the environment it needs in an
// image (see WriteCustomisation).
const EnvFile = "nix-support/strata-env"

// envNameOK is a portable environment variable name.
func envNameOK(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// packageEnv adds to b.res.Env what the closure's store paths declare in
// their EnvFile: the requested packages first, in request order, then the
// rest of the closure in byte order; the first declaration of a name wins,
// and names the layer sets itself (PATH, SSL_CERT_FILE) stay as they are.
// The declared variables follow the layer's own, sorted by name.
func (b *customBuilder) packageEnv(pkgs []string) error {
	set := map[string]bool{}
	for _, kv := range b.res.Env {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	var added []string
	seen := map[string]bool{}
	for _, p := range append(slices.Clone(pkgs), b.sorted...) {
		if seen[p] {
			continue
		}
		seen[p] = true
		if err := b.ctx.Err(); err != nil {
			return err
		}
		f := p + "/" + EnvFile
		res, err := b.r.resolve(f)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
				continue
			}
			return fmt.Errorf("layer: %s: %w", f, err)
		}
		if res.isDir || !b.closure[storePathOf(res.final)] {
			return fmt.Errorf("layer: %s: not a file of the closure", f)
		}
		data, err := os.ReadFile(diskPath(b.r.root, res.final))
		if err != nil {
			return fmt.Errorf("layer: %w", err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok || !envNameOK(k) {
				return fmt.Errorf("layer: %s line %d: want NAME=VALUE, got %q", f, i+1, line)
			}
			if k == "PATH" {
				return fmt.Errorf("layer: %s line %d: PATH is the image's (%s); declare other variables", f, i+1, DefaultPath)
			}
			if set[k] {
				continue
			}
			set[k] = true
			added = append(added, k+"="+v)
		}
	}
	slices.Sort(added)
	b.res.Env = append(b.res.Env, added...)
	return nil
}

// addLateLink adds a generated symlink after the packages are merged,
// unless the image has something at p already; a package file in the way
// is a collision, not an error.
func (b *customBuilder) addLateLink(p, target string) error {
	if b.exists(p) {
		return nil
	}
	err := b.addOurs(p, &node{kind: kindLink, target: target, mode: modeSymlink})
	if errors.Is(err, errNotDir) {
		b.res.Collisions = append(b.res.Collisions, p)
		return nil
	}
	return err
}

// valid tells whether the store path target resolves inside the closure.
func (b *customBuilder) valid(target string) bool {
	if !b.closure[storePathOf(target)] {
		return false
	}
	res, err := b.r.resolve(target)
	return err == nil && b.closure[storePathOf(res.final)]
}

// cleanImagePath checks that p is an absolute image path outside the store
// and returns its components.
func cleanImagePath(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("layer: %q is not an absolute path", p)
	}
	cp := path.Clean(p)
	if cp == "/" {
		return nil, fmt.Errorf("layer: cannot write / itself")
	}
	if cp == StoreDir || strings.HasPrefix(cp, StoreDir+"/") {
		return nil, fmt.Errorf("layer: %q is inside the Nix store", p)
	}
	return strings.Split(cp[1:], "/"), nil
}

func tarMode(m fs.FileMode, def int64) int64 {
	if m == 0 {
		return def
	}
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

func (b *customBuilder) addFile(f File) error {
	var n *node
	switch {
	case f.Symlink != "":
		n = &node{kind: kindLink, target: f.Symlink, mode: modeSymlink, uid: f.UID, gid: f.GID}
	case f.Dir:
		n = newDir(tarMode(f.Mode, 0o755), f.UID, f.GID)
	default:
		n = &node{kind: kindFile, mode: tarMode(f.Mode, 0o644), uid: f.UID, gid: f.GID, content: f.Content}
	}
	comps, err := cleanImagePath(f.Path)
	if err != nil {
		return err
	}
	parent, err := b.parentDir(comps)
	if err != nil {
		return err
	}
	name := comps[len(comps)-1]
	if ex, ok := parent.children[name]; ok {
		if ex.kind == kindDir && n.kind == kindDir {
			// A directory given twice, or after a file inside it:
			// keep the children, take the new owner and mode.
			ex.mode, ex.uid, ex.gid = n.mode, n.uid, n.gid
			return nil
		}
		return fmt.Errorf("layer: file %s given twice", f.Path)
	}
	parent.children[name] = n
	return nil
}

// addOurs adds a generated entry unless the layer already has one there.
func (b *customBuilder) addOurs(p string, n *node) error {
	comps, err := cleanImagePath(p)
	if err != nil {
		return err
	}
	parent, err := b.parentDir(comps)
	if err != nil {
		return err
	}
	name := comps[len(comps)-1]
	if _, ok := parent.children[name]; ok {
		return nil
	}
	parent.children[name] = n
	return nil
}

// parentDir returns the real directory that holds the path of components
// comps, creating missing directories and expanding package symlinks on
// the way. It fails when a file or a non-package symlink is in the way.
func (b *customBuilder) parentDir(comps []string) (*node, error) {
	dir := b.rootDir
	for i, c := range comps[:len(comps)-1] {
		n, ok := dir.children[c]
		if !ok {
			n = newDir(0o755, 0, 0)
			dir.children[c] = n
		}
		if n.kind == kindLink && n.expandable {
			if err := b.expand(n); err != nil {
				return nil, err
			}
		}
		if n.kind != kindDir {
			return nil, fmt.Errorf("layer: /%s: %w", strings.Join(comps[:i+1], "/"), errNotDir)
		}
		dir = n
	}
	return dir, nil
}

// lookup finds image path p in the tree and returns the store path it
// stands for, when that resolves inside the closure.
func (b *customBuilder) lookup(p string) (string, bool) {
	comps, err := cleanImagePath(p)
	if err != nil {
		return "", false
	}
	dir := b.rootDir
	for i, c := range comps {
		n, ok := dir.children[c]
		if !ok {
			return "", false
		}
		switch n.kind {
		case kindLink:
			if !n.pkg {
				return "", false
			}
			t := strings.Join(append([]string{n.target}, comps[i+1:]...), "/")
			return t, b.valid(t)
		case kindFile:
			return "", false
		}
		dir = n
	}
	return "", false
}

// exists tells whether the image has something at p: an entry of the
// layer, or a path inside a package symlinked into the layer.
func (b *customBuilder) exists(p string) bool {
	comps, err := cleanImagePath(p)
	if err != nil {
		return false
	}
	dir := b.rootDir
	for i, c := range comps {
		n, ok := dir.children[c]
		if !ok {
			return false
		}
		if i == len(comps)-1 {
			return true
		}
		switch n.kind {
		case kindLink:
			if !n.pkg {
				return true // not ours to look into: treat as taken
			}
			_, err := b.r.resolve(strings.Join(append([]string{n.target}, comps[i+1:]...), "/"))
			return err == nil
		case kindFile:
			return true
		}
		dir = n
	}
	return false
}

// mergePackage merges the top-level entries of package p into /.
func (b *customBuilder) mergePackage(p string) error {
	res, err := b.r.resolve(p)
	if err != nil || !res.isDir {
		// A package that is a single file has nothing to merge.
		return nil
	}
	return b.mergeDir(b.rootDir, p, 0)
}

// mergeDir merges the entries of the store directory src into the real
// directory dst.
func (b *customBuilder) mergeDir(dst *node, src string, depth int) error {
	if err := b.ctx.Err(); err != nil {
		return fmt.Errorf("layer: customisation: %w", err)
	}
	res, err := b.r.resolve(src)
	if err != nil {
		return fmt.Errorf("layer: customisation: %w", err)
	}
	names, err := readDirNames(diskPath(b.r.root, res.final))
	if err != nil {
		return err
	}
	for _, name := range names {
		if depth == 0 && excludedTop[name] {
			continue
		}
		if err := b.mergeEntry(dst, name, src+"/"+name, depth); err != nil {
			return err
		}
	}
	return nil
}

func (b *customBuilder) mergeEntry(dst *node, name, target string, depth int) error {
	res, err := b.r.resolve(target)
	if err != nil || !b.closure[storePathOf(res.final)] {
		b.res.Skipped = append(b.res.Skipped, b.imagePathOf(target))
		return nil
	}
	ex, ok := dst.children[name]
	if !ok {
		dst.children[name] = &node{kind: kindLink, target: target, mode: modeSymlink, pkg: true, expandable: res.isDir}
		return nil
	}
	if res.isDir && depth < maxMergeDepth {
		switch {
		case ex.kind == kindDir:
			return b.mergeDir(ex, target, depth+1)
		case ex.kind == kindLink && ex.expandable:
			exRes, err := b.r.resolve(ex.target)
			if err == nil && exRes.final == res.final {
				return nil // the same directory, reached another way
			}
			if err := b.expandAt(ex, depth+1); err != nil {
				return err
			}
			return b.mergeDir(ex, target, depth+1)
		}
	}
	b.res.Collisions = append(b.res.Collisions, b.imagePathOf(target))
	return nil
}

// expand turns the package symlink n into a real directory holding
// symlinks to the entries of its target.
func (b *customBuilder) expand(n *node) error {
	return b.expandAt(n, 1)
}

func (b *customBuilder) expandAt(n *node, depth int) error {
	t := n.target
	*n = *newDir(0o755, 0, 0)
	return b.mergeDir(n, t, depth)
}

// imagePathOf maps a store path inside a package to the image path it is
// merged at: /nix/store/abc-p/bin/x → /bin/x.
func (b *customBuilder) imagePathOf(target string) string {
	rest := strings.TrimPrefix(target, storePathOf(target))
	if rest == "" {
		return "/"
	}
	return rest
}

// addAccounts adds /etc/passwd, /etc/group, /etc/shadow and home
// directories.
func (b *customBuilder) addAccounts(users []User, groups []Group) error {
	us := make([]User, 0, len(users)+2)
	names := make(map[string]bool)
	add := func(u User) error {
		if names[u.Name] {
			return nil
		}
		if err := checkField("user name", u.Name, false); err != nil {
			return err
		}
		if u.Home == "" {
			u.Home = "/var/empty"
		}
		if u.Shell == "" {
			u.Shell = "/bin/sh"
		}
		for _, f := range []struct{ what, v string }{{"home", u.Home}, {"shell", u.Shell}, {"gecos", u.Gecos}} {
			if err := checkField("user "+u.Name+" "+f.what, f.v, true); err != nil {
				return err
			}
		}
		names[u.Name] = true
		us = append(us, u)
		return nil
	}
	// root first, configured users in order, nobody last; a configured
	// root or nobody replaces the default.
	root := User{Name: "root", Home: "/root", Gecos: "root"}
	nobody := User{Name: "nobody", UID: 65534, GID: 65534, Home: "/var/empty", Shell: "/sbin/nologin", Gecos: "nobody"}
	for _, u := range users {
		if u.Name == "root" {
			root = u
		}
		if u.Name == "nobody" {
			nobody = u
		}
	}
	if err := add(root); err != nil {
		return err
	}
	for _, u := range users {
		if u.Name != "nobody" {
			if err := add(u); err != nil {
				return err
			}
		}
	}
	if err := add(nobody); err != nil {
		return err
	}

	gs := make([]Group, 0, len(groups)+len(us))
	gnames := make(map[string]bool)
	gids := make(map[int]bool)
	addGroup := func(g Group) error {
		if gnames[g.Name] {
			return nil
		}
		if err := checkField("group name", g.Name, false); err != nil {
			return err
		}
		for _, m := range g.Members {
			if err := checkField("group "+g.Name+" member", m, false); err != nil {
				return err
			}
		}
		gnames[g.Name] = true
		gids[g.GID] = true
		gs = append(gs, g)
		return nil
	}
	rootG, nobodyG := Group{Name: "root"}, Group{Name: "nobody", GID: 65534}
	for _, g := range groups {
		if g.Name == "root" {
			rootG = g
		}
		if g.Name == "nobody" {
			nobodyG = g
		}
	}
	if err := addGroup(rootG); err != nil {
		return err
	}
	for _, g := range groups {
		if g.Name != "nobody" {
			if err := addGroup(g); err != nil {
				return err
			}
		}
	}
	// A user whose primary group does not exist gets one of its name.
	for _, u := range us {
		if !gids[u.GID] && u.GID != nobodyG.GID && !gnames[u.Name] {
			if err := addGroup(Group{Name: u.Name, GID: u.GID}); err != nil {
				return err
			}
		}
	}
	if err := addGroup(nobodyG); err != nil {
		return err
	}

	var passwd, group, shadow strings.Builder
	for _, u := range us {
		fmt.Fprintf(&passwd, "%s:x:%d:%d:%s:%s:%s\n", u.Name, u.UID, u.GID, u.Gecos, u.Home, u.Shell)
		fmt.Fprintf(&shadow, "%s:!:1::::::\n", u.Name)
	}
	for _, g := range gs {
		fmt.Fprintf(&group, "%s:x:%d:%s\n", g.Name, g.GID, strings.Join(g.Members, ","))
	}
	for _, f := range []struct {
		p    string
		mode int64
		s    string
	}{
		{"/etc/passwd", 0o644, passwd.String()},
		{"/etc/group", 0o644, group.String()},
		{"/etc/shadow", 0o640, shadow.String()},
	} {
		if err := b.addOurs(f.p, &node{kind: kindFile, mode: f.mode, content: []byte(f.s)}); err != nil {
			return err
		}
	}
	for _, u := range us {
		switch u.Home {
		case "/var/empty":
			if err := b.addOurs(u.Home, newDir(0o555, 0, 0)); err != nil {
				return err
			}
		case "/", "":
		default:
			mode := int64(0o755)
			if u.UID == 0 {
				mode = 0o700
			}
			if err := b.addOurs(u.Home, newDir(mode, u.UID, u.GID)); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkField rejects what would break the colon-separated account files.
func checkField(what, v string, emptyOK bool) error {
	if v == "" && !emptyOK {
		return fmt.Errorf("layer: empty %s", what)
	}
	if strings.ContainsAny(v, ":\n") {
		return fmt.Errorf("layer: %s %q contains ':' or a newline", what, v)
	}
	return nil
}

// write writes the tree as a tar, depth first in byte order of names.
func (b *customBuilder) write(w io.Writer, mt time.Time) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	tw := tar.NewWriter(bw)
	mtime := Options{MTime: mt}.mtime()
	var walk func(dir *node, prefix string) error
	walk = func(dir *node, prefix string) error {
		names := make([]string, 0, len(dir.children))
		for name := range dir.children {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			n := dir.children[name]
			h := &tar.Header{
				Name:    prefix + name,
				Mode:    n.mode,
				Uid:     n.uid,
				Gid:     n.gid,
				ModTime: mtime,
				Format:  tar.FormatPAX,
			}
			switch n.kind {
			case kindDir:
				h.Typeflag = tar.TypeDir
				h.Name += "/"
			case kindFile:
				h.Typeflag = tar.TypeReg
				h.Size = int64(len(n.content))
			case kindLink:
				h.Typeflag = tar.TypeSymlink
				h.Linkname = n.target
			}
			if err := tw.WriteHeader(h); err != nil {
				return fmt.Errorf("layer: customisation: write header for %s: %w", h.Name, err)
			}
			if n.kind == kindFile {
				if _, err := tw.Write(n.content); err != nil {
					return fmt.Errorf("layer: customisation: write %s: %w", h.Name, err)
				}
			}
			if n.kind == kindDir {
				if err := walk(n, h.Name); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(b.rootDir, ""); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("layer: customisation: finish tar: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("layer: customisation: write tar: %w", err)
	}
	return nil
}
