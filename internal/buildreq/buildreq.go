// Package buildreq holds the plain description of an image to build: a
// Request (packages or store paths, config, users, explicit layer groups,
// files, platforms, annotations) and its LayerGroups.
//
// It sits below the builder on purpose. Every front door makes a Request:
// the on-demand registry from an image name (internal/ondemand), strata
// build and publish from a description (internal/buildspec); the builder
// only consumes one. Keeping the type in a package of plain data, which
// imports no orchestration, lets a parser of outside input produce a
// Request without importing the pipeline that runs it.
package buildreq

import (
	"strata/internal/image"
	"strata/internal/layer"
)

// FormatNixSnapshotter is the Request.Format of images that
// nix-snapshotter (github.com/pdtpartners/nix-snapshotter, v0.4.0) runs by
// bind-mounting store paths from the node's Nix store instead of unpacking
// them from layers. Such an image has strata's customisation layer and
// then the layer nix2container makes: a directory (or an empty file) for
// each store path of the closure, as a mount point, and on its descriptor
// an annotation naming a closure-info store path (see
// nixcache.ClosureInfo). The store paths are in no layer: the node
// substitutes them from a Nix binary cache, so the builder needs a
// recorder of closure-info paths (strata serve --cache-key-file).
const FormatNixSnapshotter = "nix-snapshotter"

// Request is everything an image can be built from: the general form
// behind both an on-demand name (spec.Spec) and a build description.
type Request struct {
	// Name names the image in logs and is its default
	// org.opencontainers.image.title annotation; default "image".
	Name string `json:"name"`
	// Ref selects the package-set revision (a tag, git ref or commit);
	// default "" (the source's default, as "latest").
	Ref string `json:"ref,omitempty"`
	// Shell prepends the package set's shell packages (the `shell`
	// meta-package) to Packages; default false.
	Shell bool `json:"shell,omitempty"`
	// Packages are the image's packages: attribute paths of the package set
	// ("hello", "python3Packages.numpy") or store paths ("/nix/store/...",
	// a path inside one counts as its store path). Their closures are in
	// the image and their top-level directories are merged into / by the
	// customisation layer, in this order. Default none.
	Packages []string `json:"packages,omitempty"`
	// Layers are explicit layer groups, the image's first layers, in
	// order: each is one layer holding the closure of its packages minus
	// the paths of earlier groups. Their packages are in the image but are
	// merged into / only when Packages lists them too. The rest of the
	// closure is grouped by the strategy under the remaining budget.
	// Default none.
	Layers []LayerGroup `json:"layers,omitempty"`
	// Include are packages or store paths (as Packages) whose closures are
	// in the image without being merged into /; default none.
	Include []string `json:"include,omitempty"`
	// Inputs are store paths to realise before Packages and Layers name
	// store paths: .drv files (built with nix-store --realise) and sources
	// that must already be valid; default none. A Nix description's
	// evaluation fills them.
	Inputs []string `json:"inputs,omitempty"`
	// Config is the runtime configuration. Its Env entries come after the
	// customisation layer's (PATH, SSL_CERT_FILE); an entry for a variable
	// the layer sets replaces it in place. Default empty.
	Config image.Config `json:"config"`
	// Users, Groups and Files go into the customisation layer (see
	// layer.Custom); root and nobody are always there. Default none.
	Users  []layer.User  `json:"users,omitempty"`
	Groups []layer.Group `json:"groups,omitempty"`
	Files  []layer.File  `json:"files,omitempty"`
	// NixDB puts an initialised Nix database that lists exactly the
	// image's closure at /nix/var/nix/db; default false.
	NixDB bool `json:"nixDB,omitempty"`
	// Platforms are "os/arch[/variant]" names of configured platforms;
	// default every configured platform. One platform gives an image
	// manifest, several an index.
	Platforms []string `json:"platforms,omitempty"`
	// Annotations go on every manifest and on the index, over the
	// defaults (title, version of a single package, revision on the
	// index); default none.
	Annotations map[string]string `json:"annotations,omitempty"`
	// MaxLayers is the layer budget, explicit groups and the customisation
	// layer included; default the builder's (builder.Options.MaxLayers).
	MaxLayers int `json:"maxLayers,omitempty"`
	// Format is the image's shape: "" (layers of store paths) or
	// FormatNixSnapshotter; default "".
	Format string `json:"format,omitempty"`
}

// LayerGroup is one explicit layer.
type LayerGroup struct {
	// Name describes the layer in the image history; default the packages
	// joined by "+".
	Name string `json:"name,omitempty"`
	// Packages are attribute paths or store paths, as Request.Packages;
	// at least one.
	Packages []string `json:"packages"`
}
