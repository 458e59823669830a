package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// spdxDoc is the part of an SPDX 2.3 document the tests read.
type spdxDoc struct {
	SPDXVersion       string `json:"spdxVersion"`
	DocumentNamespace string `json:"documentNamespace"`
	CreationInfo      struct {
		Created string `json:"created"`
	} `json:"creationInfo"`
	Packages []struct {
		SPDXID          string `json:"SPDXID"`
		Name            string `json:"name"`
		VersionInfo     string `json:"versionInfo"`
		LicenseDeclared string `json:"licenseDeclared"`
		Checksums       []struct {
			Algorithm     string `json:"algorithm"`
			ChecksumValue string `json:"checksumValue"`
		} `json:"checksums"`
	} `json:"packages"`
	Relationships []struct {
		From string `json:"spdxElementId"`
		Type string `json:"relationshipType"`
		To   string `json:"relatedSpdxElement"`
	} `json:"relationships"`
}

// checkHelloSBOM checks an SBOM of an image holding hello and busybox.
func checkHelloSBOM(t *testing.T, raw []byte) {
	t.Helper()
	var doc spdxDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("not an SPDX JSON document: %v\n%s", err, raw)
	}
	if doc.SPDXVersion != "SPDX-2.3" || !strings.HasPrefix(doc.DocumentNamespace, "https://strata.invalid/spdx/") ||
		doc.CreationInfo.Created != "1970-01-01T00:00:01Z" {
		t.Errorf("header: version %q namespace %q created %q", doc.SPDXVersion, doc.DocumentNamespace, doc.CreationInfo.Created)
	}
	ids := map[string]string{}
	for _, p := range doc.Packages {
		switch p.Name {
		case "hello":
			if p.VersionInfo != "2.12.1" || p.LicenseDeclared != "GPL-3.0-or-later" {
				t.Errorf("hello: version %q license %q", p.VersionInfo, p.LicenseDeclared)
			}
		case "busybox":
			if p.VersionInfo != "1.35.0" || p.LicenseDeclared != "GPL-2.0-only" {
				t.Errorf("busybox: version %q license %q", p.VersionInfo, p.LicenseDeclared)
			}
		}
		if len(p.Checksums) != 1 || p.Checksums[0].Algorithm != "SHA256" || len(p.Checksums[0].ChecksumValue) != 64 {
			t.Errorf("%s: checksums %+v", p.Name, p.Checksums)
		}
		ids[p.Name] = p.SPDXID
	}
	if ids["hello"] == "" || ids["busybox"] == "" {
		t.Fatalf("packages %v lack hello or busybox", ids)
	}
	rel := map[string]bool{}
	for _, r := range doc.Relationships {
		rel[r.From+" "+r.Type+" "+r.To] = true
	}
	for _, want := range []string{
		"SPDXRef-DOCUMENT DESCRIBES " + ids["hello"],
		ids["hello"] + " DEPENDS_ON " + ids["busybox"],
	} {
		if !rel[want] {
			t.Errorf("no relationship %s", want)
		}
	}
}

// referrers GETs the referrers of digest under name.
func referrers(t *testing.T, addr, name, digest, artifactType string) (http.Header, []map[string]any) {
	t.Helper()
	u := "http://" + addr + "/v2/" + name + "/referrers/" + digest
	if artifactType != "" {
		u += "?artifactType=" + artifactType
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	var idx struct {
		Manifests []map[string]any `json:"manifests"`
	}
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("referrers: %v\n%s", err, body)
	}
	return resp.Header, idx.Manifests
}

// TestServeAttachesSBOM: an on-demand image lists an SPDX SBOM through the
// referrers API, regctl finds and fetches it, and a fresh server gives the
// same SBOM digest.
func TestServeAttachesSBOM(t *testing.T) {
	s := startServer(t, serverOpts{})
	digest, _, _ := manifestDigest(t, s.Addr, "shell/hello", "latest")
	rc := regctl(t, s.Addr)
	subject := s.Addr + "/shell/hello"

	list := rc("artifact", "list", subject, "--format", "{{json .}}")
	var idx struct {
		Subject struct {
			Digest string `json:"digest"`
		} `json:"subject"`
		Descriptors []struct {
			MediaType    string            `json:"mediaType"`
			Digest       string            `json:"digest"`
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
		} `json:"descriptors"`
	}
	if err := json.Unmarshal([]byte(list), &idx); err != nil {
		t.Fatalf("regctl artifact list: %v\n%s", err, list)
	}
	if len(idx.Descriptors) != 1 || idx.Descriptors[0].ArtifactType != "application/spdx+json" ||
		idx.Descriptors[0].MediaType != "application/vnd.oci.image.manifest.v1+json" ||
		idx.Descriptors[0].Annotations["org.opencontainers.image.created"] != "1970-01-01T00:00:01Z" {
		t.Fatalf("referrers of %s: %s", digest, list)
	}
	sbomDigest := idx.Descriptors[0].Digest

	doc := rc("artifact", "get", "--subject", subject, "--filter-artifact-type", "application/spdx+json")
	checkHelloSBOM(t, []byte(doc))

	// The artifact manifest points at the image, which is unchanged.
	_, _, raw := manifestDigest(t, s.Addr, "shell/hello", sbomDigest, "application/vnd.oci.image.manifest.v1+json")
	var m struct {
		ArtifactType string `json:"artifactType"`
		Config       struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
		Subject struct {
			Digest string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != "application/spdx+json" || m.Config.MediaType != "application/vnd.oci.empty.v1+json" || m.Subject.Digest != digest {
		t.Errorf("artifact manifest: %s", raw)
	}

	// Filtering is applied and said so.
	hdr, only := referrers(t, s.Addr, "shell/hello", digest, "application/spdx%2Bjson")
	if hdr.Get("OCI-Filters-Applied") != "artifactType" || len(only) != 1 || only[0]["digest"] != sbomDigest {
		t.Errorf("filtered referrers: %v (OCI-Filters-Applied %q)", only, hdr.Get("OCI-Filters-Applied"))
	}
	if _, none := referrers(t, s.Addr, "shell/hello", digest, "application/x-none"); len(none) != 0 {
		t.Errorf("referrers of another type: %v", none)
	}

	// Reproducible: a fresh server, same image and same SBOM.
	s2 := startServer(t, serverOpts{})
	digest2, _, _ := manifestDigest(t, s2.Addr, "shell/hello", "latest")
	_, refs2 := referrers(t, s2.Addr, "shell/hello", digest2, "")
	if digest2 != digest || len(refs2) != 1 || refs2[0]["digest"] != sbomDigest {
		t.Errorf("second server: image %s (want %s), referrers %v (want %s)", digest2, digest, refs2, sbomDigest)
	}
}

// TestBuildWritesSBOM: strata build puts the SBOM next to the image in an
// OCI layout and pushes it as a referrer; --sbom=false leaves it out.
func TestBuildWritesSBOM(t *testing.T) {
	need(t, "nix-build")
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	oci := filepath.Join(dir, "oci")
	s := startServer(t, serverOpts{})
	push := s.Addr + "/pushed/hello:sbom"
	stdout, stderr, err := strataBuild(t, 10*time.Minute, "--cache-dir", cache, "busybox", "hello", "--json",
		"--output", "oci:"+oci, "--output", push)
	if err != nil {
		t.Fatalf("strata build: %v\n%s", err, stderr)
	}
	var out struct {
		Digest  string `json:"digest"`
		Outputs []struct {
			Output string   `json:"output"`
			SBOMs  []string `json:"sboms"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	if len(out.Outputs) != 2 || len(out.Outputs[0].SBOMs) != 1 || len(out.Outputs[1].SBOMs) != 1 || out.Outputs[0].SBOMs[0] != out.Outputs[1].SBOMs[0] {
		t.Fatalf("outputs: %s", stdout)
	}
	sbomDigest := out.Outputs[0].SBOMs[0]

	// The layout: the image under its tag and the SBOM with its subject.
	readIndex := func(dir string) []map[string]any {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
		if err != nil {
			t.Fatal(err)
		}
		var idx struct {
			Manifests []map[string]any `json:"manifests"`
		}
		if err := json.Unmarshal(raw, &idx); err != nil {
			t.Fatalf("index.json: %v\n%s", err, raw)
		}
		return idx.Manifests
	}
	blob := func(dir, digest string) []byte {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:")))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	ms := readIndex(oci)
	if len(ms) != 2 || ms[0]["digest"] != out.Digest || ms[1]["digest"] != sbomDigest || ms[1]["artifactType"] != "application/spdx+json" {
		t.Fatalf("index.json manifests: %v (image %s, sbom %s)", ms, out.Digest, sbomDigest)
	}
	var art struct {
		Layers []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"layers"`
		Subject struct {
			Digest string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(blob(oci, sbomDigest), &art); err != nil {
		t.Fatal(err)
	}
	if art.Subject.Digest != out.Digest || len(art.Layers) != 1 || art.Layers[0].MediaType != "application/spdx+json" {
		t.Fatalf("sbom manifest in the layout: %s", blob(oci, sbomDigest))
	}
	checkHelloSBOM(t, blob(oci, art.Layers[0].Digest))

	// The registry: a referrer of the pushed image.
	if _, refs := referrers(t, s.Addr, "pushed/hello", out.Digest, ""); len(refs) != 1 || refs[0]["digest"] != sbomDigest {
		t.Errorf("referrers of the pushed image: %v, want %s", refs, sbomDigest)
	}

	// A rebuild into the same layout lists the SBOM once; --sbom=false
	// writes none.
	if _, stderr, err := strataBuild(t, 10*time.Minute, "--cache-dir", cache, "busybox", "hello", "--output", "oci:"+oci); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, stderr)
	}
	if ms := readIndex(oci); len(ms) != 2 {
		t.Errorf("after a rebuild index.json has %d manifests, want 2: %v", len(ms), ms)
	}
	bare := filepath.Join(dir, "bare")
	if _, stderr, err := strataBuild(t, 10*time.Minute, "--cache-dir", cache, "busybox", "hello", "--sbom=false", "--output", "oci:"+bare); err != nil {
		t.Fatalf("--sbom=false: %v\n%s", err, stderr)
	}
	if ms := readIndex(bare); len(ms) != 1 || ms[0]["digest"] != out.Digest {
		t.Errorf("--sbom=false: index.json %v", ms)
	}
}

// TestServeMultiArchSBOMs: each platform's image of an index has an SBOM
// of its own (its own closure, its own namespace); regctl finds the one of
// the platform asked for.
func TestServeMultiArchSBOMs(t *testing.T) {
	s := startServer(t, serverOpts{args: multiArgs})
	_, _, raw := manifestDigest(t, s.Addr, "shell/hello", "latest")
	var idx indexManifest
	if err := json.Unmarshal(raw, &idx); err != nil || len(idx.Manifests) != 2 {
		t.Fatalf("want an index of two images: %v\n%s", err, raw)
	}
	namespaces := map[string]bool{}
	for _, m := range idx.Manifests {
		_, refs := referrers(t, s.Addr, "shell/hello", m.Digest, "")
		if len(refs) != 1 || refs[0]["artifactType"] != "application/spdx+json" {
			t.Fatalf("referrers of the %s image: %v", m.Platform.Architecture, refs)
		}
	}
	rc := regctl(t, s.Addr)
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		doc := rc("artifact", "get", "--subject", s.Addr+"/shell/hello", "--platform", p, "--filter-artifact-type", "application/spdx+json")
		checkHelloSBOM(t, []byte(doc))
		var d spdxDoc
		_ = json.Unmarshal([]byte(doc), &d)
		namespaces[d.DocumentNamespace] = true
	}
	if len(namespaces) != 2 {
		t.Errorf("the platforms' SBOMs share a namespace: %v", namespaces)
	}
}
