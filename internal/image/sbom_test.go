package image

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"strata/internal/closure"
	"strata/internal/nix"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Known values from nix-hash --type sha256 --to-base32 <hex>.
var nix32Vectors = []struct{ hex, nix32 string }{
	{"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"}, // sha256("abc")
	{"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"}, // sha256("")
	{strings.Repeat("0", 64), strings.Repeat("0", 52)},
	{strings.Repeat("f", 64), "1" + strings.Repeat("z", 51)},
}

func TestNarHashHex(t *testing.T) {
	for _, v := range nix32Vectors {
		h, err := NarHashHex("sha256:" + v.nix32)
		if err != nil || h != v.hex {
			t.Errorf("NarHashHex(sha256:%s) = %s, %v; want %s", v.nix32, h, err, v.hex)
		}
		if h, err := NarHashHex("sha256:" + v.hex); err != nil || h != v.hex {
			t.Errorf("NarHashHex(sha256:%s) = %s, %v", v.hex, h, err)
		}
	}
	for _, bad := range []string{"", "sha256:", "md5:" + nix32Vectors[0].nix32, "sha256:abc", "sha256:" + strings.Repeat("g", 64)} {
		if _, err := NarHashHex(bad); err == nil {
			t.Errorf("NarHashHex(%q) accepted", bad)
		}
	}
}

func TestParseStoreName(t *testing.T) {
	for _, c := range []struct{ path, name, version string }{
		{"/nix/store/00000000000000000000000000000000-hello-2.12.1", "hello", "2.12.1"},
		{"/nix/store/00000000000000000000000000000000-busybox-static-x86_64-linux", "busybox-static-x86_64-linux", ""},
		{"/nix/store/00000000000000000000000000000000-glibc-2.38-27", "glibc", "2.38-27"},
		{"/nix/store/00000000000000000000000000000000-python3.11-numpy-1.26.4", "python3.11-numpy", "1.26.4"},
		{"/nix/store/00000000000000000000000000000000-source", "source", ""},
		{"/nix/store/00000000000000000000000000000000-imagemagick-7.1.1-21", "imagemagick", "7.1.1-21"},
	} {
		n, v := ParseStoreName(c.path)
		if n != c.name || v != c.version {
			t.Errorf("ParseStoreName(%s) = %q, %q; want %q, %q", c.path, n, v, c.name, c.version)
		}
	}
}

func TestSPDXLicense(t *testing.T) {
	for in, want := range map[string]string{
		"":                             "NOASSERTION",
		"MIT":                          "MIT",
		"GPL-3.0-or-later":             "GPL-3.0-or-later",
		"MIT AND Apache-2.0":           "(MIT AND Apache-2.0)",
		"unfree":                       "NOASSERTION",
		"unfreeRedistributable":        "NOASSERTION",
		"publicDomain":                 "NOASSERTION",
		"GNU General Public License":   "NOASSERTION",
		"MIT AND unfree":               "NOASSERTION",
		"LicenseRef-foo":               "NOASSERTION",
		"GPL-2.0+":                     "GPL-2.0+",
		"MIT AND GNU Free Doc License": "NOASSERTION",
	} {
		if got := SPDXLicense(in); got != want {
			t.Errorf("SPDXLicense(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPURL(t *testing.T) {
	if got := PURL("hello", "2.12.1"); got != "pkg:nix/hello@2.12.1" {
		t.Errorf("PURL = %s", got)
	}
	if got := PURL("gtk+3", ""); got != "pkg:nix/gtk%2B3" {
		t.Errorf("PURL = %s", got)
	}
}

const (
	testHello   = "/nix/store/1b8m03r63zqhnjf7l5wnldhh7c134ap5-hello-2.12.1"
	testBusybox = "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-busybox-1.35.0"
	testStatic  = "/nix/store/7zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-busybox-static-x86_64-linux"
	testCacert  = "/nix/store/2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nss-cacert-3.95"
)

// testSBOMInput is a fixed closure: hello → busybox → busybox-static, and a
// CA bundle with an unknown license whose NAR hash is given in hex.
func testSBOMInput(t *testing.T) (*closure.Graph, SBOMOptions) {
	t.Helper()
	g, err := closure.New([]*closure.Path{
		{Path: testHello, NarSize: 1000, NarHash: "sha256:" + nix32Vectors[0].nix32, References: []string{testBusybox, testHello}},
		{Path: testBusybox, NarSize: 2000, NarHash: "sha256:" + nix32Vectors[1].nix32, References: []string{testStatic}},
		{Path: testStatic, NarSize: 3000, NarHash: "sha256:" + nix32Vectors[2].nix32},
		{Path: testCacert, NarSize: 4000, NarHash: "sha256:" + nix32Vectors[3].hex},
	}, []string{testHello, testBusybox, testCacert})
	if err != nil {
		t.Fatal(err)
	}
	return g, SBOMOptions{
		Name:         "shell/hello",
		ConfigDigest: "sha256:" + strings.Repeat("c", 64),
		Created:      time.Unix(1, 0),
		Tool:         "strata-test",
		Packages: []nix.Package{
			{Attr: "hello", Name: "hello-2.12.1", Pname: "hello", Version: "2.12.1", License: "GPL-3.0-or-later",
				Description: "A program that produces a familiar, friendly greeting", Homepage: "https://www.gnu.org/software/hello/manual/", OutPath: testHello},
			{Attr: "busybox", Name: "busybox-1.35.0", Pname: "busybox", Version: "1.35.0", License: "GPL-2.0-only",
				Description: "Tiny versions of common UNIX utilities in a single small executable", Homepage: "https://busybox.net/", OutPath: testBusybox},
			{Attr: "cacert", Name: "nss-cacert-3.95", License: "unfree", OutPath: testCacert},
		},
	}
}

func TestSBOMGolden(t *testing.T) {
	g, opts := testSBOMInput(t)
	got, err := SBOM(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "sbom.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestSBOMGolden -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("SBOM differs from %s (run with -update after checking the change):\n%s", golden, got)
	}
}

// TestSBOMContent checks the golden document's meaning, so that -update
// cannot bless a wrong document.
func TestSBOMContent(t *testing.T) {
	g, opts := testSBOMInput(t)
	raw, err := SBOM(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	var doc spdxDocument
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXID != "SPDXRef-DOCUMENT" || doc.Name != "shell/hello" {
		t.Errorf("header: %+v", doc)
	}
	if !strings.HasPrefix(doc.DocumentNamespace, SPDXNamespaceBase+"sha256/"+strings.Repeat("c", 64)+"/") {
		t.Errorf("namespace %s", doc.DocumentNamespace)
	}
	if doc.CreationInfo.Created != "1970-01-01T00:00:01Z" || len(doc.CreationInfo.Creators) != 1 || doc.CreationInfo.Creators[0] != "Tool: strata-test" {
		t.Errorf("creationInfo %+v", doc.CreationInfo)
	}
	byName := map[string]spdxPackage{}
	for _, p := range doc.Packages {
		byName[p.Name] = p
	}
	if len(doc.Packages) != 4 {
		t.Fatalf("%d packages, want 4", len(doc.Packages))
	}
	h := byName["hello"]
	if h.SPDXID != "SPDXRef-nix-1b8m03r63zqhnjf7l5wnldhh7c134ap5" || h.VersionInfo != "2.12.1" || h.LicenseDeclared != "GPL-3.0-or-later" ||
		h.LicenseConcluded != "GPL-3.0-or-later" || h.Homepage == "" || h.Description == "" || h.DownloadLocation != "NOASSERTION" ||
		len(h.Checksums) != 1 || h.Checksums[0].Algorithm != "SHA256" || h.Checksums[0].ChecksumValue != nix32Vectors[0].hex ||
		len(h.ExternalRefs) != 1 || h.ExternalRefs[0].ReferenceLocator != "pkg:nix/hello@2.12.1" {
		t.Errorf("hello: %+v", h)
	}
	s := byName["busybox-static-x86_64-linux"]
	if s.VersionInfo != "" || s.LicenseDeclared != "NOASSERTION" || s.Homepage != "" || s.ExternalRefs[0].ReferenceLocator != "pkg:nix/busybox-static-x86_64-linux" {
		t.Errorf("busybox-static: %+v", s)
	}
	c := byName["nss-cacert"]
	if c.VersionInfo != "3.95" || c.LicenseDeclared != "NOASSERTION" || c.Checksums[0].ChecksumValue != nix32Vectors[3].hex {
		t.Errorf("cacert: %+v", c)
	}
	rels := map[string]bool{}
	for _, r := range doc.Relationships {
		rels[r.SPDXElementID+" "+r.RelationshipType+" "+r.RelatedSPDXElement] = true
	}
	for _, want := range []string{
		"SPDXRef-DOCUMENT DESCRIBES " + h.SPDXID,
		"SPDXRef-DOCUMENT DESCRIBES " + byName["busybox"].SPDXID,
		"SPDXRef-DOCUMENT DESCRIBES " + c.SPDXID,
		h.SPDXID + " DEPENDS_ON " + byName["busybox"].SPDXID,
		byName["busybox"].SPDXID + " DEPENDS_ON " + s.SPDXID,
	} {
		if !rels[want] {
			t.Errorf("missing relationship %s", want)
		}
	}
	if len(doc.Relationships) != 5 {
		t.Errorf("%d relationships, want 5: %+v", len(doc.Relationships), doc.Relationships)
	}
}

func TestSBOMDeterministic(t *testing.T) {
	g, opts := testSBOMInput(t)
	a, err := SBOM(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The same inputs in another order give the same bytes.
	g2, opts2 := testSBOMInput(t)
	for i, j := 0, len(opts2.Packages)-1; i < j; i, j = i+1, j-1 {
		opts2.Packages[i], opts2.Packages[j] = opts2.Packages[j], opts2.Packages[i]
	}
	b, err := SBOM(g2, opts2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("same inputs, different bytes")
	}
	// Another image (config) or name gives another namespace.
	opts2.ConfigDigest = "sha256:" + strings.Repeat("d", 64)
	c, _ := SBOM(g2, opts2)
	opts2.ConfigDigest = opts.ConfigDigest
	opts2.Name = "hello"
	d, _ := SBOM(g2, opts2)
	ns := func(raw []byte) string {
		var doc spdxDocument
		_ = json.Unmarshal(raw, &doc)
		return doc.DocumentNamespace
	}
	if ns(a) == ns(c) || ns(a) == ns(d) || ns(c) == ns(d) {
		t.Errorf("namespaces not distinct: %s %s %s", ns(a), ns(c), ns(d))
	}
	if _, err := SBOM(g, SBOMOptions{}); err == nil {
		t.Error("SBOM without a config digest accepted")
	}
}
