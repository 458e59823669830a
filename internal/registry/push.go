package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

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

// answerEmpty answers a write with status and no body.
func answerEmpty(w http.ResponseWriter, status int) error {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
	return nil
}

// manifestMediaTypes are the media types a pushed manifest may have.
var manifestMediaTypes = map[string]bool{
	string(types.OCIManifestSchema1):    true,
	string(types.OCIImageIndex):         true,
	string(types.DockerManifestSchema2): true,
	string(types.DockerManifestList):    true,
}

// manifestContentType checks a manifest PUT's Content-Type against the
// body, as CNCF distribution does, and returns the media type to store: a
// Content-Type that is not a manifest type (other than none or
// application/json, which leave it to the body) is MANIFEST_INVALID, and so
// is one that disagrees with the body's mediaType or kind (image or index).
// A body without mediaType takes the Content-Type's.
func manifestContentType(header, detected string, pm parsedManifest) (string, error) {
	ct, _, _ := strings.Cut(header, ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	mt := detected
	switch {
	case ct == "" || ct == "application/json":
	case !manifestMediaTypes[ct]:
		return "", NewError(CodeManifestInvalid, fmt.Sprintf("Content-Type %s is not a manifest media type: send one of %s",
			truncate(ct, 100), strings.Join(sortedManifestTypes(), ", "))).WithDetail(map[string]string{"contentType": truncate(ct, 100)})
	case ct != mt:
		if pm.MediaType != "" || types.MediaType(ct).IsIndex() != types.MediaType(mt).IsIndex() {
			return "", NewError(CodeManifestInvalid, fmt.Sprintf("Content-Type %s does not match the manifest's media type %s", ct, mt)).
				WithDetail(map[string]string{"contentType": ct, "mediaType": mt})
		}
		mt = ct
	}
	if !manifestMediaTypes[mt] {
		return "", NewError(CodeManifestInvalid, fmt.Sprintf("manifest media type %s is not supported: use one of %s",
			truncate(mt, 100), strings.Join(sortedManifestTypes(), ", "))).WithDetail(map[string]string{"mediaType": truncate(mt, 100)})
	}
	return mt, nil
}

func sortedManifestTypes() []string {
	return slices.Sorted(maps.Keys(manifestMediaTypes))
}

// nonDistributable reports whether a layer of this media type may live
// outside the registry, at its descriptor's urls.
func nonDistributable(mediaType string) bool {
	switch types.MediaType(mediaType) {
	case types.OCIRestrictedLayer, types.OCIUncompressedRestrictedLayer, types.DockerForeignLayer,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
		return true
	}
	return false
}

// checkReferences checks what a manifest points at, as CNCF distribution
// does: every config and layer blob is linked in the repository (a
// non-distributable layer with urls excepted), every child of an index is
// a manifest (or blob) of the repository, and every descriptor's size is
// the stored object's. A missing one is MANIFEST_BLOB_UNKNOWN, a wrong size
// MANIFEST_INVALID, both 400. The subject may be missing: the spec lets a
// referrer be pushed before its subject.
func (h *handler) checkReferences(ctx context.Context, name, mt string, pm parsedManifest) error {
	var refs []manifestRef
	if types.MediaType(mt).IsIndex() {
		for _, c := range pm.Manifests {
			refs = append(refs, manifestRef{c, "manifest", true})
		}
	} else {
		if pm.Config == nil {
			return NewError(CodeManifestInvalid, "an image manifest needs a config descriptor")
		}
		refs = append(refs, manifestRef{*pm.Config, "config", false})
		for _, l := range pm.Layers {
			refs = append(refs, manifestRef{l, "layer", false})
		}
	}
	if pm.Subject != nil {
		if _, err := ParseDigest(pm.Subject.Digest); err != nil {
			return NewError(CodeManifestInvalid, "invalid subject digest").WithDetail(map[string]string{"digest": truncate(pm.Subject.Digest, 200)})
		}
	}
	for _, r := range refs {
		if _, err := ParseDigest(r.d.Digest); err != nil {
			return NewError(CodeManifestInvalid, fmt.Sprintf("invalid %s digest in manifest", r.what)).WithDetail(map[string]string{"digest": truncate(r.d.Digest, 200)})
		}
		if r.d.Size < 0 {
			return NewError(CodeManifestInvalid, fmt.Sprintf("negative size of %s %s", r.what, r.d.Digest)).WithDetail(map[string]any{"digest": r.d.Digest, "size": r.d.Size})
		}
		if r.what == "layer" && len(r.d.URLs) > 0 && nonDistributable(r.d.MediaType) {
			for _, u := range r.d.URLs {
				if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
					return NewError(CodeManifestInvalid, "a non-distributable layer's urls must be http(s) URLs").WithDetail(map[string]string{"digest": r.d.Digest, "url": truncate(u, 200)})
				}
			}
			continue
		}
		if err := h.checkStored(ctx, name, r); err != nil {
			return err
		}
	}
	return nil
}

// manifestRef is a descriptor a pushed manifest holds: what it is
// (manifest, config, layer), and whether it is an index's child.
type manifestRef struct {
	d     descriptor
	what  string
	child bool
}

// checkStored checks that r's content is in repository name (linked,
// with its bytes) and has the size its descriptor says.
func (h *handler) checkStored(ctx context.Context, name string, r manifestRef) error {
	linked, err := exists(ctx, h.store, storage.RepoBlobLinkKey(name, r.d.Digest))
	if err == nil && !linked && r.child {
		linked, err = exists(ctx, h.store, storage.RepoManifestLinkKey(name, r.d.Digest))
	}
	if err != nil {
		return err
	}
	var info storage.Info
	if linked {
		info, err = h.store.Stat(ctx, storage.BlobKey(r.d.Digest))
		if errors.Is(err, storage.ErrNotFound) {
			linked = false // a link whose bytes a collection removed
		} else if err != nil {
			return fmt.Errorf("registry: stat %s: %w", r.d.Digest, err)
		}
	}
	if !linked {
		return NewError(CodeManifestBlobUnknown, fmt.Sprintf("the %s %s is not in repository %s: push it first", r.what, r.d.Digest, truncate(name, 200))).
			WithDetail(map[string]string{"digest": r.d.Digest})
	}
	if info.Size != r.d.Size {
		return NewError(CodeManifestInvalid, fmt.Sprintf("the %s descriptor of %s says %d bytes, the stored content has %d", r.what, r.d.Digest, r.d.Size, info.Size)).
			WithDetail(map[string]any{"digest": r.d.Digest, "size": r.d.Size, "stored": info.Size})
	}
	return nil
}

// putManifest answers PUT /v2/<name>/manifests/<ref>.
func (h *handler) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	if err := h.checkPushable(rt.name); err != nil {
		return err
	}
	body, err := readManifestBody(r)
	if err != nil {
		return err
	}
	mt, err := detectManifest(body)
	if err != nil {
		return NewError(CodeManifestInvalid, err.Error())
	}
	pm, err := parseManifest(body)
	if err != nil {
		return NewError(CodeManifestInvalid, err.Error())
	}
	mt, err = manifestContentType(r.Header.Get("Content-Type"), mt, pm)
	if err != nil {
		return err
	}
	alg := "sha256"
	if rt.isDigest() {
		alg = rt.digest.Algorithm
	}
	digest := computeDigest(alg, body)
	if rt.isDigest() && digest != rt.ref {
		return errDigestMismatch(rt.ref, digest)
	}
	tags, err := manifestTags(r, rt)
	if err != nil {
		return err
	}
	if err := h.checkReferences(ctx, rt.name, mt, pm); err != nil {
		return err
	}
	if err := h.storeManifest(ctx, w, rt.name, digest, mt, body, pm, tags); err != nil {
		return err
	}
	hd := w.Header()
	if rt.isDigest() && len(tags) > 0 {
		hd.Set("OCI-Tag", strings.Join(tags, ","))
	}
	hd.Set("Location", "/v2/"+rt.name+"/manifests/"+digest)
	hd.Set("Docker-Content-Digest", digest)
	return answerEmpty(w, http.StatusCreated)
}

// readManifestBody reads a manifest PUT's body, at most MaxManifestSize
// bytes.
func readManifestBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxManifestSize {
		return nil, NewError(CodeManifestInvalid, fmt.Sprintf("manifest larger than %d bytes", MaxManifestSize)).WithStatus(http.StatusRequestEntityTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxManifestSize+1))
	if err != nil {
		return nil, NewError(CodeManifestInvalid, "reading the manifest failed")
	}
	if len(body) > MaxManifestSize {
		return nil, NewError(CodeManifestInvalid, fmt.Sprintf("manifest larger than %d bytes", MaxManifestSize)).WithStatus(http.StatusRequestEntityTooLarge)
	}
	return body, nil
}

// manifestTags are the tags a manifest PUT sets: its reference, or, for a
// PUT by digest, the tags it names (?tag=, distribution-spec 1.1+dev),
// which the response lists in OCI-Tag.
func manifestTags(r *http.Request, rt route) ([]string, error) {
	var tags []string
	if rt.isDigest() {
		tags = r.URL.Query()["tag"]
	} else {
		tags = []string{rt.ref}
	}
	for _, t := range tags {
		if !tagRE.MatchString(t) {
			return nil, NewError(CodeManifestInvalid, "invalid tag parameter: a tag matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}").WithDetail(map[string]string{"tag": truncate(t, 200)})
		}
	}
	return tags, nil
}

// storeManifest stores a checked manifest: its blob (unless there), its
// link in name, its referrers entry when it has a subject (and sets
// OCI-Subject), then its tags; garbage collection waits meanwhile.
func (h *handler) storeManifest(ctx context.Context, w http.ResponseWriter, name, digest, mt string, body []byte, pm parsedManifest, tags []string) error {
	h.gcMu.RLock()
	defer h.gcMu.RUnlock()
	h.cache.invalidate(name)
	key := storage.BlobKey(digest)
	if ok, _ := exists(ctx, h.store, key); !ok {
		if err := putSmall(ctx, h.store, key, body); err != nil {
			return err
		}
	}
	if err := putSmall(ctx, h.store, storage.RepoManifestLinkKey(name, digest), []byte(mt)); err != nil {
		return err
	}
	if pm.Subject != nil {
		at := pm.ArtifactType
		if at == "" && pm.Config != nil {
			at = pm.Config.MediaType
		}
		d := descriptor{MediaType: mt, Digest: digest, Size: int64(len(body)), ArtifactType: at, Annotations: pm.Annotations}
		raw, _ := json.Marshal(d)
		if err := putSmall(ctx, h.store, storage.RepoReferrerKey(name, pm.Subject.Digest, digest), raw); err != nil {
			return err
		}
		w.Header().Set("OCI-Subject", pm.Subject.Digest)
	}
	for _, t := range tags {
		if err := putSmall(ctx, h.store, storage.RepoTagKey(name, t), []byte(digest)); err != nil {
			return err
		}
	}
	h.cache.invalidate(name)
	return nil
}

// pushedManifest resolves a manifest of a pushed repository: by tag
// through the tag link, by digest through the manifest link. The resolved
// reference is cached for the cache's TTL (dropped at once by a write
// through this handler), the manifest by digest until evicted.
func (h *handler) pushedManifest(ctx context.Context, rt route) (*cachedManifest, error) {
	now := h.now()
	unknown := func() error {
		return NewError(CodeManifestUnknown, "").WithDetail(map[string]string{"name": rt.name, "reference": rt.ref})
	}
	key := refKey{kind: refPushed, name: rt.name, ref: rt.ref}
	ref, ok := h.cache.ref(key, now)
	if ok && ref.m != nil {
		return ref.m, nil
	}
	if !ok {
		digest := rt.ref
		if !rt.isDigest() {
			raw, err := getSmall(ctx, h.store, storage.RepoTagKey(rt.name, rt.ref), 1024)
			if errors.Is(err, storage.ErrNotFound) {
				return nil, unknown()
			}
			if err != nil {
				return nil, err
			}
			digest = strings.TrimSpace(string(raw))
		}
		raw, err := getSmall(ctx, h.store, storage.RepoManifestLinkKey(rt.name, digest), 1024)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, unknown()
		}
		if err != nil {
			return nil, err
		}
		ref = cachedRef{digest: digest, mediaType: strings.TrimSpace(string(raw))}
	}
	m, ok := h.cache.manifest(ref.digest)
	if !ok {
		body, err := getSmall(ctx, h.store, storage.BlobKey(ref.digest), MaxManifestSize)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, unknown()
		}
		if err != nil {
			return nil, err
		}
		alg, hexd, _ := strings.Cut(ref.digest, ":")
		if !digestMatches(alg, hexd, body) {
			return nil, fmt.Errorf("registry: stored manifest %s does not match its digest", ref.digest)
		}
		m = h.cache.putManifest(newCachedManifest(body, ref.mediaType, ref.digest))
	}
	ref.m = m.withType(ref.mediaType)
	h.cache.putRef(key, ref, now)
	return ref.m, nil
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
		ok, err := exists(ctx, h.store, storage.RepoTagKey(rt.name, rt.ref))
		if err != nil {
			return err
		}
		if !ok {
			return unknown
		}
		if err := h.store.Delete(ctx, storage.RepoTagKey(rt.name, rt.ref)); err != nil {
			return fmt.Errorf("registry: delete tag: %w", err)
		}
		return answerEmpty(w, http.StatusAccepted)
	}
	ok, err := exists(ctx, h.store, storage.RepoManifestLinkKey(rt.name, rt.ref))
	if err != nil {
		return err
	}
	if !ok {
		return unknown
	}
	if body, err := getSmall(ctx, h.store, storage.BlobKey(rt.ref), MaxManifestSize); err == nil {
		if pm, err := parseManifest(body); err == nil && pm.Subject != nil && pm.Subject.Digest != "" {
			if _, err := ParseDigest(pm.Subject.Digest); err == nil {
				if err := h.store.Delete(ctx, storage.RepoReferrerKey(rt.name, pm.Subject.Digest, rt.ref)); err != nil {
					return fmt.Errorf("registry: delete referrer: %w", err)
				}
			}
		}
	}
	tags, err := h.store.List(ctx, storage.RepoTagsPrefix(rt.name))
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
	if err := h.store.Delete(ctx, storage.RepoManifestLinkKey(rt.name, rt.ref)); err != nil {
		return fmt.Errorf("registry: delete manifest: %w", err)
	}
	return answerEmpty(w, http.StatusAccepted)
}

// deleteBlob answers DELETE /v2/<name>/blobs/<digest>: the blob is
// unlinked from the repository; its bytes go at the next garbage
// collection if nothing else uses them.
func (h *handler) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	if err := h.checkPushable(rt.name); err != nil {
		return err
	}
	key := storage.RepoBlobLinkKey(rt.name, rt.ref)
	defer h.cache.invalidate(rt.name)
	h.cache.invalidate(rt.name)
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
	return answerEmpty(w, http.StatusAccepted)
}

// pushedTags lists the tags of a pushed repository; NAME_UNKNOWN when the
// repository holds nothing.
func (h *handler) pushedTags(ctx context.Context, name string) ([]string, error) {
	keys, err := h.store.List(ctx, storage.RepoTagsPrefix(name))
	if err != nil {
		return nil, fmt.Errorf("registry: list tags: %w", err)
	}
	tags := make([]string, 0, len(keys))
	for _, k := range keys {
		tags = append(tags, strings.TrimPrefix(k, storage.RepoTagsPrefix(name)))
	}
	if len(tags) == 0 {
		any, err := h.store.List(ctx, storage.RepoPrefix(name)+"_")
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
		keys, err := h.store.List(ctx, storage.RepoReferrersPrefix(rt.name, rt.ref))
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
