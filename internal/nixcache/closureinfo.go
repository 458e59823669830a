package nixcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/nixhash"
	"github.com/nix-community/go-nix/pkg/storepath"
)

// ClosureInfoName is the name part of a closure-info store path.
const ClosureInfoName = "closure-info"

// ClosureInfo is the store path that a nix-snapshotter image's layer names
// in its containerd.io/snapshot/nix-closure annotation: a directory
// holding one file, store-paths, that lists the image's closure one path a
// line. It refers to every path it lists, so a node that realises it
// substitutes the whole closure, and nix-snapshotter bind-mounts the paths
// it lists.
//
// Like the closureInfo derivation nix2container uses, but made by strata
// without a Nix build: its store path is content-addressed, computed as Nix
// computes a recursive SHA-256 ("source") path with references, so the
// same closure always gives the same path and Nix can check it.
type ClosureInfo struct {
	// Path is /nix/store/<hash>-closure-info.
	Path string
	// References are the listed store paths, sorted.
	References []string
	nar        []byte
	narHash    []byte
}

// NewClosureInfo returns the closure-info path listing paths (absolute
// store paths; order and duplicates do not matter).
func NewClosureInfo(paths []string) (*ClosureInfo, error) {
	refs := append([]string(nil), paths...)
	sort.Strings(refs)
	out := refs[:0]
	for i, p := range refs {
		if i > 0 && p == refs[i-1] {
			continue
		}
		if _, err := StorePathHash(p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	refs = out
	content := []byte(strings.Join(refs, "\n"))
	if len(refs) > 0 {
		content = append(content, '\n')
	}
	var buf bytes.Buffer
	nw, err := nar.NewWriter(&buf)
	if err != nil {
		return nil, err
	}
	if err := nw.WriteHeader(&nar.Header{Path: "/", Type: nar.TypeDirectory}); err != nil {
		return nil, err
	}
	if err := nw.WriteHeader(&nar.Header{Path: "/store-paths", Type: nar.TypeRegular, Size: int64(len(content))}); err != nil {
		return nil, err
	}
	if _, err := nw.Write(content); err != nil {
		return nil, err
	}
	if err := nw.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(buf.Bytes())
	// Nix's makeFixedOutputPath for recursive SHA-256 with references:
	// makeStorePath("source:<ref>:...:<ref>", "sha256:<hex>", name).
	typ := "source"
	for _, r := range refs {
		typ += ":" + r
	}
	fp := typ + ":sha256:" + hex.EncodeToString(sum[:]) + ":" + StoreDir + ":" + ClosureInfoName
	fpSum := sha256.Sum256([]byte(fp))
	p := StoreDir + "/" + nixbase32.EncodeToString(nixhash.CompressHash(fpSum[:], 20)) + "-" + ClosureInfoName
	if _, err := storepath.FromAbsolutePath(p); err != nil {
		return nil, fmt.Errorf("nixcache: closure-info path %s: %w", p, err)
	}
	return &ClosureInfo{Path: p, References: refs, nar: buf.Bytes(), narHash: sum[:]}, nil
}

// CA is the narinfo's CA field: fixed:r:sha256:<nix base-32 NAR hash>.
func (c *ClosureInfo) CA() string {
	return "fixed:r:sha256:" + nixbase32.EncodeToString(c.narHash)
}

// RecordClosureInfo makes a closure-info path servable, like Record does
// for a store path on disk. Its listed paths are recorded by Record.
func (r *Recorder) RecordClosureInfo(ctx context.Context, c *ClosureInfo) error {
	h, err := StorePathHash(c.Path)
	if err != nil {
		return err
	}
	if done, err := r.recorded(ctx, h); done || err != nil {
		return err
	}
	return r.record(ctx, entry{
		path: c.Path, references: c.References, ca: c.CA(),
		dump: func(w io.Writer) error { _, err := w.Write(c.nar); return err },
	})
}
