package layer

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fsEntry is one entry of a fake store tree, relative to the root.
type fsEntry struct {
	path    string
	mode    os.FileMode // permission bits of files and directories
	content string
	dir     bool
	symlink string // symlink target
	link    string // hard link to this (root-relative) path
}

// makeTree creates entries under root in the given order, then sets every
// mtime to mt. Parent directories must come before their entries.
func makeTree(t testing.TB, root string, entries []fsEntry, mt time.Time) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(root, e.path)
		var err error
		switch {
		case e.dir:
			err = os.MkdirAll(p, 0o755)
		case e.symlink != "":
			err = os.Symlink(e.symlink, p)
		case e.link != "":
			err = os.Link(filepath.Join(root, e.link), p)
		default:
			err = os.WriteFile(p, []byte(e.content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Modes last, so that read-only directories can be filled first.
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		p := filepath.Join(root, e.path)
		if e.symlink == "" && e.link == "" && e.mode != 0 {
			if err := os.Chmod(p, e.mode); err != nil {
				t.Fatal(err)
			}
		}
		if e.symlink == "" {
			if err := os.Chtimes(p, mt, mt); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() { makeWritable(root) })
}

// makeWritable lets t.TempDir remove a tree with read-only directories.
func makeWritable(root string) {
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tarEntry is a tar header plus its content, for assertions.
type tarEntry struct {
	hdr     *tar.Header
	content []byte
}

func readTar(t testing.TB, b []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h, c})
	}
}

// semiCompressible fills p with data that gzip -6 shrinks to roughly 40%,
// a rough stand-in for a store's mix of text, binaries and already
// compressed files: runs of Zipf-distributed words (text), of little-endian
// records of small numbers (binary tables), of zeros (padding) and of
// random bytes (compressed data).
func semiCompressible(r *rand.Rand, p []byte) {
	vocab := benchVocab()
	zipf := rand.NewZipf(r, 1.2, 2, uint64(len(vocab)-1))
	i := 0
	for i < len(p) {
		n := min(256+r.IntN(8192), len(p)-i)
		q := p[i : i+n]
		switch k := r.IntN(20); {
		case k < 3: // random
			for j := 0; j < n; j += 8 {
				v := r.Uint64()
				for b := 0; b < 8 && j+b < n; b++ {
					q[j+b] = byte(v >> (8 * b))
				}
			}
		case k < 5: // zeros
			clear(q)
		case k < 10: // records: a pointer-like base plus small offsets
			base := r.Uint32()
			for j := 0; j < n; j++ {
				switch j % 8 {
				case 0:
					base += uint32(r.IntN(64))
					q[j] = byte(base)
				case 1, 2, 3:
					q[j] = byte(base >> (8 * (j % 8)))
				default:
					q[j] = 0
					if r.IntN(8) == 0 {
						q[j] = byte(r.IntN(4))
					}
				}
			}
		default: // text
			j := 0
			for j < n {
				j += copy(q[j:], vocab[zipf.Uint64()])
				if j < n {
					q[j] = " \n"[min(r.IntN(12), 1)]
					j++
				}
			}
		}
		i += n
	}
}

var benchVocab = sync.OnceValue(func() []string {
	r := rand.New(rand.NewPCG(42, 42))
	v := make([]string, 4096)
	for i := range v {
		b := make([]byte, 2+r.IntN(9))
		for j := range b {
			b[j] = "etaoinshrdlucmfwypvbgkjqxz_./-0123456789"[r.IntN(40)]
		}
		v[i] = string(b)
	}
	return v
})

// genStore generates a fake store of about total bytes under root/nix/store
// in store paths of 1-300 files (sizes from 100 B to 8 MiB, most small) and
// returns the store paths.
func genStore(t testing.TB, root string, total int64, seed uint64) []string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	var paths []string
	buf := make([]byte, 8<<20)
	var written int64
	for i := 0; written < total; i++ {
		sp := "/nix/store/" + hex.EncodeToString([]byte{byte(i >> 8), byte(i), 0xaa, 0x55})[:8] + "-pkg" + string(rune('a'+i%26))
		paths = append(paths, sp)
		nfiles := 1 + r.IntN(300)
		for f := 0; f < nfiles && written < total; f++ {
			dir := filepath.Join(root, sp, []string{"bin", "lib", "share/doc", "share/man/man1", "lib/python3/site-packages"}[r.IntN(5)])
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			var size int
			switch k := r.IntN(100); {
			case k < 70:
				size = 100 + r.IntN(16<<10)
			case k < 95:
				size = 16<<10 + r.IntN(512<<10)
			default:
				size = 512<<10 + r.IntN(8<<20-512<<10)
			}
			size = int(min(int64(size), total-written))
			semiCompressible(r, buf[:size])
			if err := os.WriteFile(filepath.Join(dir, "f"+hex.EncodeToString([]byte{byte(f >> 8), byte(f)})), buf[:size], 0o644); err != nil {
				t.Fatal(err)
			}
			written += int64(size)
		}
	}
	return paths
}
