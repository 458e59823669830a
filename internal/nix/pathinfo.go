package nix

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"strata/internal/closure"
)

// defaultStoreDir is used when a path-info entry names paths by their base
// name only and says nothing of the store directory.
const defaultStoreDir = "/nix/store"

// pathInfoEntry is one element of `nix path-info --json` in any of its
// formats: an array element (Nix < 2.19, with "path"), an object value
// (Nix >= 2.19, keyed by path; from the v2 format on, keyed by base name
// with base-name references and possibly a structured hash).
type pathInfoEntry struct {
	Path       string          `json:"path"`
	NarHash    json.RawMessage `json:"narHash"`
	NarSize    *int64          `json:"narSize"`
	References []string        `json:"references"`
	StoreDir   string          `json:"storeDir"`
	Valid      *bool           `json:"valid"`
}

// parsePathInfo parses the output of `nix path-info --json` (the array of
// Nix 2.8-2.18 or the object of 2.19 and later) into closure nodes, sorted
// by path. Store paths are made absolute, NAR hashes are normalised to
// "sha256:<nix base32>" where the hash is recognised.
func parsePathInfo(data []byte) ([]*closure.Path, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("path-info: empty output")
	}
	type keyed struct {
		key string
		e   *pathInfoEntry
	}
	var entries []keyed
	switch data[0] {
	case '[':
		var arr []*pathInfoEntry
		if err := json.Unmarshal(data, &arr); err != nil {
			return nil, fmt.Errorf("path-info: %w", err)
		}
		for _, e := range arr {
			if e == nil {
				return nil, errors.New("path-info: null entry")
			}
			entries = append(entries, keyed{e.Path, e})
		}
	case '{':
		var obj map[string]*pathInfoEntry
		if err := json.Unmarshal(data, &obj); err != nil {
			return nil, fmt.Errorf("path-info: %w", err)
		}
		for k, e := range obj {
			if e == nil {
				return nil, fmt.Errorf("path-info: %s is not a valid store path (not built?)", k)
			}
			if e.Path == "" {
				e.Path = k
			}
			entries = append(entries, keyed{k, e})
		}
	default:
		return nil, errors.New("path-info: output is neither a JSON array nor an object")
	}
	nodes := make([]*closure.Path, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	for _, ke := range entries {
		e := ke.e
		if e.Valid != nil && !*e.Valid {
			return nil, fmt.Errorf("path-info: %s is not a valid store path (not built?)", e.Path)
		}
		dir := e.StoreDir
		if dir != "" && (!strings.HasPrefix(dir, "/") || path.Clean(dir) != dir) {
			return nil, fmt.Errorf("path-info: store directory %q is not an absolute path", dir)
		}
		if dir == "" {
			dir = defaultStoreDir
			if strings.HasPrefix(e.Path, "/") {
				dir = path.Dir(e.Path)
			}
		}
		p, err := absStorePath(dir, e.Path)
		if err != nil {
			return nil, err
		}
		if seen[p] {
			return nil, fmt.Errorf("path-info: %s listed twice", p)
		}
		seen[p] = true
		if e.NarSize == nil || *e.NarSize < 0 {
			return nil, fmt.Errorf("path-info: %s has no valid narSize", p)
		}
		n := &closure.Path{Path: p, NarSize: *e.NarSize, References: []string{}}
		if len(e.NarHash) > 0 && string(e.NarHash) != "null" {
			h, err := parseHash(e.NarHash)
			if err != nil {
				return nil, fmt.Errorf("path-info: %s: %w", p, err)
			}
			n.NarHash = h
		}
		for _, r := range e.References {
			rp, err := absStorePath(dir, r)
			if err != nil {
				return nil, err
			}
			n.References = append(n.References, rp)
		}
		sort.Strings(n.References)
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Path < nodes[j].Path })
	return nodes, nil
}

// absStorePath makes a store path absolute; it accepts absolute paths and
// base names ("<hash>-<name>").
func absStorePath(dir, p string) (string, error) {
	if p == "" {
		return "", errors.New("path-info: empty store path")
	}
	if strings.HasPrefix(p, "/") {
		if path.Clean(p) != p || strings.Count(p, "/") < 2 {
			return "", fmt.Errorf("path-info: %q is not a store path", p)
		}
		return p, nil
	}
	if strings.Contains(p, "/") || p == "." || p == ".." {
		return "", fmt.Errorf("path-info: %q is not a store path", p)
	}
	return path.Join(dir, p), nil
}

// parseHash reads a hash given as a string ("sha256:<base32|hex>",
// "sha256-<base64>") or as a structured object ({"algorithm", "format",
// "hash"}) and normalises sha256 hashes to "sha256:<nix base32>".
func parseHash(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return normaliseHash(s), nil
	}
	var o struct {
		Algorithm string `json:"algorithm"`
		Format    string `json:"format"`
		Hash      string `json:"hash"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return "", fmt.Errorf("narHash is neither a string nor a hash object")
	}
	if o.Algorithm == "" || o.Hash == "" {
		return "", fmt.Errorf("narHash object lacks algorithm or hash")
	}
	if strings.Contains(o.Hash, ":") || strings.Contains(o.Hash, "-") {
		return normaliseHash(o.Hash), nil
	}
	if o.Format == "base64" || o.Format == "sri" {
		return normaliseHash(o.Algorithm + "-" + o.Hash), nil
	}
	return normaliseHash(o.Algorithm + ":" + o.Hash), nil
}

// normaliseHash turns sha256 hashes in hex, base64 (SRI) or nix base32
// into "sha256:<nix base32>"; anything else is returned unchanged.
func normaliseHash(s string) string {
	var raw []byte
	switch {
	case strings.HasPrefix(s, "sha256-"):
		b, err := base64.StdEncoding.DecodeString(s[len("sha256-"):])
		if err != nil {
			return s
		}
		raw = b
	case strings.HasPrefix(s, "sha256:"):
		v := s[len("sha256:"):]
		switch len(v) {
		case 64:
			b, err := hex.DecodeString(v)
			if err != nil {
				return s
			}
			raw = b
		case 52:
			b, err := closure.DecodeBase32(v)
			if err != nil {
				return s
			}
			raw = b
		case 44:
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return s
			}
			raw = b
		default:
			return s
		}
	default:
		return s
	}
	if len(raw) != 32 {
		return s
	}
	return "sha256:" + closure.EncodeBase32(raw)
}

// parseDumpDB parses `nix-store --dump-db PATHS` output (the registration
// format: path, hex NAR hash, NAR size, deriver, reference count,
// references) into closure nodes.
func parseDumpDB(data []byte) ([]*closure.Path, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		return sc.Text(), true
	}
	var nodes []*closure.Path
	for {
		p, ok := next()
		if !ok {
			break
		}
		if p == "" {
			continue
		}
		hash, ok1 := next()
		size, ok2 := next()
		_, ok3 := next() // deriver
		count, ok4 := next()
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, fmt.Errorf("dump-db: truncated entry for %s", p)
		}
		sz, err := strconv.ParseInt(size, 10, 64)
		if err != nil || sz < 0 {
			return nil, fmt.Errorf("dump-db: %s: bad size %q", p, size)
		}
		nrefs, err := strconv.Atoi(count)
		if err != nil || nrefs < 0 {
			return nil, fmt.Errorf("dump-db: %s: bad reference count %q", p, count)
		}
		n := &closure.Path{Path: p, NarSize: sz, References: []string{}}
		if hash != "" {
			h := hash
			if !strings.Contains(h, ":") {
				h = "sha256:" + h
			}
			n.NarHash = normaliseHash(h)
		}
		for i := 0; i < nrefs; i++ {
			r, ok := next()
			if !ok {
				return nil, fmt.Errorf("dump-db: truncated references of %s", p)
			}
			n.References = append(n.References, r)
		}
		sort.Strings(n.References)
		nodes = append(nodes, n)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dump-db: %w", err)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Path < nodes[j].Path })
	return nodes, nil
}
