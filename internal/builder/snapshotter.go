package builder

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"strata/internal/buildreq"
	"strata/internal/closure"
	"strata/internal/nixcache"
)

// A nix-snapshotter image (Request.Format buildreq.FormatNixSnapshotter)
// holds no store path in a layer: after the customisation layer comes
// nix2container's layer of mount points, whose descriptor annotation
// names the closure-info store path the node substitutes the closure by.

// AnnotationNixClosure is nix-snapshotter's layer annotation naming the
// closure-info store path (nix2container.NixClosureAnnotation).
const AnnotationNixClosure = "containerd.io/snapshot/nix-closure"

// ClosureInfoRecorder is a Recorder that can also record the closure-info
// path of a nix-snapshotter image; *nixcache.Recorder is one.
type ClosureInfoRecorder interface {
	Recorder
	RecordClosureInfo(ctx context.Context, c *nixcache.ClosureInfo) error
}

// snapshotterClosure checks req can be built as a nix-snapshotter image
// and returns the closure-info path of graph.
func (b *Builder) snapshotterClosure(req buildreq.Request, graph *closure.Graph) (*nixcache.ClosureInfo, error) {
	if len(req.Layers) > 0 {
		return nil, errors.New("builder: a nix-snapshotter image holds no store path in a layer, so it takes no layer groups; drop them or build layers")
	}
	if _, ok := b.opts.Recorder.(ClosureInfoRecorder); !ok {
		return nil, errors.New("builder: a nix-snapshotter image needs the Nix binary cache its nodes substitute from: start strata serve with --cache-key-file (strata build: --cache-key-file)")
	}
	if len(graph.Paths) == 0 {
		return nil, errors.New("builder: a nix-snapshotter image needs at least one store path")
	}
	return nixcache.NewClosureInfo(graph.Sorted())
}

// snapshotterLayer records the closure-info path and returns the layer of
// mount points, cached like any layer.
func (b *Builder) snapshotterLayer(ctx context.Context, ci *nixcache.ClosureInfo, st *stats) (v1.Layer, error) {
	if err := b.opts.Recorder.(ClosureInfoRecorder).RecordClosureInfo(ctx, ci); err != nil {
		return nil, err
	}
	root := b.opts.StoreRoot
	if root == "" {
		root = "/"
	}
	key := b.layerKey(append([]string{"nix-snapshotter", ci.Path}, ci.References...)...)
	return b.cachedLayer(ctx, key, func(w io.Writer) error {
		return writeMountPoints(w, root, ci.References, b.opts.MTime)
	}, st)
}

// writeMountPoints writes nix2container's closure layer: /nix/store, and
// under it a directory (mode 0755) for each store path that is a
// directory, an empty file (mode 0555) for each that is a file, owned by
// root, in path order.
func writeMountPoints(w io.Writer, root string, paths []string, mtime time.Time) error {
	bw := bufio.NewWriter(w)
	tw := tar.NewWriter(bw)
	hdr := func(h *tar.Header) error {
		h.ModTime = mtime
		h.Format = tar.FormatPAX
		return tw.WriteHeader(h)
	}
	for _, d := range []string{"nix/", "nix/store/"} {
		if err := hdr(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}); err != nil {
			return err
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			return fmt.Errorf("builder: nix-snapshotter mount point: %w", err)
		}
		name := strings.TrimPrefix(p, "/")
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o555}
		if fi.IsDir() {
			h = &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755}
		}
		if err := hdr(h); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}
