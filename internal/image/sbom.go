package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"strata/internal/closure"
	"strata/internal/nix"
)

// Software bills of materials.
//
// SBOM writes an SPDX 2.3 JSON document describing an image's closure:
// one SPDX package per store path, with the metadata of the requested
// packages (meta.description, meta.license, meta.homepage, pname and
// version) on their out paths and names and versions parsed from the store
// path name elsewhere. Its purl is pkg:nix/NAME@VERSION, unless the path
// lists its own package URLs in PURLFile. Every relationship comes from the closure graph:
// the document DESCRIBES the closure's roots (the requested packages), and
// each store path DEPENDS_ON each of its references.
//
// The document is reproducible: the same closure, packages and options
// give the same bytes. Its creation time is the image's fixed creation
// time, packages and relationships are sorted, and the documentNamespace
// is derived from content, not drawn at random:
//
//	https://strata.invalid/spdx/<alg>/<image config hex>/<document hex>
//
// where <image config hex> is the image config's digest (so the namespace
// names the image it describes) and <document hex> is the SHA-256 of the
// document as rendered with an empty namespace (so two documents that
// differ in anything, the name or the tool version say, never share a
// namespace). The host is under .invalid (RFC 2606): it is an identifier,
// not a location to fetch.

// SPDX media types and constants.
const (
	// SPDXMediaType is the media type of an SPDX JSON document, the
	// artifactType of an SBOM artifact manifest.
	SPDXMediaType = "application/spdx+json"
	// SPDXNamespaceBase prefixes every documentNamespace strata writes.
	SPDXNamespaceBase = "https://strata.invalid/spdx/"
	noAssertion       = "NOASSERTION"
)

// SBOMOptions describe the image an SBOM is for.
type SBOMOptions struct {
	// Name is the document name, the image name ("shell/hello"); default
	// "image".
	Name string
	// ConfigDigest is the image config's digest ("sha256:..."); required,
	// the documentNamespace is derived from it.
	ConfigDigest string
	// Created is the creation time, the image's fixed creation time;
	// default time.Unix(1, 0), as images.
	Created time.Time
	// Tool is the creator tool, "strata-<version>"; default "strata-dev".
	Tool string
	// Packages are the requested packages with their metadata and
	// OutPath; a store path that is the OutPath of one gets its name,
	// version, license, homepage and description. Default none.
	Packages []nix.Package
	// PURLs are package URLs of store paths (what a path declares in
	// PURLFile, say "pkg:deb/debian/curl@7.88.1-10?arch=amd64"); a path
	// listed here gets them as its purl references instead of the pkg:nix
	// one derived from its name. Default none.
	PURLs map[string][]string
}

// PURLFile is where a store path lists the package URLs of what it holds,
// one per line (a package set made from another distribution's packages
// names them there, so that scanners know them).
const PURLFile = "nix-support/strata-purls"

// spdxDocument is the subset of SPDX 2.3 (JSON) strata writes. Field order
// is the order of the specification's examples.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID           string            `json:"SPDXID"`
	Name             string            `json:"name"`
	VersionInfo      string            `json:"versionInfo,omitempty"`
	DownloadLocation string            `json:"downloadLocation"`
	FilesAnalyzed    bool              `json:"filesAnalyzed"`
	Checksums        []spdxChecksum    `json:"checksums,omitempty"`
	Homepage         string            `json:"homepage,omitempty"`
	LicenseConcluded string            `json:"licenseConcluded"`
	LicenseDeclared  string            `json:"licenseDeclared"`
	CopyrightText    string            `json:"copyrightText"`
	Description      string            `json:"description,omitempty"`
	Comment          string            `json:"comment,omitempty"`
	ExternalRefs     []spdxExternalRef `json:"externalRefs,omitempty"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	SPDXElementID      string `json:"spdxElementId"`
	RelationshipType   string `json:"relationshipType"`
	RelatedSPDXElement string `json:"relatedSpdxElement"`
}

// SBOM returns the SPDX 2.3 JSON document of the closure g (its roots are
// the packages the document describes) and the requested packages'
// metadata. See the notes above for the namespace scheme.
func SBOM(g *closure.Graph, opts SBOMOptions) ([]byte, error) {
	if g == nil {
		return nil, errors.New("image: sbom: no closure")
	}
	alg, cfgHex, ok := strings.Cut(opts.ConfigDigest, ":")
	if !ok || alg == "" || cfgHex == "" {
		return nil, fmt.Errorf("image: sbom: config digest %q: want alg:hex", opts.ConfigDigest)
	}
	if opts.Name == "" {
		opts.Name = "image"
	}
	if opts.Tool == "" {
		opts.Tool = "strata-dev"
	}
	created := opts.Created
	if created.IsZero() {
		created = time.Unix(1, 0)
	}
	doc := spdxDocument{
		SPDXVersion: "SPDX-2.3",
		DataLicense: "CC0-1.0",
		SPDXID:      "SPDXRef-DOCUMENT",
		Name:        opts.Name,
		CreationInfo: spdxCreationInfo{
			Created:  created.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: " + opts.Tool},
		},
		Packages: []spdxPackage{},
	}
	paths := g.Sorted()
	ids, err := spdxIDs(paths)
	if err != nil {
		return nil, err
	}
	meta := packagesByOutPath(opts.Packages)
	for _, p := range paths {
		pk, err := spdxPackageOf(p, g.Paths[p], ids[p], meta, opts.PURLs[p])
		if err != nil {
			return nil, err
		}
		doc.Packages = append(doc.Packages, pk)
	}
	doc.Relationships = spdxRelationships(g, paths, ids)

	// The namespace is derived from the document rendered without it.
	body, err := encodeSPDX(doc)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	doc.DocumentNamespace = SPDXNamespaceBase + alg + "/" + cfgHex + "/" + hex.EncodeToString(sum[:])
	return encodeSPDX(doc)
}

// packagesByOutPath indexes the requested packages' metadata by out path;
// of several packages with one out path, the first by attribute wins.
func packagesByOutPath(packages []nix.Package) map[string]nix.Package {
	meta := map[string]nix.Package{}
	pkgs := append([]nix.Package(nil), packages...)
	sort.SliceStable(pkgs, func(i, j int) bool { return pkgs[i].Attr < pkgs[j].Attr })
	for _, p := range pkgs {
		if _, seen := meta[p.OutPath]; p.OutPath != "" && !seen {
			meta[p.OutPath] = p
		}
	}
	return meta
}

// spdxIDs is the SPDX identifier of each store path.
func spdxIDs(paths []string) (map[string]string, error) {
	ids := map[string]string{}
	for _, p := range paths {
		id, err := spdxID(p)
		if err != nil {
			return nil, fmt.Errorf("image: sbom: %w", err)
		}
		ids[p] = id
	}
	return ids, nil
}

// spdxPackageOf is the SPDX package of store path p (node n, identifier
// id): named and versioned by the requested package's metadata when p is
// one's out path, else by the store name; purls name it when the path
// lists some, else pkg:nix.
func spdxPackageOf(p string, n *closure.Path, id string, meta map[string]nix.Package, purls []string) (spdxPackage, error) {
	pk := spdxPackage{
		SPDXID:           id,
		DownloadLocation: noAssertion,
		LicenseConcluded: noAssertion,
		LicenseDeclared:  noAssertion,
		CopyrightText:    noAssertion,
		Comment:          "Nix store path " + p,
	}
	name, version := ParseStoreName(p)
	if m, ok := meta[p]; ok {
		mn, mv := splitDrvName(m.Name)
		switch {
		case m.Pname != "":
			name = m.Pname
		case mn != "":
			name = mn
		}
		switch {
		case m.Version != "":
			version = m.Version
		case mv != "":
			version = mv
		}
		lic := SPDXLicense(m.License)
		pk.LicenseConcluded, pk.LicenseDeclared = lic, lic
		pk.Homepage = m.Homepage
		pk.Description = m.Description
	}
	pk.Name, pk.VersionInfo = name, version
	if n.NarHash != "" {
		hx, err := NarHashHex(n.NarHash)
		if err != nil {
			return spdxPackage{}, fmt.Errorf("image: sbom: %s: %w", p, err)
		}
		pk.Checksums = []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: hx}}
	}
	if len(purls) > 0 {
		for _, u := range purls {
			pk.ExternalRefs = append(pk.ExternalRefs, spdxExternalRef{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: u})
		}
	} else {
		pk.ExternalRefs = []spdxExternalRef{{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: PURL(name, version)}}
	}
	return pk, nil
}

// spdxRelationships are the document's DESCRIBES (the roots) and
// DEPENDS_ON (the references) relationships, sorted.
func spdxRelationships(g *closure.Graph, paths []string, ids map[string]string) []spdxRelationship {
	rels := []spdxRelationship{}
	for _, r := range g.Roots {
		if id, ok := ids[r]; ok {
			rels = append(rels, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", id})
		}
	}
	for _, p := range paths {
		for _, ref := range g.Paths[p].References {
			if id, ok := ids[ref]; ok && ref != p {
				rels = append(rels, spdxRelationship{ids[p], "DEPENDS_ON", id})
			}
		}
	}
	sort.Slice(rels, func(i, j int) bool {
		a, b := rels[i], rels[j]
		if (a.RelationshipType == "DESCRIBES") != (b.RelationshipType == "DESCRIBES") {
			return a.RelationshipType == "DESCRIBES"
		}
		if a.SPDXElementID != b.SPDXElementID {
			return a.SPDXElementID < b.SPDXElementID
		}
		if a.RelationshipType != b.RelationshipType {
			return a.RelationshipType < b.RelationshipType
		}
		return a.RelatedSPDXElement < b.RelatedSPDXElement
	})
	return rels
}

func encodeSPDX(doc spdxDocument) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("image: sbom: encode: %w", err)
	}
	return b.Bytes(), nil
}

// spdxID is the SPDX identifier of a store path: "SPDXRef-nix-" and the
// path's hash part (letters and digits), which is unique in a store.
func spdxID(storePath string) (string, error) {
	base := path.Base(storePath)
	h, _, ok := strings.Cut(base, "-")
	if !ok || h == "" {
		return "", fmt.Errorf("%q is not a store path", storePath)
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return "", fmt.Errorf("%q is not a store path: bad hash part", storePath)
		}
	}
	return "SPDXRef-nix-" + h, nil
}

// ParseStoreName returns the name and version of a store path
// ("/nix/store/<hash>-hello-2.12.1" → "hello", "2.12.1") as Nix's
// DrvName does: the version starts after the first "-" that is followed by
// something other than a letter. A path without one has no version.
func ParseStoreName(storePath string) (name, version string) {
	base := path.Base(storePath)
	if _, rest, ok := strings.Cut(base, "-"); ok {
		base = rest
	}
	return splitDrvName(base)
}

func splitDrvName(s string) (name, version string) {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '-' {
			c := s[i+1]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

// PURL is the package URL of a Nix package: "pkg:nix/<name>@<version>",
// or "pkg:nix/<name>" without a version; name and version are
// percent-encoded.
func PURL(name, version string) string {
	s := "pkg:nix/" + purlEscape(name)
	if version != "" {
		s += "@" + purlEscape(version)
	}
	return s
}

func purlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// nonSPDX are nixpkgs license short names whose licenses have no SPDX
// identifier; Nix reports the short name for them.
var nonSPDX = map[string]bool{
	"free": true, "publicDomain": true, "unfree": true, "unfreeRedistributable": true,
	"unfreeRedistributableFirmware": true, "unknown": true,
}

// SPDXLicense turns a package's license as the Nix driver reports it
// (meta.license's spdxId, else its short name or full name; several
// joined with " AND ") into an SPDX license expression, or NOASSERTION
// when any part is not an SPDX identifier: empty, a full name (with
// spaces), a nixpkgs short name of a license without one (unfree,
// publicDomain, ...), or a LicenseRef.
func SPDXLicense(s string) string {
	if strings.TrimSpace(s) == "" {
		return noAssertion
	}
	terms := strings.Split(s, " AND ")
	for _, t := range terms {
		if !spdxIDString(t) || nonSPDX[t] || strings.HasPrefix(t, "unfree") || strings.HasPrefix(t, "LicenseRef-") {
			return noAssertion
		}
	}
	if len(terms) == 1 {
		return terms[0]
	}
	return "(" + strings.Join(terms, " AND ") + ")"
}

// spdxIDString reports whether s has the syntax of an SPDX license id
// (letters, digits, "." and "-", an optional trailing "+").
func spdxIDString(s string) bool {
	s = strings.TrimSuffix(s, "+")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// NarHashHex returns the hex digest of a Nix hash "sha256:<digest>" whose
// digest is Nix base32 (52 characters, as Nix prints NAR hashes) or hex
// (64 characters), like `nix-hash --type sha256 --to-base16`.
func NarHashHex(h string) (string, error) {
	alg, v, ok := strings.Cut(h, ":")
	if !ok || alg != "sha256" {
		return "", fmt.Errorf("nar hash %q: want sha256:<digest>", h)
	}
	switch len(v) {
	case 64:
		if _, err := hex.DecodeString(v); err != nil {
			return "", fmt.Errorf("nar hash %q: %w", h, err)
		}
		return strings.ToLower(v), nil
	case 52:
		b, err := closure.DecodeBase32(v)
		if err != nil {
			return "", fmt.Errorf("nar hash %q: %w", h, err)
		}
		return hex.EncodeToString(b), nil
	}
	return "", fmt.Errorf("nar hash %q: a sha256 digest has 52 base32 or 64 hex characters", h)
}
