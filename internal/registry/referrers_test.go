package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/registry"
	"strata/internal/storage"
	"strata/internal/storage/storagetest"
)

// referrersBackend is a fakeBackend that also lists on-demand referrers.
type referrersBackend struct {
	*fakeBackend
	refs map[string][]v1.Descriptor // subject digest → referrers
}

func (b *referrersBackend) Referrers(ctx context.Context, repo, digest string) ([]v1.Descriptor, error) {
	b.mu.Lock()
	b.calls = append(b.calls, "referrers "+repo+"@"+digest)
	b.mu.Unlock()
	return b.refs[digest], nil
}

func TestOnDemandReferrers(t *testing.T) {
	rb := &referrersBackend{fakeBackend: newFakeBackend(), refs: map[string][]v1.Descriptor{}}
	e := newEnvWith(t, func(o *registry.Options) { o.Backend = rb })
	subject := digestOf([]byte("subject"))
	sbom := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}, Size: 10,
		ArtifactType: "application/spdx+json", Annotations: map[string]string{"org.opencontainers.image.created": "1970-01-01T00:00:01Z"}}
	sig := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}, Size: 20,
		ArtifactType: "application/vnd.example.sig"}
	rb.refs[subject] = []v1.Descriptor{sbom, sig}

	get := func(query string) (*http.Response, []v1.Descriptor) {
		t.Helper()
		resp, body := e.do(t, "GET", "/v2/shell/hello/referrers/"+subject+query, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != string(types.OCIImageIndex) {
			t.Fatalf("referrers%s: %d %s %s", query, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		var idx v1.IndexManifest
		if err := json.Unmarshal(body, &idx); err != nil {
			t.Fatal(err)
		}
		if idx.SchemaVersion != 2 || idx.MediaType != types.OCIImageIndex {
			t.Fatalf("not an index: %s", body)
		}
		return resp, idx.Manifests
	}
	resp, all := get("")
	if len(all) != 2 || all[0].Digest != sig.Digest || all[1].Digest != sbom.Digest || resp.Header.Get("OCI-Filters-Applied") != "" {
		t.Fatalf("unfiltered: %+v, filters %q", all, resp.Header.Get("OCI-Filters-Applied"))
	}
	if all[1].ArtifactType != sbom.ArtifactType || all[1].Annotations["org.opencontainers.image.created"] == "" || all[1].Size != 10 {
		t.Errorf("descriptor not kept: %+v", all[1])
	}
	resp, only := get("?artifactType=application/spdx%2Bjson")
	if len(only) != 1 || only[0].Digest != sbom.Digest || resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered: %+v, filters %q", only, resp.Header.Get("OCI-Filters-Applied"))
	}
	_, none := get("?artifactType=application/other")
	if len(none) != 0 {
		t.Fatalf("filter for another type: %+v", none)
	}
	// A subject with no referrers: an empty index.
	if resp, _ := e.do(t, "GET", "/v2/hello/referrers/"+digestOf([]byte("other")), nil); resp.StatusCode != 200 {
		t.Fatalf("no referrers: %d", resp.StatusCode)
	}
	if n := rb.numCalls(); n != 4 {
		t.Errorf("backend asked %d times, want 4", n)
	}
}

// A backend without the optional interface has no on-demand referrers.
func TestOnDemandReferrersWithoutInterface(t *testing.T) {
	e := newEnv(t)
	resp, body := e.do(t, "GET", "/v2/hello/referrers/"+digestOf([]byte("x")), nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"manifests":[]`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// GC keeps what cache/referrers records name: the artifact manifest and,
// through it, its config and layer.
func TestGCKeepsReferrerRecords(t *testing.T) {
	e := newEnv(t)
	sbom := e.put(t, []byte(`{"spdxVersion":"SPDX-2.3"}`))
	emptyCfg := e.put(t, []byte(`{}`))
	subject := digestOf([]byte("subject"))
	art := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json",`+
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2,"data":"e30="},`+
		`"layers":[{"mediaType":"application/spdx+json","digest":%q,"size":26}],`+
		`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":7}}`, emptyCfg, sbom, subject))
	artD := e.put(t, art)
	orphan := e.put(t, []byte("orphan"))
	rec := fmt.Sprintf(`{"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"artifactType":"application/spdx+json"}]}`, artD, len(art))
	storagetest.Put(t, e.store, "cache/referrers/sha256-"+strings.TrimPrefix(subject, "sha256:")+".json", []byte(rec))
	rep, err := registry.CollectGarbage(context.Background(), e.store, registry.GCOptions{Grace: -1, Now: func() time.Time { return time.Now().Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blobs) != 1 || rep.Blobs[0] != orphan {
		t.Fatalf("removed %v, want only the orphan %s", rep.Blobs, orphan)
	}
	for _, d := range []string{sbom, emptyCfg, artD} {
		if _, err := e.store.Stat(context.Background(), storage.BlobKey(d)); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
}
