package registry_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"strata/internal/registry"
)

const (
	ociManifestType = "application/vnd.oci.image.manifest.v1+json"
	ociIndex        = "application/vnd.oci.image.index.v1+json"
	ociConfig       = "application/vnd.oci.image.config.v1+json"
	ociLayer        = "application/vnd.oci.image.layer.v1.tar+gzip"
	dockerMfst      = "application/vnd.docker.distribution.manifest.v2+json"
)

type desc struct {
	MediaType string   `json:"mediaType"`
	Digest    string   `json:"digest"`
	Size      int64    `json:"size"`
	URLs      []string `json:"urls,omitempty"`
}

type mfst struct {
	SchemaVersion int    `json:"schemaVersion"`
	MediaType     string `json:"mediaType,omitempty"`
	Config        *desc  `json:"config,omitempty"`
	Layers        []desc `json:"layers,omitempty"`
	Manifests     []desc `json:"manifests,omitempty"`
	Subject       *desc  `json:"subject,omitempty"`
}

func (m mfst) bytes(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pushBlob uploads data monolithically into repo and returns its
// descriptor.
func (e *env) pushBlob(t *testing.T, repo, mediaType string, data []byte) desc {
	t.Helper()
	d := digestOf(data)
	if r := e.send(t, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+d, data); r.StatusCode != 201 {
		t.Fatalf("push blob: %d", r.StatusCode)
	}
	return desc{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

// putManifest PUTs body with Content-Type ct and returns the response with
// its body read.
func (e *env) putManifest(t *testing.T, repo, ref, ct string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("PUT", e.srv.URL+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// image pushes a config and a layer into repo and returns a manifest
// naming them.
func (e *env) image(t *testing.T, repo string) mfst {
	t.Helper()
	cfg := e.pushBlob(t, repo, ociConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	layer := e.pushBlob(t, repo, ociLayer, []byte("layer bytes of "+repo))
	return mfst{SchemaVersion: 2, MediaType: ociManifestType, Config: &cfg, Layers: []desc{layer}}
}

// wantNothingTagged checks that a refused PUT left no tag behind.
func (e *env) wantNoTag(t *testing.T, repo, tag string) {
	t.Helper()
	if r, _ := e.do(t, "GET", "/v2/"+repo+"/manifests/"+tag, nil); r.StatusCode != 404 {
		t.Errorf("after a refused PUT, %s:%s answers %d", repo, tag, r.StatusCode)
	}
}

func TestManifestPutContentType(t *testing.T) {
	e := newEnvWith(t, func(o *registry.Options) { o.PushPrefix = "x" })
	m := e.image(t, "x/r")
	body := m.bytes(t)
	for _, c := range []struct{ name, ct string }{
		{"not a manifest type", "text/plain"},
		{"a blob type", "application/octet-stream"},
		{"index type for an image", ociIndex},
		{"docker type for an OCI mediaType", dockerMfst},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, b := e.putManifest(t, "x/r", "ct", c.ct, body)
			se := wantError(t, resp, b, 400, registry.CodeManifestInvalid)
			if len(se.Errors) == 1 && !strings.Contains(se.Errors[0].Message, "Content-Type") {
				t.Errorf("message does not name the Content-Type: %s", b)
			}
			e.wantNoTag(t, "x/r", "ct")
		})
	}
	// A body mediaType the registry does not serve is refused even when the
	// Content-Type agrees.
	odd := m
	odd.MediaType = "application/vnd.example.manifest+json"
	resp, b := e.putManifest(t, "x/r", "odd", odd.MediaType, odd.bytes(t))
	wantError(t, resp, b, 400, registry.CodeManifestInvalid)
	// The right type, and no type at all (the body decides), are accepted;
	// a body without mediaType takes a Content-Type of the same kind.
	for _, ct := range []string{ociManifestType, "", "application/json"} {
		if resp, b := e.putManifest(t, "x/r", "ok", ct, body); resp.StatusCode != 201 {
			t.Errorf("Content-Type %q: %d %s", ct, resp.StatusCode, b)
		}
	}
	bare := m
	bare.MediaType = ""
	if resp, b := e.putManifest(t, "x/r", "docker", dockerMfst, bare.bytes(t)); resp.StatusCode != 201 {
		t.Fatalf("bare body as Docker: %d %s", resp.StatusCode, b)
	}
	if r, _ := e.do(t, "GET", "/v2/x/r/manifests/docker", nil); r.Header.Get("Content-Type") != dockerMfst {
		t.Errorf("served as %q", r.Header.Get("Content-Type"))
	}
}

func TestManifestPutBlobUnknown(t *testing.T) {
	e := newEnvWith(t, func(o *registry.Options) { o.PushPrefix = "x" })
	m := e.image(t, "x/r")
	other := e.pushBlob(t, "x/other", ociLayer, []byte("only in x/other"))
	missing := desc{MediaType: ociLayer, Digest: digestOf([]byte("never pushed")), Size: 12}
	cases := map[string]mfst{}
	noCfg := m
	noCfg.Config = &desc{MediaType: ociConfig, Digest: missing.Digest, Size: missing.Size}
	cases["config"] = noCfg
	noLayer := m
	noLayer.Layers = append([]desc{}, m.Layers[0], missing)
	cases["layer"] = noLayer
	elsewhere := m
	elsewhere.Layers = []desc{other}
	cases["layer of another repository"] = elsewhere
	for name, mm := range cases {
		t.Run(name, func(t *testing.T) {
			resp, b := e.putManifest(t, "x/r", "bad", ociManifestType, mm.bytes(t))
			se := wantError(t, resp, b, 400, registry.CodeManifestBlobUnknown)
			if len(se.Errors) == 1 && !strings.Contains(string(se.Errors[0].Detail), "sha256:") {
				t.Errorf("detail does not name the digest: %s", b)
			}
			e.wantNoTag(t, "x/r", "bad")
		})
	}
	// A non-distributable layer with urls lives elsewhere: accepted.
	nd := m
	nd.Layers = append([]desc{}, m.Layers[0], desc{MediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		Digest: missing.Digest, Size: 123456, URLs: []string{"https://example.com/layer"}})
	if resp, b := e.putManifest(t, "x/r", "nd", ociManifestType, nd.bytes(t)); resp.StatusCode != 201 {
		t.Fatalf("non-distributable layer with urls: %d %s", resp.StatusCode, b)
	}
	// The same media type without urls must be in the repository.
	nd.Layers[1].URLs = nil
	resp, b := e.putManifest(t, "x/r", "nd2", ociManifestType, nd.bytes(t))
	wantError(t, resp, b, 400, registry.CodeManifestBlobUnknown)
}

func TestManifestPutIndexChildUnknown(t *testing.T) {
	e := newEnvWith(t, func(o *registry.Options) { o.PushPrefix = "x" })
	child := e.image(t, "x/r").bytes(t)
	if resp, b := e.putManifest(t, "x/r", digestOf(child), ociManifestType, child); resp.StatusCode != 201 {
		t.Fatalf("child: %d %s", resp.StatusCode, b)
	}
	good := desc{MediaType: ociManifestType, Digest: digestOf(child), Size: int64(len(child))}
	gone := desc{MediaType: ociManifestType, Digest: digestOf([]byte("no such manifest")), Size: 16}
	idx := mfst{SchemaVersion: 2, MediaType: ociIndex, Manifests: []desc{good, gone}}
	resp, b := e.putManifest(t, "x/r", "idx", ociIndex, idx.bytes(t))
	wantError(t, resp, b, 400, registry.CodeManifestBlobUnknown)
	e.wantNoTag(t, "x/r", "idx")
	// The child pushed to another repository does not count here.
	resp, b = e.putManifest(t, "x/elsewhere", "idx", ociIndex, mfst{SchemaVersion: 2, MediaType: ociIndex, Manifests: []desc{good}}.bytes(t))
	wantError(t, resp, b, 400, registry.CodeManifestBlobUnknown)
	idx.Manifests = []desc{good}
	if resp, b := e.putManifest(t, "x/r", "idx", ociIndex, idx.bytes(t)); resp.StatusCode != 201 {
		t.Fatalf("index of existing children: %d %s", resp.StatusCode, b)
	}
}

func TestManifestPutSizeMismatch(t *testing.T) {
	e := newEnvWith(t, func(o *registry.Options) { o.PushPrefix = "x" })
	m := e.image(t, "x/r")
	for name, mutate := range map[string]func(*mfst){
		"layer": func(m *mfst) {
			m.Layers = []desc{{MediaType: ociLayer, Digest: m.Layers[0].Digest, Size: m.Layers[0].Size + 1}}
		},
		"config": func(m *mfst) { m.Config = &desc{MediaType: ociConfig, Digest: m.Config.Digest, Size: 1} },
	} {
		t.Run(name, func(t *testing.T) {
			mm := m
			mutate(&mm)
			resp, b := e.putManifest(t, "x/r", "size", ociManifestType, mm.bytes(t))
			se := wantError(t, resp, b, 400, registry.CodeManifestInvalid)
			if len(se.Errors) == 1 && !strings.Contains(se.Errors[0].Message, "bytes") {
				t.Errorf("message does not give the sizes: %s", b)
			}
			e.wantNoTag(t, "x/r", "size")
		})
	}
	child := m.bytes(t)
	if resp, b := e.putManifest(t, "x/r", "child", ociManifestType, child); resp.StatusCode != 201 {
		t.Fatalf("child: %d %s", resp.StatusCode, b)
	}
	idx := mfst{SchemaVersion: 2, MediaType: ociIndex, Manifests: []desc{{MediaType: ociManifestType, Digest: digestOf(child), Size: int64(len(child)) - 1}}}
	resp, b := e.putManifest(t, "x/r", "idx", ociIndex, idx.bytes(t))
	wantError(t, resp, b, 400, registry.CodeManifestInvalid)
}

func TestManifestPutSubjectMayBeMissing(t *testing.T) {
	e := newEnvWith(t, func(o *registry.Options) { o.PushPrefix = "x" })
	m := e.image(t, "x/r")
	subject := desc{MediaType: ociManifestType, Digest: digestOf([]byte("a subject pushed later")), Size: 22}
	m.Subject = &subject
	body := m.bytes(t)
	resp, b := e.putManifest(t, "x/r", digestOf(body), ociManifestType, body)
	if resp.StatusCode != 201 || resp.Header.Get("OCI-Subject") != subject.Digest {
		t.Fatalf("referrer before its subject: %d %q %s", resp.StatusCode, resp.Header.Get("OCI-Subject"), b)
	}
	r, list := e.do(t, "GET", "/v2/x/r/referrers/"+subject.Digest, nil)
	if r.StatusCode != 200 || !strings.Contains(string(list), digestOf(body)) {
		t.Fatalf("referrers: %d %s", r.StatusCode, list)
	}
}

// TestManifestPutTagParam: PUT by digest with ?tag= sets the tags and lists
// them in OCI-Tag; a bad tag is refused before anything is written.
func TestManifestPutTagParam(t *testing.T) {
	e := newEnvWith(t, func(o *registry.Options) { o.PushPrefix = "x" })
	body := e.image(t, "x/r").bytes(t)
	d := digestOf(body)
	resp, b := e.putManifest(t, "x/r", d+"?tag=bad!tag", ociManifestType, body)
	wantError(t, resp, b, 400, registry.CodeManifestInvalid)
	if r, _ := e.do(t, "GET", "/v2/x/r/manifests/"+d, nil); r.StatusCode != 404 {
		t.Fatalf("a refused PUT stored the manifest: %d", r.StatusCode)
	}
	resp, b = e.putManifest(t, "x/r", d+"?tag=v1&tag=latest", ociManifestType, body)
	if resp.StatusCode != 201 || resp.Header.Get("OCI-Tag") != "v1,latest" {
		t.Fatalf("PUT ?tag=: %d %q %s", resp.StatusCode, resp.Header.Get("OCI-Tag"), b)
	}
	for _, tag := range []string{"v1", "latest"} {
		if r, _ := e.do(t, "GET", "/v2/x/r/manifests/"+tag, nil); r.StatusCode != 200 || r.Header.Get("Docker-Content-Digest") != d {
			t.Errorf("tag %s: %d %s", tag, r.StatusCode, r.Header.Get("Docker-Content-Digest"))
		}
	}
}

// TestBlobDeleteVisibleAtOnce: a blob deleted from a repository is gone
// for the next request on the same replica, whatever the link cache held.
func TestBlobDeleteVisibleAtOnce(t *testing.T) {
	e := newEnvWith(t, func(o *registry.Options) { o.PushPrefix = "x" })
	d := e.pushBlob(t, "x/r", ociLayer, []byte("short-lived"))
	if r, _ := e.do(t, "HEAD", "/v2/x/r/blobs/"+d.Digest, nil); r.StatusCode != 200 {
		t.Fatalf("HEAD before delete: %d", r.StatusCode)
	}
	if r, _ := e.do(t, "DELETE", "/v2/x/r/blobs/"+d.Digest, nil); r.StatusCode != 202 {
		t.Fatalf("DELETE: %d", r.StatusCode)
	}
	if r, _ := e.do(t, "HEAD", "/v2/x/r/blobs/"+d.Digest, nil); r.StatusCode != 404 {
		t.Fatalf("HEAD after delete: %d", r.StatusCode)
	}
}
