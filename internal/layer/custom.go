package layer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"time"
)

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
	b.res.Env = []string{"PATH=" + DefaultPath}
	if err := b.addCABundle(); err != nil {
		return err
	}
	return b.packageEnv(c.Packages)
}

// addCABundle links CABundle and its aliases to the merged /etc's bundle,
// else to the first in byte order of the closure, and sets SSL_CERT_FILE;
// an image without a bundle gets neither.
func (b *customBuilder) addCABundle() error {
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
	if !ok {
		return nil
	}
	for _, l := range append([]string{CABundle}, caBundleAliases...) {
		if err := b.addLateLink(l, bundle); err != nil {
			return err
		}
	}
	b.res.Env = append(b.res.Env, "SSL_CERT_FILE="+CABundle)
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
