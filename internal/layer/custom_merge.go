package layer

import (
	"fmt"
	"strings"
)

// maxMergeDepth bounds how deep directories of several packages are merged
// (a guard against symlink loops inside packages).
const maxMergeDepth = 64

// excludedTop are top-level entries of packages that are never merged into
// /: nix would shadow the store, nix-support is Nix's metadata.
var excludedTop = map[string]bool{"nix": true, "nix-support": true}

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
