package builder

import (
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"strata/internal/buildreq"
	"strata/internal/image"
)

// targets are the platforms req is built for, sorted.
func (b *Builder) targets(req buildreq.Request) ([]Platform, error) {
	if len(req.Platforms) == 0 {
		return b.opts.Platforms, nil
	}
	var out []Platform
	seen := map[string]bool{}
	for _, name := range req.Platforms {
		p, ok := b.platform(name)
		if !ok {
			pp, err := image.ParsePlatform(name)
			if err == nil {
				if pp.Architecture == "arm64" && pp.Variant == "" {
					pp.Variant = "v8"
				}
				p, ok = b.platform(pp.String())
			}
			if !ok {
				return nil, b.notConfigured(name)
			}
		}
		if !seen[p.Platform.String()] {
			seen[p.Platform.String()] = true
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return platformLess(out[i].Platform, out[j].Platform) })
	return out, nil
}

func (b *Builder) platform(p string) (Platform, bool) {
	for _, c := range b.opts.Platforms {
		if c.Platform.String() == p {
			return c, true
		}
	}
	return Platform{}, false
}

func (b *Builder) notConfigured(p string) error {
	var names []string
	for _, c := range b.opts.Platforms {
		names = append(names, c.Platform.String())
	}
	return &NotConfiguredError{Platform: p, Configured: names}
}

func platformLess(a, b v1.Platform) bool {
	ps := []v1.Platform{b, a}
	image.SortPlatforms(ps)
	return ps[0].String() == a.String() && a.String() != b.String()
}
