package nix

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"strata/internal/errcode"
)

// Revision identifies the package set at ref ("" or "latest" is the
// default): for a local path the sha256 of the tree's content
// ("sha256:<hex>"), for a git repository the commit ref resolves to, for a
// channel the channel (or the nixpkgs commit given as ref).
func (d *Driver) Revision(ctx context.Context, ref string) (string, error) {
	switch {
	case d.cfg.PkgsPath != "":
		return d.treeRevision(d.cfg.PkgsPath)
	case d.cfg.PkgsRepo != "":
		r, err := d.gitResolve(ctx, ref)
		if err != nil {
			return "", err
		}
		return r.rev, nil
	case d.cfg.Flake != "":
		s, err := d.flakeSource(ctx)
		if err != nil {
			return "", err
		}
		return s.rev, nil
	default:
		s, err := d.source(ctx, ref)
		if err != nil {
			return "", err
		}
		return s.rev, nil
	}
}

// treeRev is a cached tree hash, valid while stamp (a hash of every
// entry's name, mode, size and mtime) is unchanged.
type treeRev struct {
	stamp  [32]byte
	digest string
}

// treeRevision hashes the names, modes and contents (symlink targets) of
// every entry under root, in lexical order, skipping .git directories.
func (d *Driver) treeRevision(root string) (string, error) {
	type entry struct {
		rel  string
		path string
		mode fs.FileMode
	}
	var entries []entry
	stamp := sha256.New()
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() && de.Name() == ".git" && p != root {
			return filepath.SkipDir
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		var b [24]byte
		binary.LittleEndian.PutUint64(b[0:], uint64(fi.Mode()))
		binary.LittleEndian.PutUint64(b[8:], uint64(fi.Size()))
		binary.LittleEndian.PutUint64(b[16:], uint64(fi.ModTime().UnixNano()))
		stamp.Write([]byte(rel))
		stamp.Write([]byte{0})
		stamp.Write(b[:])
		entries = append(entries, entry{rel: rel, path: p, mode: fi.Mode()})
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("nix: hash package set %s: %w", root, err)
	}
	var st [32]byte
	copy(st[:], stamp.Sum(nil))
	d.revMu.Lock()
	c, ok := d.revCache[root]
	d.revMu.Unlock()
	if ok && c.stamp == st {
		return c.digest, nil
	}
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%s\x00", e.rel)
		switch {
		case e.mode.IsDir():
			io.WriteString(h, "d\x00")
		case e.mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(e.path)
			if err != nil {
				return "", fmt.Errorf("nix: hash package set: %w", err)
			}
			fmt.Fprintf(h, "l\x00%s\x00", target)
		case e.mode.IsRegular():
			kind := "f"
			if e.mode&0o111 != 0 {
				kind = "x"
			}
			f, err := os.Open(e.path)
			if err != nil {
				return "", fmt.Errorf("nix: hash package set: %w", err)
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return "", fmt.Errorf("nix: hash package set: %w", err)
			}
			fmt.Fprintf(h, "%s\x00%x\x00", kind, fh.Sum(nil))
		default:
			fmt.Fprintf(h, "o%o\x00", e.mode.Type())
		}
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	d.revMu.Lock()
	d.revCache[root] = treeRev{stamp: st, digest: digest}
	d.revMu.Unlock()
	return digest, nil
}

// UnknownRefError is an image tag that names no branch, tag or commit of
// the package repository.
type UnknownRefError struct {
	Ref string
}

func (e *UnknownRefError) Error() string {
	return fmt.Sprintf("unknown tag %q: it is not a branch, tag or commit of the package repository; use latest, a branch, a tag or a full commit hash", e.Ref)
}

// ErrorCode is the distribution-spec code of the error.
func (e *UnknownRefError) ErrorCode() string { return string(errcode.ManifestUnknown) }

// HTTPStatus is the status the registry answers with.
func (e *UnknownRefError) HTTPStatus() int { return 404 }

// refRE is what a git ref given as an image tag may look like.
var refRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}$`)

var shortHexRE = regexp.MustCompile(`^[0-9a-f]{4,39}$`)

type gitRef struct {
	rev string // full commit hash
	ref string // full ref name for fetchGit, "" when only the commit is known
}

// gitURL is the repository URL, absolute when it is a local path.
func (d *Driver) gitURL() string {
	u := d.cfg.PkgsRepo
	if d.gitLocal() {
		if abs, err := filepath.Abs(u); err == nil {
			return abs
		}
	}
	return u
}

// gitLocal reports whether the repository is a local directory.
func (d *Driver) gitLocal() bool {
	u := d.cfg.PkgsRepo
	if strings.Contains(u, "://") {
		return false
	}
	fi, err := os.Stat(u)
	return err == nil && fi.IsDir()
}

// gitResolve resolves ref to a commit of the package repository: ""/latest
// is the default branch, then tags (peeled), branches, full commits, and
// abbreviated commits of a local repository.
func (d *Driver) gitResolve(ctx context.Context, ref string) (gitRef, error) {
	ref = strings.TrimSpace(ref)
	if hexRE.MatchString(ref) {
		return gitRef{rev: ref}, nil
	}
	if !isLatest(ref) && (!refRE.MatchString(ref) || strings.Contains(ref, "..") || strings.HasSuffix(ref, ".lock") || strings.Contains(ref, "//")) {
		return gitRef{}, &UnknownRefError{Ref: ref}
	}
	url := d.gitURL()
	if isLatest(ref) {
		out, err := d.git(ctx, "ls-remote", "--symref", "--", url, "HEAD")
		if err != nil {
			return gitRef{}, err
		}
		var r gitRef
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 3 && f[0] == "ref:" && f[2] == "HEAD":
				r.ref = f[1]
			case len(f) == 2 && f[1] == "HEAD" && hexRE.MatchString(f[0]):
				r.rev = f[0]
			}
		}
		if r.rev == "" {
			return gitRef{}, fmt.Errorf("nix: package repository %s has no default branch (HEAD); push a branch or set the tag", redact(url))
		}
		return r, nil
	}
	out, err := d.git(ctx, "ls-remote", "--", url, "refs/tags/"+ref, "refs/tags/"+ref+"^{}", "refs/heads/"+ref)
	if err != nil {
		return gitRef{}, err
	}
	found := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && hexRE.MatchString(f[0]) {
			found[f[1]] = f[0]
		}
	}
	if rev, ok := found["refs/tags/"+ref+"^{}"]; ok {
		return gitRef{rev: rev, ref: "refs/tags/" + ref}, nil
	}
	if rev, ok := found["refs/tags/"+ref]; ok {
		return gitRef{rev: rev, ref: "refs/tags/" + ref}, nil
	}
	if rev, ok := found["refs/heads/"+ref]; ok {
		return gitRef{rev: rev, ref: "refs/heads/" + ref}, nil
	}
	if shortHexRE.MatchString(ref) && d.gitLocal() {
		out, err := d.git(ctx, "-C", url, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
		if err == nil {
			if rev := strings.TrimSpace(string(out)); hexRE.MatchString(rev) {
				return gitRef{rev: rev}, nil
			}
		}
	}
	return gitRef{}, &UnknownRefError{Ref: ref}
}

// git runs git with the driver's environment.
func (d *Driver) git(ctx context.Context, args ...string) ([]byte, error) {
	out, _, err := d.run(ctx, "git", args, "")
	if err != nil {
		var pe *procError
		if errors.As(err, &pe) && pe.err == ctx.Err() {
			return nil, fmt.Errorf("nix: git %s: %w", args[0], ctx.Err())
		}
		return nil, fmt.Errorf("nix: git %s of the package repository failed: %w", args[0], err)
	}
	return out, nil
}
