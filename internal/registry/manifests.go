package registry

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/storage"
)

// getManifest answers GET and HEAD /v2/<name>/manifests/<ref>. This is the
// pull hot path: a cached manifest is served with header values built once,
// without a storage access.
func (h *handler) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	var m *cachedManifest
	var err error
	switch {
	case h.pushed(rt.name):
		m, err = h.pushedManifest(r.Context(), rt)
	case rt.isDigest():
		m, err = h.manifestByDigest(r, rt)
	default:
		m, err = h.onDemandManifest(r, rt)
	}
	if err != nil {
		return err
	}
	// Canonical keys, assigned directly.
	hd := w.Header()
	hd["Content-Type"] = m.contentType
	hd["Content-Length"] = m.contentLength
	hd["Docker-Content-Digest"] = m.dockerDigest
	hd["Etag"] = m.etag
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(m.body)
	}
	return nil
}

// onDemandManifest asks the Backend for an on-demand name's tag (which may
// build the image). The answer is cached for the cache's TTL, per name,
// tag and Accept header, so a package set that moves on is seen after at
// most the TTL. Concurrent misses share one Backend call, and a hit in the
// second half of the TTL refreshes the entry in the background, so a tag
// under steady load never expires in the middle of the traffic (what is
// served is still never older than the TTL).
func (h *handler) onDemandManifest(r *http.Request, rt route) (*cachedManifest, error) {
	now := h.now()
	var accept string
	if vs := r.Header["Accept"]; len(vs) == 1 {
		accept = vs[0]
	} else if len(vs) > 1 {
		accept = strings.Join(vs, ",")
	}
	key := refKey{kind: refOnDemand, name: rt.name, ref: rt.ref, accept: accept}
	if ref, ok := h.cache.ref(key, now); ok {
		if now.After(ref.refreshAt) {
			h.refreshOnDemand(r, rt, key, false)
		}
		return ref.m, nil
	}
	return h.refreshOnDemand(r, rt, key, true)
}

// refreshOnDemand asks the Backend for key once however many requests ask
// at the same time, and caches the answer. With wait false it returns at
// once and the answer lands in the cache later.
func (h *handler) refreshOnDemand(r *http.Request, rt route, key refKey, wait bool) (*cachedManifest, error) {
	accept := ParseAccept(r.Header.Values("Accept"))
	ctx := context.WithoutCancel(r.Context()) // shared by every waiter
	fkey := rt.name + "\x00" + rt.ref + "\x00" + key.accept
	ch := h.flight.DoChan(fkey, func() (any, error) {
		start := h.now()
		bm, err := h.backend.Manifest(ctx, rt.name, rt.ref, accept)
		if err != nil {
			return nil, err
		}
		if bm.Digest == "" {
			bm.Digest = computeDigest("sha256", bm.Body)
		}
		if bm.MediaType == "" {
			mt, err := detectManifest(bm.Body)
			if err != nil {
				return nil, fmt.Errorf("registry: backend manifest for %s:%s: %w", rt.name, rt.ref, err)
			}
			bm.MediaType = mt
		}
		m := h.cache.putManifest(newCachedManifest(bm.Body, bm.MediaType, bm.Digest)).withType(bm.MediaType)
		// The answer was current when the call started: its TTL runs from
		// then.
		h.cache.putRef(key, cachedRef{digest: m.digest, mediaType: m.mediaType, m: m}, start)
		return m, nil
	})
	if !wait {
		return nil, nil
	}
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*cachedManifest), nil
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
}

// manifestByDigest reads a manifest from the store, or the cache. Any
// repository name may read any stored manifest (see the package doc); what
// is read must parse as a manifest or index, and hash to the digest.
func (h *handler) manifestByDigest(r *http.Request, rt route) (*cachedManifest, error) {
	if m, ok := h.cache.manifest(rt.ref); ok {
		return m, nil
	}
	ctx := r.Context()
	key := storage.BlobKey(rt.ref)
	unknown := func() error {
		return NewError(CodeManifestUnknown, "").WithDetail(map[string]string{"digest": rt.ref})
	}
	info, err := h.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, unknown()
	}
	if err != nil {
		return nil, fmt.Errorf("registry: stat manifest %s: %w", rt.ref, err)
	}
	if info.Size > MaxManifestSize {
		return nil, unknown() // a large blob, not a manifest
	}
	rc, err := h.store.Open(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, unknown()
	}
	if err != nil {
		return nil, fmt.Errorf("registry: open manifest %s: %w", rt.ref, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("registry: read manifest %s: %w", rt.ref, err)
	}
	if len(body) > MaxManifestSize {
		return nil, unknown()
	}
	if !digestMatches(rt.digest.Algorithm, rt.digest.Hex, body) {
		return nil, fmt.Errorf("registry: stored manifest %s does not match its digest", rt.ref)
	}
	mt, err := detectManifest(body)
	if err != nil {
		return nil, unknown()
	}
	return h.cache.putManifest(newCachedManifest(body, mt, rt.ref)), nil
}

// computeDigest returns the digest of body with the algorithm alg:
// sha512, else sha256.
func computeDigest(alg string, body []byte) string {
	if alg == "sha512" {
		sum := sha512.Sum512(body)
		return "sha512:" + hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// digestMatches reports whether body hashes to alg:hexDigest.
func digestMatches(alg, hexDigest string, body []byte) bool {
	return (alg == "sha256" || alg == "sha512") && computeDigest(alg, body) == alg+":"+hexDigest
}

// manifestFields are the fields that tell manifests and indexes apart.
type manifestFields struct {
	SchemaVersion *int            `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        json.RawMessage `json:"config"`
	Layers        json.RawMessage `json:"layers"`
	Manifests     json.RawMessage `json:"manifests"`
}

// Manifest media types the handler knows.
var knownManifestTypes = map[types.MediaType]bool{
	types.OCIManifestSchema1:    true,
	types.OCIImageIndex:         true,
	types.DockerManifestSchema2: true,
	types.DockerManifestList:    true,
}

// detectManifest validates body as an image manifest or index (schema
// version 2) and returns its media type: the mediaType field when present,
// else an index when it has "manifests", else a Docker manifest when its
// config is a Docker config, else an OCI manifest.
func detectManifest(body []byte) (string, error) {
	var f manifestFields
	if err := json.Unmarshal(body, &f); err != nil {
		return "", fmt.Errorf("not a manifest: %w", err)
	}
	if f.SchemaVersion == nil || *f.SchemaVersion != 2 {
		return "", errors.New("not a manifest: schemaVersion is not 2")
	}
	isArray := func(raw json.RawMessage) bool {
		var a []json.RawMessage
		return len(raw) > 0 && json.Unmarshal(raw, &a) == nil && a != nil
	}
	var config struct {
		MediaType string `json:"mediaType"`
	}
	hasConfig := len(f.Config) > 0 && json.Unmarshal(f.Config, &config) == nil && string(f.Config) != "null"
	index := isArray(f.Manifests)
	image := hasConfig && isArray(f.Layers)
	switch {
	case index == image:
		return "", errors.New("not a manifest: neither an image manifest nor an index")
	case f.MediaType != "":
		mt := types.MediaType(f.MediaType)
		if knownManifestTypes[mt] && mt.IsIndex() != index {
			return "", fmt.Errorf("not a manifest: mediaType %s does not match its fields", mt)
		}
		return f.MediaType, nil
	case index:
		return string(types.OCIImageIndex), nil
	case types.MediaType(config.MediaType) == types.DockerConfigJSON:
		return string(types.DockerManifestSchema2), nil
	default:
		return string(types.OCIManifestSchema1), nil
	}
}
