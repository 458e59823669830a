// Package nixcache makes strata a Nix binary cache for the store paths of
// the images it builds, from the same storage as the registry (a
// filesystem or an S3 bucket).
//
// Why: an image's closure is already built on the strata host. Serving it
// as a binary cache lets a Nix client, or a nix-snapshotter node that mounts
// store paths instead of unpacking layers, substitute exactly the paths it
// lacks, from the service that built the image.
//
// What may be served: a store path is served only once a Recorder has
// recorded it, and the builder records the closure of each image it builds
// (see builder.Options.Recorder). Nothing else on the host's Nix store is
// ever reachable: a request names a path by its 32-character hash, the
// handler checks the name's shape before it reads anything, and then reads
// only the narinfo recorded under that hash.
//
// Storage layout (every object is written whole through a staged write, and
// a narinfo only after the NAR it names, so a reader never sees a narinfo
// whose NAR is missing or partial):
//
//	nixcache/nar/<filehash>.nar.zst   a NAR, zstd-compressed; filehash is
//	                                  the Nix base-32 SHA-256 of the file
//	nixcache/narinfo/<hash>.narinfo   the signed narinfo of the store path
//	                                  /nix/store/<hash>-<name>
//
// Signatures: narinfos are signed when they are recorded, with a key in
// Nix's "name:base64" secret-key format (nix-store --generate-binary-cache-key
// writes one). The handler serves them as stored, so a narinfo changed in
// storage fails Nix's signature check on the client; a server never signs
// what it reads back.
package nixcache

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixbase32"
)

// StoreDir is the only Nix store directory the cache serves.
const StoreDir = "/nix/store"

// hashLen is the length of a store path's hash part; fileHashLen of a
// SHA-256 in Nix's base-32.
const (
	hashLen     = 32
	fileHashLen = 52
)

// validBase32 reports whether s is n characters of Nix's base-32 alphabet.
func validBase32(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nixbase32.Is(s[i]) {
			return false
		}
	}
	return true
}

// StorePathHash returns the hash part of an absolute store path
// (/nix/store/<hash>-<name>), or an error that says what is wrong.
func StorePathHash(p string) (string, error) {
	rest, ok := strings.CutPrefix(p, StoreDir+"/")
	if !ok {
		return "", fmt.Errorf("nixcache: %s is not in %s", p, StoreDir)
	}
	if len(rest) < hashLen+2 || rest[hashLen] != '-' || strings.Contains(rest, "/") || !validBase32(rest[:hashLen], hashLen) {
		return "", fmt.Errorf("nixcache: %s is not a store path (/nix/store/<32-character hash>-<name>)", p)
	}
	return rest[:hashLen], nil
}

// Key is a signing key.
type Key struct {
	secret signature.SecretKey
}

// ParseKey parses a secret key in Nix's "name:base64" format. The error
// never holds the key's text.
func ParseKey(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	name, _, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return nil, errors.New("nixcache: a signing key is NAME:BASE64 (make one with: nix-store --generate-binary-cache-key NAME secret.key public.key)")
	}
	sk, err := signature.LoadSecretKey(s)
	if err != nil {
		return nil, fmt.Errorf("nixcache: signing key %q is not a Nix ed25519 secret key (make one with: nix-store --generate-binary-cache-key %s secret.key public.key)", name, name)
	}
	return &Key{secret: sk}, nil
}

// LoadKey reads a secret key file (see ParseKey).
func LoadKey(path string) (*Key, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nixcache: reading signing key: %w", err)
	}
	return ParseKey(string(raw))
}

// GenerateKey returns a new random key named name.
func GenerateKey(name string) (*Key, error) {
	sk, _, err := signature.GenerateKeypair(name, nil)
	if err != nil {
		return nil, err
	}
	return &Key{secret: sk}, nil
}

// PublicKey is the key's public half in Nix's "name:base64" format, the
// value of a client's trusted-public-keys.
func (k *Key) PublicKey() string { return k.secret.ToPublicKey().String() }

// String is the secret key in Nix's format, for writing a key file.
func (k *Key) String() string { return k.secret.String() }
