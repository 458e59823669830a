// Package layer turns Nix store paths into reproducible OCI layers.
//
// It has four parts:
//
//   - [WriteStorePaths] writes an uncompressed, reproducible tar of a group of
//     store paths (sorted entries, fixed mtime, uid/gid 0, Nix-normalised
//     permissions, hard links kept within the layer);
//   - [WriteCustomisation] writes the image's final layer without Nix: the
//     requested packages merged into / as symlinks (as nixpkgs buildEnv does),
//     /etc/passwd, /etc/group, /etc/shadow, /tmp, /usr/bin/env and the CA
//     bundle;
//   - [Pack] streams such a tar through a compressor (parallel gzip, or zstd)
//     into a destination in one pass, computing the diffID, the digest and the
//     size on the way, with bounded memory;
//   - [NewStored] wraps a packed blob kept elsewhere (storage, a cache
//     directory) as a go-containerregistry v1.Layer, so that remote.Write,
//     layout and tarball work on it unchanged.
//
// # Reproducibility
//
// A tar written here depends only on the content of the store paths and on
// Options: entries are written depth first with the entries of each
// directory in byte order of their names (as `tar --sort=name` and Nix's NAR
// serialisation do); every entry has uid and gid 0, empty user and group
// names, modification time Options.MTime and no access or change time;
// headers are USTAR, or PAX when a name or link target does not fit USTAR
// (Go's archive/tar decides from the header alone). Permissions are
// normalised like the Nix store: regular files are 0444, or 0555 when any
// execute bit is set; directories are 0555; symlinks 0777. The parent
// directories nix/ and nix/store/ come first with mode 0755 (root-owned and
// writable by root, so that Nix can be used inside the image; Nix's own
// /nix/store is 1775 root:nixbld, a group that does not exist in an image).
//
// Files of the layer that share an inode are written once, later names as
// hard links to the first name. Nix's NAR format has no hard links, so
// sharing inodes only comes from store optimisation (auto-optimise-store),
// which differs between machines; set Options.IgnoreHardLinks where the
// same digest is needed on machines with differently optimised stores.
package layer

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Version identifies the layer format: the tar rules, the compressors and
// their fixed settings. It changes whenever the same input would give other
// bytes, so caches of packed layers should include it in their keys.
const Version = 1

// StoreDir is the Nix store directory every store path lives in.
const StoreDir = "/nix/store"

// Options for writing layers.
type Options struct {
	// Root is prepended to each store path when reading from disk; "" means
	// the store paths are read where they are. Tests use a temporary
	// directory holding a fake nix/store.
	Root string
	// MTime is the modification time of every entry (SOURCE_DATE_EPOCH);
	// the zero value means time.Unix(1, 0). Sub-second parts are dropped.
	MTime time.Time
	// IgnoreHardLinks writes every file in full even when it shares its
	// inode with a file written before; default false (hard links kept).
	IgnoreHardLinks bool
}

// DefaultMTime is the modification time of entries when Options.MTime is
// zero.
var DefaultMTime = time.Unix(1, 0)

func (o Options) mtime() time.Time {
	if o.MTime.IsZero() {
		return DefaultMTime
	}
	return o.MTime.Truncate(time.Second)
}

// diskPath is where the store path (or a path inside it) p is read from.
func diskPath(root, p string) string {
	if root == "" {
		return p
	}
	return filepath.Join(root, p)
}

// Normalised permissions, as in the Nix store.
const (
	modeFile     = 0o444
	modeExec     = 0o555
	modeDir      = 0o555
	modeSymlink  = 0o777
	modeStoreDir = 0o755 // nix/ and nix/store/
)

// copyBufSize is the size of the buffer file contents are read through.
const copyBufSize = 1 << 20

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// storePathName checks that p is a top-level store path and returns its
// name inside the store.
func storePathName(p string) (string, error) {
	name, ok := strings.CutPrefix(p, StoreDir+"/")
	if !ok || name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
		return "", fmt.Errorf("layer: %q is not a store path under %s", p, StoreDir)
	}
	return name, nil
}

// WriteStorePaths writes an uncompressed, reproducible tar of the given
// store paths (absolute, e.g. /nix/store/abc-hello) to w: the directories
// nix/ and nix/store/ first, then each path's tree, paths in byte order
// (duplicates written once). See the package documentation for the exact
// rules. Paths are read under opts.Root. It fails on a path that is not a
// top-level store path, on a file type the Nix store cannot hold (device,
// fifo, socket), and when ctx is done.
func WriteStorePaths(ctx context.Context, w io.Writer, paths []string, opts Options) error {
	ps := slices.Clone(paths)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	for _, p := range ps {
		if _, err := storePathName(p); err != nil {
			return err
		}
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := &tarWriter{
		ctx:   ctx,
		tw:    tar.NewWriter(bw),
		mtime: opts.mtime(),
		root:  opts.Root,
	}
	if !opts.IgnoreHardLinks {
		tw.links = make(map[inode]string)
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	tw.buf = *bp
	if err := tw.dir("nix/", modeStoreDir); err != nil {
		return err
	}
	if err := tw.dir("nix/store/", modeStoreDir); err != nil {
		return err
	}
	for _, p := range ps {
		if err := tw.walk(diskPath(opts.Root, p), strings.TrimPrefix(p, "/")); err != nil {
			return err
		}
	}
	if err := tw.tw.Close(); err != nil {
		return fmt.Errorf("layer: finish tar: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("layer: write tar: %w", err)
	}
	return nil
}

type inode struct{ dev, ino uint64 }

// tarWriter holds the state of one tar being written.
type tarWriter struct {
	ctx   context.Context
	tw    *tar.Writer
	mtime time.Time
	root  string
	links map[inode]string // first name of each multiply-linked inode; nil: no hard links
	buf   []byte
}

func (t *tarWriter) header(h *tar.Header) error {
	h.ModTime = t.mtime
	h.Format = tar.FormatPAX
	if err := t.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("layer: write header for %s: %w", h.Name, err)
	}
	return nil
}

func (t *tarWriter) dir(name string, mode int64) error {
	return t.header(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode})
}

// walk writes the file at disk path src under the tar name name, and
// everything below it.
func (t *tarWriter) walk(src, name string) error {
	if err := t.ctx.Err(); err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	switch m := fi.Mode(); {
	case m.IsDir():
		if err := t.dir(name+"/", modeDir); err != nil {
			return err
		}
		ents, err := readDirNames(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := t.walk(src+"/"+e, name+"/"+e); err != nil {
				return err
			}
		}
		return nil
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("layer: %w", err)
		}
		return t.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: modeSymlink})
	case m.IsRegular():
		return t.file(src, name, fi)
	default:
		return fmt.Errorf("layer: %s: unsupported file type %s in a store path", src, m.Type())
	}
}

// readDirNames returns the names in directory dir in byte order.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("layer: read directory %s: %w", dir, err)
	}
	slices.Sort(names)
	return names, nil
}

func (t *tarWriter) file(src, name string, fi fs.FileInfo) error {
	if t.links != nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			key := inode{uint64(st.Dev), uint64(st.Ino)}
			if first, ok := t.links[key]; ok {
				return t.header(&tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: first, Mode: fileMode(fi)})
			}
			t.links[key] = name
		}
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	defer f.Close()
	size := fi.Size()
	if err := t.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: fileMode(fi)}); err != nil {
		return err
	}
	// The LimitReader also hides *os.File's WriterTo, so the pooled buffer
	// is used rather than a new one per file.
	n, err := io.CopyBuffer(t.tw, io.LimitReader(f, size), t.buf)
	if err != nil {
		return fmt.Errorf("layer: copy %s: %w", src, err)
	}
	if n != size {
		return fmt.Errorf("layer: copy %s: %w (read %d of %d bytes; did it change?)", src, io.ErrUnexpectedEOF, n, size)
	}
	return nil
}

func fileMode(fi fs.FileInfo) int64 {
	if fi.Mode().Perm()&0o111 != 0 {
		return modeExec
	}
	return modeFile
}
