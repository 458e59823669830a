package eval

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
)

var debianPackages = flag.String("debian-packages", "", "rewrite testdata/corpus/debian12.json from this (uncompressed) Debian Packages index; see testdata/corpus/debian12.sh")

const debianFile = "../../../testdata/corpus/debian12.json"

// TestDebianCorpus checks the checked-in corpus made from Debian 12's
// dependency graph; with -debian-packages it first rewrites it (run
// testdata/corpus/debian12.sh).
func TestDebianCorpus(t *testing.T) {
	if *debianPackages != "" {
		f, err := os.Open(*debianPackages)
		if err != nil {
			t.Fatal(err)
		}
		c, err := DebianCorpus(f, DebianImages, DebianBumps)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(debianFile, marshalCorpus(t, c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(debianFile)
	if err != nil {
		t.Fatalf("%v (run testdata/corpus/debian12.sh)", err)
	}
	c, err := ParseCorpus(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(marshalCorpus(t, c), data) {
		t.Errorf("%s is not in its canonical form; run testdata/corpus/debian12.sh", debianFile)
	}
	if len(c.Images) != len(DebianImages) {
		t.Errorf("%d images, want %d", len(c.Images), len(DebianImages))
	}
	largest, libc := 0, ""
	for _, im := range c.Images {
		if n := len(c.ImageGraph(im.Roots).Paths); n > largest {
			largest = n
		}
	}
	for p := range c.Paths {
		if strings.Contains(p, "-libc6") {
			libc = p
		}
	}
	if largest < 200 {
		t.Errorf("largest image has %d paths, want the hundreds of a desktop application", largest)
	}
	if libc == "" {
		t.Error("no libc6 path")
	}
	if len(c.Updated) < len(DebianBumps) {
		t.Errorf("the update changes %d paths, want at least the %d bumped", len(c.Updated), len(DebianBumps))
	}
	kinds := c.UpdateKinds()
	for _, k := range []string{UpdateLeaf, UpdateMid, UpdateBase} {
		if kinds[k] == nil {
			t.Errorf("no %s update", k)
		}
	}
}

func TestDebianCorpusParse(t *testing.T) {
	const idx = `Package: a
Version: 1:1.0~rc1-2
Installed-Size: 10
Depends: b (>= 1), c | d, virt

Package: b
Version: 2.0
Installed-Size: 20
Pre-Depends: a
Description: cycle with a
 continuation line

Package: c
Version: 3
Installed-Size: 30

Package: p
Version: 4
Installed-Size: 40
Provides: virt (= 1)
`
	c, err := DebianCorpus(strings.NewReader(idx), map[string][]string{"img": {"a"}}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var ab string
	for p, cp := range c.Paths {
		names = append(names, p[strings.IndexByte(p, '-')+1:])
		if strings.Contains(p, "-a+b-1_1.0_rc1-2") {
			ab = p
			if cp.NarSize != 30*1024 {
				t.Errorf("a+b has %d bytes, want both packages' 30 KiB", cp.NarSize)
			}
		}
	}
	if ab == "" {
		t.Fatalf("the cycle a ↔ b is not one path with a store-safe version: %v", names)
	}
	if len(c.Paths[ab].References) != 2 {
		t.Errorf("a+b refers to %v, want c and the provider p", c.Paths[ab].References)
	}
	if len(c.Updated) != 2 {
		t.Errorf("bumping c changes %d paths, want c and a+b", len(c.Updated))
	}
	if _, err := DebianCorpus(strings.NewReader(idx), map[string][]string{"img": {"zz"}}, nil); err == nil {
		t.Error("an image of an unknown package was accepted")
	}
	if _, err := DebianCorpus(strings.NewReader(""), nil, nil); err == nil {
		t.Error("an empty index was accepted")
	}
}
