// Package image assembles OCI images and indexes from layers and a config,
// with go-containerregistry's types: an OCI manifest by default, and the
// same image with Docker schema 2 media types for clients that accept
// nothing else. Assembly is pure: the same layers and options always give
// the same bytes.
package image

import (
	"fmt"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Config is the runtime configuration of an image.
type Config struct {
	Env          []string          // PATH first
	Entrypoint   []string          // default: none
	Cmd          []string          // default: none
	WorkingDir   string            // default: "" (the runtime's /)
	ExposedPorts []string          // "80/tcp", "53/udp"; a bare number means tcp
	User         string            // default: "" (root)
	Labels       map[string]string // default: none
	StopSignal   string            // default: "" (SIGTERM)
}

// Options control how an image is assembled.
type Options struct {
	Platform v1.Platform
	Config   Config
	// Annotations go on the manifest (org.opencontainers.image.*).
	Annotations map[string]string
	// Created is the config's creation time; default time.Unix(1, 0), so
	// images are reproducible.
	Created time.Time
	// Docker selects Docker schema 2 media types instead of OCI ones.
	Docker bool
	// History comments, one per layer (optional).
	Comments []string
	// LayerAnnotations go on the layer descriptors of the OCI manifest,
	// one map per layer (optional; a Docker manifest has none).
	LayerAnnotations []map[string]string
}

// New returns an image made of layers (base first) with the given options.
func New(layers []v1.Layer, opts Options) (v1.Image, error) {
	created := opts.Created
	if created.IsZero() {
		created = time.Unix(1, 0)
	}
	created = created.UTC()
	layerMT, manifestMT, configMT := types.OCILayer, types.OCIManifestSchema1, types.OCIConfigJSON
	if opts.Docker {
		layerMT, manifestMT, configMT = types.DockerLayer, types.DockerManifestSchema2, types.DockerConfigJSON
	}
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		comment := ""
		if i < len(opts.Comments) {
			comment = opts.Comments[i]
		}
		adds[i] = mutate.Addendum{
			Layer:     typedLayer{l, layerMT},
			MediaType: layerMT,
			History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: "strata", Comment: comment},
		}
		if i < len(opts.LayerAnnotations) && !opts.Docker {
			adds[i].Annotations = opts.LayerAnnotations[i]
		}
	}
	base := mutate.MediaType(empty.Image, manifestMT)
	base = mutate.ConfigMediaType(base, configMT)
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, fmt.Errorf("image: append layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	cf.OS = opts.Platform.OS
	cf.Architecture = opts.Platform.Architecture
	cf.Variant = opts.Platform.Variant
	c := opts.Config
	cf.Config = v1.Config{
		Env:        c.Env,
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		WorkingDir: c.WorkingDir,
		User:       c.User,
		Labels:     c.Labels,
		StopSignal: c.StopSignal,
	}
	if len(c.ExposedPorts) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range c.ExposedPorts {
			cf.Config.ExposedPorts[NormalisePort(p)] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image: set config: %w", err)
	}
	if len(opts.Annotations) > 0 && !opts.Docker {
		img = mutate.Annotations(img, opts.Annotations).(v1.Image)
	}
	return img, nil
}

// NormalisePort turns "80" into "80/tcp" and keeps "53/udp".
func NormalisePort(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			return p
		}
	}
	return p + "/tcp"
}

// Entry is one image of an index with its platform.
type Entry struct {
	Image    v1.Image
	Platform v1.Platform
}

// Index returns an index over entries, in the order given (callers sort by
// platform so the order never depends on timing). With docker set it is a
// Docker manifest list, else an OCI image index carrying annotations.
func Index(entries []Entry, annotations map[string]string, docker bool) v1.ImageIndex {
	mt := types.OCIImageIndex
	if docker {
		mt = types.DockerManifestList
	}
	idx := mutate.IndexMediaType(empty.Index, mt)
	adds := make([]mutate.IndexAddendum, len(entries))
	for i, e := range entries {
		p := e.Platform
		adds[i] = mutate.IndexAddendum{Add: e.Image, Descriptor: v1.Descriptor{Platform: &p}}
	}
	idx = mutate.AppendManifests(idx, adds...)
	if len(annotations) > 0 && !docker {
		idx = mutate.Annotations(idx, annotations).(v1.ImageIndex)
	}
	return idx
}

// SortPlatforms orders platforms by OS, architecture and variant.
func SortPlatforms(ps []v1.Platform) {
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.OS != b.OS {
			return a.OS < b.OS
		}
		if a.Architecture != b.Architecture {
			return a.Architecture < b.Architecture
		}
		return a.Variant < b.Variant
	})
}

// ParsePlatform parses "os/arch[/variant]".
func ParsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("image: platform %q: want os/arch[/variant], e.g. linux/amd64", s)
	}
	return *p, nil
}

// typedLayer presents a layer under another media type; the bytes are the
// same, only the manifest's description of them differs (OCI or Docker).
type typedLayer struct {
	v1.Layer
	mt types.MediaType
}

func (l typedLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
