package closure

import (
	"errors"
	"fmt"
	"strings"
)

// base32Alphabet is Nix's base-32 alphabet: 0-9 and a-z without e, o, u
// and t.
const base32Alphabet = "0123456789abcdfghijklmnpqrsvwxyz"

// EncodeBase32 encodes b the way Nix prints hashes and store-path hashes:
// the last character holds the least significant five bits, and bits are
// taken from the first byte's least significant bit on. A 20-byte store-path
// hash gives 32 characters, a sha256 digest 52.
func EncodeBase32(b []byte) string {
	n := (len(b)*8 + 4) / 5
	out := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		bit := i * 5
		j, k := bit/8, uint(bit%8)
		c := b[j] >> k
		if j+1 < len(b) {
			c |= b[j+1] << (8 - k)
		}
		out[n-1-i] = base32Alphabet[c&0x1f]
	}
	return string(out)
}

// DecodeBase32 is the inverse of EncodeBase32. The length in bytes is
// len(s)*5/8; bits beyond it must be zero.
func DecodeBase32(s string) ([]byte, error) {
	size := len(s) * 5 / 8
	out := make([]byte, size)
	for n := 0; n < len(s); n++ {
		c := s[len(s)-n-1]
		d := strings.IndexByte(base32Alphabet, c)
		if d < 0 {
			return nil, fmt.Errorf("nix base32: invalid character %q", c)
		}
		bit := n * 5
		i, j := bit/8, uint(bit%8)
		if i >= size {
			if d != 0 {
				return nil, errors.New("nix base32: excess bits are not zero")
			}
			continue
		}
		out[i] |= byte(d << j)
		if hi := byte(d >> (8 - j)); i+1 < size {
			out[i+1] |= hi
		} else if hi != 0 {
			return nil, errors.New("nix base32: excess bits are not zero")
		}
	}
	return out, nil
}
