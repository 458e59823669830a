package layer

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"slices"
	"time"
)

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
