package closure

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// Known values from nix-hash --type sha256 --to-base32 <hex>.
var base32Vectors = []struct{ hex, nix32 string }{
	{"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"}, // sha256("abc")
	{"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"}, // sha256("")
	{"a9993e364706816aba3e25717850c26c9cd0d89d", "kpcd173cq987hw957sx6m0868wv3x6d9"},                                             // sha1("abc"): 20 bytes, 32 characters
	{strings.Repeat("0", 64), strings.Repeat("0", 52)},
	{strings.Repeat("f", 64), "1" + strings.Repeat("z", 51)},
}

func TestBase32(t *testing.T) {
	for _, v := range base32Vectors {
		raw, _ := hex.DecodeString(v.hex)
		if got := EncodeBase32(raw); got != v.nix32 {
			t.Errorf("EncodeBase32(%s) = %s, want %s", v.hex, got, v.nix32)
		}
		b, err := DecodeBase32(v.nix32)
		if err != nil || !bytes.Equal(b, raw) {
			t.Errorf("DecodeBase32(%s) = %x, %v; want %s", v.nix32, b, err, v.hex)
		}
	}
	for _, bad := range []string{
		"2" + strings.Repeat("z", 51),                          // a bit beyond 256
		"1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5e", // 'e' is not in the alphabet
		"1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5u",
	} {
		if _, err := DecodeBase32(bad); err == nil {
			t.Errorf("DecodeBase32(%s) accepted", bad)
		}
	}
}

func FuzzDecodeBase32(f *testing.F) {
	for _, v := range base32Vectors {
		f.Add(v.nix32)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeBase32(s)
		if err != nil {
			return
		}
		if len(b) != len(s)*5/8 {
			t.Fatalf("%q: %d bytes", s, len(b))
		}
		// What decodes re-encodes to itself when the length is one Nix
		// uses for whole bytes.
		if n := (len(b)*8 + 4) / 5; n == len(s) {
			if again := EncodeBase32(b); again != s {
				t.Fatalf("%q decodes and re-encodes to %q", s, again)
			}
		}
	})
}
