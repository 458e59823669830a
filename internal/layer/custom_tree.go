package layer

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// The customisation layer is assembled as a tree of nodes (real
// directories, files, symlinks), then written as a tar by write.

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

func newDir(mode int64, uid, gid int) *node {
	return &node{kind: kindDir, mode: mode, uid: uid, gid: gid, children: make(map[string]*node)}
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
	parent, name, err := b.slot(f.Path)
	if err != nil {
		return err
	}
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
	parent, name, err := b.slot(p)
	if err != nil {
		return err
	}
	if _, ok := parent.children[name]; ok {
		return nil
	}
	parent.children[name] = n
	return nil
}

// slot returns the real directory that holds image path p (see
// parentDir) and p's name in it.
func (b *customBuilder) slot(p string) (*node, string, error) {
	comps, err := cleanImagePath(p)
	if err != nil {
		return nil, "", err
	}
	parent, err := b.parentDir(comps)
	if err != nil {
		return nil, "", err
	}
	return parent, comps[len(comps)-1], nil
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
