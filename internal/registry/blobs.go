package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"strata/internal/storage"
)

var (
	immutable   = []string{"max-age=31536000, immutable"}
	octetStream = []string{"application/octet-stream"}
)

// blobLinked reports whether digest is visible in the pushed repository
// name (a blob link, or a manifest link for clients that fetch manifests
// as blobs), through the short-lived reference cache.
func (h *handler) blobLinked(ctx context.Context, name, digest string) (bool, error) {
	now := h.now()
	ck := refKey{kind: refBlob, name: name, ref: digest}
	if _, ok := h.cache.ref(ck, now); ok {
		return true, nil
	}
	ok, err := exists(ctx, h.store, storage.RepoBlobLinkKey(name, digest))
	if err == nil && !ok {
		ok, err = exists(ctx, h.store, storage.RepoManifestLinkKey(name, digest))
	}
	if err != nil || !ok {
		return false, err
	}
	h.cache.putRef(ck, cachedRef{digest: digest}, now)
	return true, nil
}

// getBlob answers GET and HEAD /v2/<name>/blobs/<digest>: the blob from the
// store (any valid name may read any blob, see the package doc), with Range
// support, or a 307 to a pre-signed URL when the store can make one and
// Options.Redirect is set.
func (h *handler) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	key := storage.BlobKey(rt.ref)
	unknown := func() error {
		return NewError(CodeBlobUnknown, "").WithDetail(map[string]string{"digest": rt.ref})
	}
	if h.pushed(rt.name) {
		ok, err := h.blobLinked(ctx, rt.name, rt.ref)
		if err != nil {
			return err
		}
		if !ok {
			return unknown()
		}
	}
	hd := w.Header()
	if rd, ok := h.store.(storage.Redirector); ok && h.redirect > 0 && r.Method == http.MethodGet {
		_, err := h.store.Stat(ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			return unknown()
		}
		if err != nil {
			return fmt.Errorf("registry: stat blob %s: %w", rt.ref, err)
		}
		url, err := rd.RedirectURL(ctx, key, h.redirect)
		if err != nil {
			return fmt.Errorf("registry: redirect blob %s: %w", rt.ref, err)
		}
		hd.Set("Docker-Content-Digest", rt.ref)
		hd.Set("Location", url)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return nil
	}

	rc, err := h.store.Open(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return unknown()
	}
	if err != nil {
		return fmt.Errorf("registry: open blob %s: %w", rt.ref, err)
	}
	defer rc.Close()
	hd["Docker-Content-Digest"] = []string{rt.ref}
	hd["Etag"] = []string{`"` + rt.ref + `"`}
	hd["Cache-Control"] = immutable
	hd["Content-Type"] = octetStream
	// ServeContent handles Range, If-Range, If-None-Match (with the ETag
	// above), HEAD, Content-Length and Accept-Ranges. The modtime is left
	// out: a blob is identified by its digest.
	http.ServeContent(w, r, "", time.Time{}, rc)
	return nil
}
