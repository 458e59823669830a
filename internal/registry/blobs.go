package registry

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"strata/internal/storage"
)

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
		ok, err := exists(ctx, h.store, blobLinkKey(rt.name, rt.ref))
		if err == nil && !ok {
			ok, err = exists(ctx, h.store, manifestLinkKey(rt.name, rt.ref))
		}
		if err != nil {
			return err
		}
		if !ok {
			return unknown()
		}
	}
	_, err := h.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return unknown()
	}
	if err != nil {
		return fmt.Errorf("registry: stat blob %s: %w", rt.ref, err)
	}
	hd := w.Header()
	hd.Set("Docker-Content-Digest", rt.ref)
	hd.Set("ETag", `"`+rt.ref+`"`)
	hd.Set("Cache-Control", "max-age=31536000, immutable")

	if rd, ok := h.store.(storage.Redirector); ok && h.redirect > 0 && r.Method == http.MethodGet {
		url, err := rd.RedirectURL(ctx, key, h.redirect)
		if err != nil {
			return fmt.Errorf("registry: redirect blob %s: %w", rt.ref, err)
		}
		hd.Del("ETag")
		hd.Del("Cache-Control")
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
	hd.Set("Content-Type", "application/octet-stream")
	// ServeContent handles Range, If-Range, If-None-Match (with the ETag
	// above), HEAD, Content-Length and Accept-Ranges. The modtime is left
	// out: a blob is identified by its digest.
	http.ServeContent(w, r, "", time.Time{}, rc)
	return nil
}
