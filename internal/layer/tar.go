// Package layer turns Nix store paths into reproducible OCI layers.
//
// It has four parts:
//
//   - [WriteStorePaths] writes an uncompressed, reproducible tar of a group of
//     store paths (sorted entries, fixed mtime, uid/gid 0, Nix-normalised
//     permissions, files of identical content and mode hard-linked within
//     the layer);
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
// # Hard links
//
// Within one layer (one [WriteStorePaths] call), a regular file whose
// content and normalised mode equal those of a file written before it is
// written as a hard link (TypeLink) to the first such file in entry order,
// the way Nix's store optimisation (auto-optimise-store, nix-store
// --optimise) links identical files. Hard links are a function of content
// alone, never of inodes: NAR, the format store paths are built and
// substituted in, has no hard links, so whether two files of a store share
// an inode depends on the machine (built locally or substituted, store
// optimised or not). Linking by inode would make digests machine-dependent;
// linking by content keeps the space saving and gives the same tar on every
// machine.
//
// It is done in the one pass that writes the tar, without holding contents:
// files are grouped by size and normalised mode, and only the files of a
// group with more than one member are hashed (SHA-256, trusted: equal
// digests are taken as equal content), the first member by reading it
// again when the second comes. Later members up to the 1 MiB copy buffer
// are read once for both hash and tar, larger ones twice; store paths must
// not change while being written (as for any other file). Memory is one name per distinct
// size and mode, and one digest and name per hashed content. Empty files are
// never linked: a link saves no data (its header is no smaller than the
// empty file's) and would only tie unrelated files together. Files whose
// normalised modes differ (0444 and 0555) are never linked to each other,
// since hard links share their mode. Options.IgnoreHardLinks writes every
// file in full.
package layer

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Version identifies the layer format: the tar rules, the compressors and
// their fixed settings. It changes whenever the same input would give other
// bytes, so caches of packed layers should include it in their keys.
//
// Version 2: hard links by content rather than by inode.
const Version = 2

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
	// IgnoreHardLinks writes every file in full, even when its content and
	// mode equal those of a file written before; default false (such files
	// are hard links to the first one, see the package documentation).
	// Inodes are never looked at either way.
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
		tw.links = newLinker()
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

// tarWriter holds the state of one tar being written.
type tarWriter struct {
	ctx   context.Context
	tw    *tar.Writer
	mtime time.Time
	root  string
	links *linker // nil: no hard links
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
	size, mode := fi.Size(), fileMode(fi)
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	defer f.Close()
	// data is the whole content when it was read to be hashed and fits
	// the buffer; nil means copy from f.
	var data []byte
	if t.links != nil && size > 0 {
		k := sizeKey{size, mode == modeExec}
		if t.links.candidate(k, name) {
			if err := t.links.hashFirst(t, k); err != nil {
				return err
			}
			var sum [sha256.Size]byte
			if size <= int64(len(t.buf)) {
				data = t.buf[:size]
				if _, err := io.ReadFull(f, data); err != nil {
					return fmt.Errorf("layer: read %s: %w", src, err)
				}
				sum = sha256.Sum256(data)
			} else {
				if sum, err = t.hashFile(f, src, size); err != nil {
					return err
				}
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					return fmt.Errorf("layer: %w", err)
				}
			}
			if first, ok := t.links.sums[contentKey{k, sum}]; ok {
				return t.header(&tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: first, Mode: mode})
			}
			t.links.sums[contentKey{k, sum}] = name
		}
	}
	if err := t.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: mode}); err != nil {
		return err
	}
	if data != nil {
		if _, err := t.tw.Write(data); err != nil {
			return fmt.Errorf("layer: copy %s: %w", src, err)
		}
		return nil
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

// hashFile returns the SHA-256 of the first size bytes of f (at its start),
// read through t.buf.
func (t *tarWriter) hashFile(f *os.File, src string, size int64) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	h := sha256.New()
	n, err := io.CopyBuffer(h, io.LimitReader(f, size), t.buf)
	if err != nil {
		return sum, fmt.Errorf("layer: read %s: %w", src, err)
	}
	if n != size {
		return sum, fmt.Errorf("layer: read %s: %w (read %d of %d bytes; did it change?)", src, io.ErrUnexpectedEOF, n, size)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// sizeKey is what files must share before their contents are compared:
// the size and the normalised mode (executable or not).
type sizeKey struct {
	size int64
	exec bool
}

type contentKey struct {
	sizeKey
	sum [sha256.Size]byte
}

// linker finds the files of a layer whose content and mode equal those of
// a file written before. Files are hashed lazily: the first file of a
// sizeKey is only remembered by name; when a second file of that key comes,
// both are hashed, and so is every later file of the key. Only names and
// digests are kept, never contents.
type linker struct {
	// firsts holds the name of the first file of each sizeKey while it is
	// the only one (not hashed); "" once the key's files are hashed.
	firsts map[sizeKey]string
	// sums maps the content of each hashed file to the first name written
	// with it.
	sums map[contentKey]string
}

func newLinker() *linker {
	return &linker{firsts: make(map[sizeKey]string), sums: make(map[contentKey]string)}
}

// candidate reports whether a file of key k was written before the file
// name, so that name must be hashed; if not, it records name as the first.
func (l *linker) candidate(k sizeKey, name string) bool {
	if _, ok := l.firsts[k]; ok {
		return true
	}
	l.firsts[k] = name
	return false
}

// hashFirst hashes the first file of key k, if not done yet, and records
// its digest.
func (l *linker) hashFirst(t *tarWriter, k sizeKey) error {
	first := l.firsts[k]
	if first == "" {
		return nil
	}
	src := diskPath(t.root, "/"+first)
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	defer f.Close()
	sum, err := t.hashFile(f, src, k.size)
	if err != nil {
		return err
	}
	l.sums[contentKey{k, sum}] = first
	l.firsts[k] = ""
	return nil
}

func fileMode(fi fs.FileInfo) int64 {
	if fi.Mode().Perm()&0o111 != 0 {
		return modeExec
	}
	return modeFile
}
