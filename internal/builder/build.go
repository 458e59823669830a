package builder

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"strata/internal/buildreq"
	"strata/internal/image"
	"strata/internal/nix"
)

// resolved maps each requested package name to its canonical attribute.
type resolved struct {
	attrs  []string               // unique canonical attributes to build
	byName map[string]string      // requested name → attribute
	meta   map[string]nix.Package // attribute → its metadata, for the SBOM
}

// resolve evaluates the attribute names req mentions (once, for the first
// target) and returns them with the names merged into / (the shell's
// packages first when req asks for a shell).
func (b *Builder) resolve(ctx context.Context, req buildreq.Request, t Platform) (*resolved, []string, error) {
	names := append([]string(nil), req.Packages...)
	if req.Shell {
		sh, err := b.opts.Nix.ShellPackages(ctx, req.Ref)
		if err != nil {
			return nil, nil, err
		}
		names = append(sh, names...)
	}
	pkgNames := unique(names)
	all := append([]string(nil), pkgNames...)
	all = append(all, groupNames(req.Layers)...)
	all = append(all, req.Include...)
	all = unique(all)
	var attrNames []string
	for _, n := range all {
		if !isStorePath(n) {
			attrNames = append(attrNames, n)
		}
	}
	r := &resolved{byName: map[string]string{}, meta: map[string]nix.Package{}}
	if len(attrNames) == 0 {
		return r, pkgNames, nil
	}
	b.progress(Event{Kind: "resolve", Total: len(attrNames)})
	pkgs, err := b.opts.Nix.Resolve(ctx, req.Ref, t.Target, attrNames)
	if err != nil {
		return nil, nil, err
	}
	for i, p := range pkgs {
		r.attrs = append(r.attrs, p.Attr)
		r.meta[p.Attr] = p
		if len(pkgs) == len(attrNames) {
			r.byName[attrNames[i]] = p.Attr
		}
	}
	if len(pkgs) != len(attrNames) {
		// Several names resolved to one attribute: match them up.
		for _, n := range attrNames {
			for _, p := range pkgs {
				if p.Attr == n || strings.EqualFold(p.Attr, n) {
					r.byName[n] = p.Attr
					break
				}
			}
			if r.byName[n] == "" {
				return nil, nil, fmt.Errorf("builder: cannot tell which attribute %q resolved to; name each package once, by its exact attribute", n)
			}
		}
	}
	r.attrs = unique(r.attrs)
	return r, pkgNames, nil
}

// build builds req for each of its platforms in parallel and, for
// several, stores an index over them.
func (b *Builder) build(ctx context.Context, req buildreq.Request, rev string) (Result, error) {
	targets, err := b.targets(req)
	if err != nil {
		return Result{}, err
	}
	res, names, err := b.resolve(ctx, req, targets[0])
	if err != nil {
		return Result{}, err
	}
	st := &stats{}
	// One image per platform, in a slice indexed by platform so that the
	// index order never depends on timing.
	imgs := make([]*built, len(targets))
	g, gctx := errgroup.WithContext(ctx)
	for i, t := range targets {
		g.Go(func() error {
			im, err := b.buildPlatform(gctx, req, t, res, names, st)
			if err != nil {
				return &PlatformError{Platform: t.Platform.String(), Err: err}
			}
			imgs[i] = im
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Result{}, err
	}
	packed := int(st.packed.Load())
	if len(imgs) == 1 {
		return Result{Name: req.Name, OCI: imgs[0].oci, Docker: imgs[0].docker, LayersPacked: packed}, nil
	}
	ann := map[string]string{
		"org.opencontainers.image.title":    req.Name,
		"org.opencontainers.image.revision": rev,
	}
	for k, v := range req.Annotations {
		ann[k] = v
	}
	var oe, de []image.Entry
	for _, im := range imgs {
		oe = append(oe, image.Entry{Image: im.ociImg, Platform: im.platform})
		de = append(de, image.Entry{Image: im.dockerImg, Platform: im.platform})
	}
	oci, err := b.putManifest(ctx, image.Index(oe, ann, false))
	if err != nil {
		return Result{}, err
	}
	docker, err := b.putManifest(ctx, image.Index(de, nil, true))
	if err != nil {
		return Result{}, err
	}
	return Result{Name: req.Name, OCI: oci, Docker: docker, LayersPacked: packed}, nil
}

// built is one platform's stored image.
type built struct {
	platform          v1.Platform
	ociImg, dockerImg v1.Image
	oci, docker       Ref
}
