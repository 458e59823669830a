package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/storage"
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// pushed reports whether name is in the push namespace: its first
// components are the push prefix and at least one more component follows.
// Every other name is an on-demand image name.
func (h *handler) pushed(name string) bool {
	return h.pushPrefix != "" && strings.HasPrefix(name, h.pushPrefix+"/")
}

// checkPushable refuses writes outside the push namespace with DENIED.
func (h *handler) checkPushable(name string) error {
	if h.pushPrefix == "" {
		return NewError(CodeDenied, "this registry does not accept pushes (strata serve --push-prefix is empty)")
	}
	if h.pushed(name) {
		return nil
	}
	return NewError(CodeDenied, fmt.Sprintf("repository %s is an on-demand image name and cannot be written: pushed repositories live under %s/ (e.g. %s/%s)",
		truncate(name, 255), h.pushPrefix, h.pushPrefix, truncate(name, 200))).WithDetail(map[string]string{"name": truncate(name, 255), "pushPrefix": h.pushPrefix + "/"})
}

// manifestMediaTypes are the media types a pushed manifest may have.
var manifestMediaTypes = map[string]bool{
	string(types.OCIManifestSchema1):    true,
	string(types.OCIImageIndex):         true,
	string(types.DockerManifestSchema2): true,
	string(types.DockerManifestList):    true,
}

// putManifest answers PUT /v2/<name>/manifests/<ref>.
func (h *handler) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	if err := h.checkPushable(rt.name); err != nil {
		return err
	}
	if r.ContentLength > MaxManifestSize {
		return NewError(CodeManifestInvalid, fmt.Sprintf("manifest larger than %d bytes", MaxManifestSize)).WithStatus(http.StatusRequestEntityTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxManifestSize+1))
	if err != nil {
		return NewError(CodeManifestInvalid, "reading the manifest failed")
	}
	if len(body) > MaxManifestSize {
		return NewError(CodeManifestInvalid, fmt.Sprintf("manifest larger than %d bytes", MaxManifestSize)).WithStatus(http.StatusRequestEntityTooLarge)
	}
	mt, err := detectManifest(body)
	if err != nil {
		return NewError(CodeManifestInvalid, err.Error())
	}
	pm, err := parseManifest(body)
	if err != nil {
		return NewError(CodeManifestInvalid, err.Error())
	}
	// The body's mediaType wins; without one, a manifest Content-Type of
	// the same kind (image or index) says which it is.
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	ct = strings.TrimSpace(ct)
	if manifestMediaTypes[ct] && ct != mt {
		if pm.MediaType != "" || types.MediaType(ct).IsIndex() != types.MediaType(mt).IsIndex() {
			return NewError(CodeManifestInvalid, fmt.Sprintf("Content-Type %s does not match the manifest's media type %s", ct, mt))
		}
		mt = ct
	}
	alg := "sha256"
	if rt.isDigest() {
		alg = rt.digest.Algorithm
	}
	digest := computeDigest(alg, body)
	if rt.isDigest() && digest != rt.ref {
		return errDigestMismatch(rt.ref, digest)
	}
	// An image manifest's config and layers must be in the repository.
	if !types.MediaType(mt).IsIndex() {
		var blobs []string
		if pm.Config != nil {
			blobs = append(blobs, pm.Config.Digest)
		}
		for _, l := range pm.Layers {
			blobs = append(blobs, l.Digest)
		}
		for _, b := range blobs {
			if _, err := ParseDigest(b); err != nil {
				return NewError(CodeManifestInvalid, "invalid digest in manifest").WithDetail(map[string]string{"digest": truncate(b, 200)})
			}
			ok, err := exists(ctx, h.store, blobLinkKey(rt.name, b))
			if err != nil {
				return err
			}
			if !ok {
				return NewError(CodeManifestBlobUnknown, "").WithDetail(map[string]string{"digest": b})
			}
		}
	}
	for _, c := range pm.Manifests {
		if _, err := ParseDigest(c.Digest); err != nil {
			return NewError(CodeManifestInvalid, "invalid digest in index").WithDetail(map[string]string{"digest": truncate(c.Digest, 200)})
		}
	}
	if pm.Subject != nil {
		if _, err := ParseDigest(pm.Subject.Digest); err != nil {
			return NewError(CodeManifestInvalid, "invalid subject digest").WithDetail(map[string]string{"digest": truncate(pm.Subject.Digest, 200)})
		}
	}

	h.gcMu.RLock()
	defer h.gcMu.RUnlock()
	h.cache.invalidate(rt.name)
	key := storage.BlobKey(digest)
	if ok, _ := exists(ctx, h.store, key); !ok {
		if err := putSmall(ctx, h.store, key, body); err != nil {
			return err
		}
	}
	if err := putSmall(ctx, h.store, manifestLinkKey(rt.name, digest), []byte(mt)); err != nil {
		return err
	}
	if pm.Subject != nil {
		at := pm.ArtifactType
		if at == "" && pm.Config != nil {
			at = pm.Config.MediaType
		}
		d := descriptor{MediaType: mt, Digest: digest, Size: int64(len(body)), ArtifactType: at, Annotations: pm.Annotations}
		raw, _ := json.Marshal(d)
		if err := putSmall(ctx, h.store, referrerKey(rt.name, pm.Subject.Digest, digest), raw); err != nil {
			return err
		}
		w.Header().Set("OCI-Subject", pm.Subject.Digest)
	}
	if !rt.isDigest() {
		if err := putSmall(ctx, h.store, tagKey(rt.name, rt.ref), []byte(digest)); err != nil {
			return err
		}
	}
	h.cache.invalidate(rt.name)
	hd := w.Header()
	hd.Set("Location", "/v2/"+rt.name+"/manifests/"+digest)
	hd.Set("Docker-Content-Digest", digest)
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func computeDigest(alg string, body []byte) string {
	if alg == "sha512" {
		sum := sha512.Sum512(body)
		return "sha512:" + hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pushedManifest resolves a manifest of a pushed repository: by tag
// through the tag link, by digest through the manifest link; both cached
// briefly.
func (h *handler) pushedManifest(ctx context.Context, rt route) (Manifest, error) {
	now := time.Now()
	unknown := func() error {
		return NewError(CodeManifestUnknown, "").WithDetail(map[string]string{"name": rt.name, "reference": rt.ref})
	}
	ref, ok := h.cache.ref(rt.name, rt.ref, now)
	if !ok {
		digest := rt.ref
		if !rt.isDigest() {
			raw, err := getSmall(ctx, h.store, tagKey(rt.name, rt.ref), 1024)
			if errors.Is(err, storage.ErrNotFound) {
				return Manifest{}, unknown()
			}
			if err != nil {
				return Manifest{}, err
			}
			digest = strings.TrimSpace(string(raw))
		}
		raw, err := getSmall(ctx, h.store, manifestLinkKey(rt.name, digest), 1024)
		if errors.Is(err, storage.ErrNotFound) {
			return Manifest{}, unknown()
		}
		if err != nil {
			return Manifest{}, err
		}
		ref = cachedRef{digest: digest, mediaType: strings.TrimSpace(string(raw))}
		h.cache.putRef(rt.name, rt.ref, ref, now)
	}
	if m, ok := h.cache.manifest(ref.digest); ok {
		return Manifest{Body: m.body, MediaType: ref.mediaType, Digest: ref.digest}, nil
	}
	body, err := getSmall(ctx, h.store, storage.BlobKey(ref.digest), MaxManifestSize)
	if errors.Is(err, storage.ErrNotFound) {
		return Manifest{}, unknown()
	}
	if err != nil {
		return Manifest{}, err
	}
	alg, hexd, _ := strings.Cut(ref.digest, ":")
	if !digestMatches(alg, hexd, body) {
		return Manifest{}, fmt.Errorf("registry: stored manifest %s does not match its digest", ref.digest)
	}
	h.cache.putManifest(ref.digest, &cachedManifest{body: body, mediaType: ref.mediaType})
	return Manifest{Body: body, MediaType: ref.mediaType, Digest: ref.digest}, nil
}

// deleteManifest answers DELETE /v2/<name>/manifests/<ref>: a tag removes
// the tag; a digest unlinks the manifest, removes every tag pointing at it
// and its referrers entry. Bytes go at the next garbage collection.
func (h *handler) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	if err := h.checkPushable(rt.name); err != nil {
		return err
	}
	unknown := NewError(CodeManifestUnknown, "").WithDetail(map[string]string{"name": rt.name, "reference": rt.ref})
	defer h.cache.invalidate(rt.name)
	h.cache.invalidate(rt.name)
	if !rt.isDigest() {
		ok, err := exists(ctx, h.store, tagKey(rt.name, rt.ref))
		if err != nil {
			return err
		}
		if !ok {
			return unknown
		}
		if err := h.store.Delete(ctx, tagKey(rt.name, rt.ref)); err != nil {
			return fmt.Errorf("registry: delete tag: %w", err)
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	ok, err := exists(ctx, h.store, manifestLinkKey(rt.name, rt.ref))
	if err != nil {
		return err
	}
	if !ok {
		return unknown
	}
	if body, err := getSmall(ctx, h.store, storage.BlobKey(rt.ref), MaxManifestSize); err == nil {
		if pm, err := parseManifest(body); err == nil && pm.Subject != nil && pm.Subject.Digest != "" {
			if _, err := ParseDigest(pm.Subject.Digest); err == nil {
				if err := h.store.Delete(ctx, referrerKey(rt.name, pm.Subject.Digest, rt.ref)); err != nil {
					return fmt.Errorf("registry: delete referrer: %w", err)
				}
			}
		}
	}
	tags, err := h.store.List(ctx, tagsPrefix(rt.name))
	if err != nil {
		return fmt.Errorf("registry: delete manifest: %w", err)
	}
	for _, k := range tags {
		raw, err := getSmall(ctx, h.store, k, 1024)
		if err == nil && strings.TrimSpace(string(raw)) == rt.ref {
			if err := h.store.Delete(ctx, k); err != nil {
				return fmt.Errorf("registry: delete tag: %w", err)
			}
		}
	}
	if err := h.store.Delete(ctx, manifestLinkKey(rt.name, rt.ref)); err != nil {
		return fmt.Errorf("registry: delete manifest: %w", err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// deleteBlob answers DELETE /v2/<name>/blobs/<digest>: the blob is
// unlinked from the repository; its bytes go at the next garbage
// collection if nothing else uses them.
func (h *handler) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	if err := h.checkPushable(rt.name); err != nil {
		return err
	}
	key := blobLinkKey(rt.name, rt.ref)
	ok, err := exists(ctx, h.store, key)
	if err != nil {
		return err
	}
	if !ok {
		return NewError(CodeBlobUnknown, "").WithDetail(map[string]string{"digest": rt.ref})
	}
	if err := h.store.Delete(ctx, key); err != nil {
		return fmt.Errorf("registry: delete blob: %w", err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// pushedTags lists the tags of a pushed repository; NAME_UNKNOWN when the
// repository holds nothing.
func (h *handler) pushedTags(ctx context.Context, name string) ([]string, error) {
	keys, err := h.store.List(ctx, tagsPrefix(name))
	if err != nil {
		return nil, fmt.Errorf("registry: list tags: %w", err)
	}
	tags := make([]string, 0, len(keys))
	for _, k := range keys {
		tags = append(tags, strings.TrimPrefix(k, tagsPrefix(name)))
	}
	if len(tags) == 0 {
		any, err := h.store.List(ctx, reposPrefix+name+"/_")
		if err != nil {
			return nil, fmt.Errorf("registry: list tags: %w", err)
		}
		if len(any) == 0 {
			return nil, NewError(CodeNameUnknown, "").WithDetail(map[string]string{"name": name})
		}
	}
	return tags, nil
}

// referrersIndex is the body of a referrers response.
type referrersIndex struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

// getReferrers answers GET /v2/<name>/referrers/<digest>[?artifactType=]:
// an image index of the manifests in name whose subject is digest (empty
// when there are none); for on-demand names, those the Backend lists when
// it implements ReferrersBackend.
func (h *handler) getReferrers(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	filter := r.URL.Query().Get("artifactType")
	out := referrersIndex{SchemaVersion: 2, MediaType: string(types.OCIImageIndex), Manifests: []descriptor{}}
	if h.pushed(rt.name) {
		keys, err := h.store.List(ctx, referrersPrefix(rt.name, rt.ref))
		if err != nil {
			return fmt.Errorf("registry: list referrers: %w", err)
		}
		for _, k := range keys {
			raw, err := getSmall(ctx, h.store, k, 1<<20)
			if err != nil {
				continue // deleted concurrently
			}
			var d descriptor
			if json.Unmarshal(raw, &d) != nil {
				continue
			}
			if filter != "" && d.ArtifactType != filter {
				continue
			}
			out.Manifests = append(out.Manifests, d)
		}
	} else {
		ds, err := h.backendReferrers(ctx, rt.name, rt.ref)
		if err != nil {
			return fmt.Errorf("registry: referrers of %s: %w", rt.ref, err)
		}
		for _, d := range ds {
			if filter == "" || d.ArtifactType == filter {
				out.Manifests = append(out.Manifests, d)
			}
		}
	}
	sort.Slice(out.Manifests, func(i, j int) bool { return out.Manifests[i].Digest < out.Manifests[j].Digest })
	out.Manifests = slices.CompactFunc(out.Manifests, func(a, b descriptor) bool { return a.Digest == b.Digest })
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(out); err != nil {
		return fmt.Errorf("registry: encode referrers: %w", err)
	}
	w.Header().Set("Content-Type", string(types.OCIImageIndex))
	w.Header().Set("Content-Length", itoa(int64(b.Len())))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b.Bytes())
	}
	return nil
}
