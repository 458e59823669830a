package layer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// EnvFile is where a store path declares the environment it needs in an
// image (see WriteCustomisation).
const EnvFile = "nix-support/strata-env"

// envNameOK is a portable environment variable name.
func envNameOK(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// packageEnv adds to b.res.Env what the closure's store paths declare in
// their EnvFile: the requested packages first, in request order, then the
// rest of the closure in byte order; the first declaration of a name wins,
// and names the layer sets itself (PATH, SSL_CERT_FILE) stay as they are.
// The declared variables follow the layer's own, sorted by name.
func (b *customBuilder) packageEnv(pkgs []string) error {
	set := map[string]bool{}
	for _, kv := range b.res.Env {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	var added []string
	seen := map[string]bool{}
	for _, p := range append(slices.Clone(pkgs), b.sorted...) {
		if seen[p] {
			continue
		}
		seen[p] = true
		if err := b.ctx.Err(); err != nil {
			return err
		}
		f := p + "/" + EnvFile
		res, err := b.r.resolve(f)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
				continue
			}
			return fmt.Errorf("layer: %s: %w", f, err)
		}
		if res.isDir || !b.closure[storePathOf(res.final)] {
			return fmt.Errorf("layer: %s: not a file of the closure", f)
		}
		data, err := os.ReadFile(diskPath(b.r.root, res.final))
		if err != nil {
			return fmt.Errorf("layer: %w", err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok || !envNameOK(k) {
				return fmt.Errorf("layer: %s line %d: want NAME=VALUE, got %q", f, i+1, line)
			}
			if k == "PATH" {
				return fmt.Errorf("layer: %s line %d: PATH is the image's (%s); declare other variables", f, i+1, DefaultPath)
			}
			if set[k] {
				continue
			}
			set[k] = true
			added = append(added, k+"="+v)
		}
	}
	slices.Sort(added)
	b.res.Env = append(b.res.Env, added...)
	return nil
}
