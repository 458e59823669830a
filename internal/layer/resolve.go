package layer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// maxSymlinkHops bounds symlink resolution, as the kernel's ELOOP does.
const maxSymlinkHops = 40

var (
	errNotDir = errors.New("not a directory")
	errLoop   = errors.New("too many levels of symbolic links")
)

// resolver follows symlinks of image paths on the disk under root, as if
// root were "/": absolute link targets are taken relative to root.
type resolver struct {
	root  string
	cache map[string]resolved
}

type resolved struct {
	final string // the path with every symlink followed
	isDir bool
	err   error
}

func newResolver(root string) *resolver {
	return &resolver{root: root, cache: make(map[string]resolved)}
}

// resolve follows every symlink in p (absolute) and returns the final path
// and whether it is a directory; it fails when p does not exist or dangles.
func (r *resolver) resolve(p string) (resolved, error) {
	if res, ok := r.cache[p]; ok {
		return res, res.err
	}
	res := r.walk(p)
	r.cache[p] = res
	return res, res.err
}

func (r *resolver) walk(p string) resolved {
	cur := "/"
	rest := strings.Split(p, "/")
	hops := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		fi, err := os.Lstat(diskPath(r.root, next))
		if err != nil {
			return resolved{err: fmt.Errorf("resolve %s: %w", p, err)}
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			hops++
			if hops > maxSymlinkHops {
				return resolved{err: fmt.Errorf("resolve %s: %w", p, errLoop)}
			}
			t, err := os.Readlink(diskPath(r.root, next))
			if err != nil {
				return resolved{err: fmt.Errorf("resolve %s: %w", p, err)}
			}
			if strings.HasPrefix(t, "/") {
				cur = "/"
			}
			rest = append(strings.Split(t, "/"), rest...)
			continue
		}
		if len(rest) > 0 && !fi.IsDir() {
			// Only a directory may have further components (ignoring
			// trailing empty ones).
			if strings.Join(rest, "") != "" {
				return resolved{err: fmt.Errorf("resolve %s: %s: %w", p, next, errNotDir)}
			}
		}
		cur = next
	}
	fi, err := os.Stat(diskPath(r.root, cur))
	if err != nil {
		return resolved{err: fmt.Errorf("resolve %s: %w", p, err)}
	}
	return resolved{final: cur, isDir: fi.IsDir()}
}

// storePathOf returns the top-level store path p lies in, or "" when p is
// not inside the store.
func storePathOf(p string) string {
	rest, ok := strings.CutPrefix(p, StoreDir+"/")
	if !ok || rest == "" {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return StoreDir + "/" + name
}
