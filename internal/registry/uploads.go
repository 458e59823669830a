package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"strata/internal/storage"
)

// Uploads in progress live in the store, so any replica on the same store
// can continue them:
//
//	uploads/<id>/info                                 the repository and start time (JSON)
//	uploads/<id>/data/<start>-<end>-<sha256 of chunk>  one committed chunk: bytes [start, end)
//
// Each PATCH streams its body through sha256 into a staged writer committed
// as one chunk; the upload's offset is the end of its last chunk. The final
// PUT verifies the whole content against the client's digest and only then
// makes it visible under storage.BlobKey: a single sha256 chunk that already
// matches is moved there (storage.Mover, a rename on the filesystem); else
// the chunks are streamed through the hash into a new staged writer, which
// is committed only on a match. A chunk is never visible as a blob, and a
// client killed mid-PATCH leaves at most a staging file (removed by the
// backend) and earlier chunks (removed by garbage collection once the
// upload is older than its maximum age).
// uploadInfo is the stored state of an upload besides its chunks.
type uploadInfo struct {
	Repo    string    `json:"repo"`
	Started time.Time `json:"started"`
}

type chunk struct {
	key        string
	start, end int64
	sum        string // sha256 hex of the chunk
}

// lockUpload serialises requests on one upload (in this process).
func (h *handler) lockUpload(id string) func() {
	f := fnv.New32a()
	f.Write([]byte(id))
	m := &h.uploadMu[f.Sum32()%uint32(len(h.uploadMu))]
	m.Lock()
	return m.Unlock
}

// openUpload begins a request that changes the upload rt.ref: the
// repository must take pushes (checkPushable), then a slot for the
// request's data when it carries some (acquireUploadSlot), the upload's
// lock, and the chunks received so far. done gives back the lock and the
// slot.
func (h *handler) openUpload(ctx context.Context, w http.ResponseWriter, rt route, carriesData bool) (chunks []chunk, done func(), err error) {
	if err := h.checkPushable(rt.name); err != nil {
		return nil, nil, err
	}
	release := func() {}
	if carriesData {
		if release, err = h.acquireUploadSlot(w); err != nil {
			return nil, nil, err
		}
	}
	unlock := h.lockUpload(rt.ref)
	done = func() {
		unlock()
		release()
	}
	if chunks, err = h.loadUpload(ctx, rt.name, rt.ref); err != nil {
		done()
		return nil, nil, err
	}
	return chunks, done, nil
}

// acquireUploadSlot limits concurrent requests that carry upload data.
func (h *handler) acquireUploadSlot(w http.ResponseWriter) (func(), error) {
	select {
	case h.uploadSem <- struct{}{}:
		return func() { <-h.uploadSem }, nil
	default:
		w.Header().Set("Retry-After", "1")
		return nil, NewError(CodeTooManyRequests, "too many concurrent uploads; retry later")
	}
}

func newUploadID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// loadUpload reads an upload's info and chunks; BLOB_UPLOAD_UNKNOWN when it
// does not exist or belongs to another repository.
func (h *handler) loadUpload(ctx context.Context, name, id string) ([]chunk, error) {
	unknown := NewError(CodeBlobUploadUnknown, "").WithDetail(map[string]string{"uuid": id})
	raw, err := getSmall(ctx, h.store, storage.UploadInfoKey(id), 64<<10)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, unknown
	}
	if err != nil {
		return nil, fmt.Errorf("registry: upload %s: %w", id, err)
	}
	var info uploadInfo
	if err := json.Unmarshal(raw, &info); err != nil || info.Repo != name {
		return nil, unknown
	}
	keys, err := h.store.List(ctx, storage.UploadDataPrefix(id))
	if err != nil {
		return nil, fmt.Errorf("registry: upload %s: %w", id, err)
	}
	var chunks []chunk
	var off int64
	for _, k := range keys {
		var c chunk
		parts := strings.SplitN(strings.TrimPrefix(k, storage.UploadDataPrefix(id)), "-", 3)
		if len(parts) != 3 {
			continue
		}
		c.key, c.sum = k, parts[2]
		c.start, _ = strconv.ParseInt(parts[0], 10, 64)
		c.end, _ = strconv.ParseInt(parts[1], 10, 64)
		if c.start != off || c.end < c.start {
			return nil, fmt.Errorf("registry: upload %s: chunks are not contiguous at %d", id, off)
		}
		off = c.end
		chunks = append(chunks, c)
	}
	return chunks, nil
}

func uploadOffset(chunks []chunk) int64 {
	if len(chunks) == 0 {
		return 0
	}
	return chunks[len(chunks)-1].end
}

// setUploadHeaders sets Location, Range and the upload UUID.
func setUploadHeaders(w http.ResponseWriter, name, id string, offset int64) {
	hd := w.Header()
	hd.Set("Location", "/v2/"+name+"/blobs/uploads/"+id)
	hd.Set("Docker-Upload-UUID", id)
	end := offset - 1
	if end < 0 {
		end = 0
	}
	hd.Set("Range", "0-"+itoa(end))
	hd.Set("Content-Length", "0")
}

// startUpload answers POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (?mount=&from=), a monolithic upload (?digest= with the body), or
// a new upload session (202 with its Location).
func (h *handler) startUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	if err := h.checkPushable(rt.name); err != nil {
		return err
	}
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		if d, err := ParseDigest(m); err == nil {
			ok, err := h.tryMount(r, rt.name, d.String(), q.Get("from"))
			if err != nil {
				return err
			}
			if ok {
				return blobCreated(w, rt.name, d.String())
			}
		}
	}
	if dg := q.Get("digest"); dg != "" {
		d, err := ParseDigest(dg)
		if err != nil {
			return err
		}
		release, err := h.acquireUploadSlot(w)
		if err != nil {
			return err
		}
		defer release()
		if err := h.putBlobDirect(ctx, r, rt.name, d.String()); err != nil {
			return err
		}
		return blobCreated(w, rt.name, d.String())
	}
	id := newUploadID()
	info, _ := json.Marshal(uploadInfo{Repo: rt.name, Started: time.Now().UTC()})
	if err := putSmall(ctx, h.store, storage.UploadInfoKey(id), info); err != nil {
		return err
	}
	setUploadHeaders(w, rt.name, id, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// blobCreated writes 201 for a blob now linked in name.
func blobCreated(w http.ResponseWriter, name, digest string) error {
	hd := w.Header()
	hd.Set("Location", "/v2/"+name+"/blobs/"+digest)
	hd.Set("Docker-Content-Digest", digest)
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// tryMount links digest into name from repository from. Without from, the
// blob is mounted from anywhere in the store only when every blob is
// readable anyway to this client (no access control, anonymous pull, or
// credentials that may pull every repository); else the client gets an
// upload session. A pushed source needs the blob linked there and
// pull access to it.
func (h *handler) tryMount(r *http.Request, name, digest, from string) (bool, error) {
	ctx := r.Context()
	if from == "" {
		if !h.autoMount && !h.auth.PullsEverything(r) {
			return false, nil
		}
	} else {
		if !ValidName(from) {
			return false, nil
		}
		if h.auth != nil {
			if res := h.auth.Check(r, from, "pull"); !res.Allowed {
				return false, nil
			}
		}
		if h.pushed(from) {
			ok, err := exists(ctx, h.store, storage.RepoBlobLinkKey(from, digest))
			if err != nil || !ok {
				return false, err
			}
		}
	}
	ok, err := exists(ctx, h.store, storage.BlobKey(digest))
	if err != nil || !ok {
		return false, err
	}
	return true, h.link(ctx, name, storage.RepoBlobLinkKey(name, digest), digest)
}

// link writes a repository link under the GC read lock, so an online
// garbage collection never sweeps between a push's check and its link.
func (h *handler) link(ctx context.Context, name, key, content string) error {
	h.gcMu.RLock()
	defer h.gcMu.RUnlock()
	h.cache.invalidate(name)
	return putSmall(ctx, h.store, key, []byte(content))
}

func newHash(digest string) hash.Hash {
	if strings.HasPrefix(digest, "sha512:") {
		return sha512.New()
	}
	return sha256.New()
}

// limitBody wraps the request body so that more than max bytes fail with
// SIZE_INVALID (413); max < 0 means no limit.
func (h *handler) checkSize(r *http.Request, already int64) (io.Reader, error) {
	if h.maxUpload <= 0 {
		return r.Body, nil
	}
	left := h.maxUpload - already
	if r.ContentLength > left {
		return nil, errTooLarge(h.maxUpload)
	}
	return &limitedBody{r: r.Body, left: left, max: h.maxUpload}, nil
}

func errTooLarge(max int64) *Error {
	return NewError(CodeSizeInvalid, fmt.Sprintf("blob larger than the registry's limit of %d bytes", max)).WithStatus(http.StatusRequestEntityTooLarge)
}

type limitedBody struct {
	r         io.Reader
	left, max int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, errTooLarge(l.max)
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, errTooLarge(l.max)
	}
	return n, err
}

// receive streams body through hs into a new staged writer. The caller
// commits or cancels it.
func (h *handler) receive(ctx context.Context, body io.Reader, hs ...hash.Hash) (storage.Writer, int64, error) {
	sw, err := h.store.Create(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("registry: upload: %w", err)
	}
	fw := &writeErr{w: sw}
	ws := []io.Writer{fw}
	for _, x := range hs {
		ws = append(ws, x)
	}
	bufp := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(io.MultiWriter(ws...), struct{ io.Reader }{body}, *bufp)
	copyBufs.Put(bufp)
	if err != nil {
		_ = sw.Cancel(ctx)
		if fw.err != nil {
			// The store failed, not the client: a 5xx, never 400.
			return nil, n, fmt.Errorf("registry: upload: %w", fw.err)
		}
		var re *Error
		if errors.As(err, &re) {
			return nil, n, re
		}
		if ctx.Err() != nil {
			return nil, n, ctx.Err()
		}
		return nil, n, NewError(CodeBlobUploadInvalid, "reading the request body failed")
	}
	return sw, n, nil
}

// writeErr remembers a write error of w, so that a failed copy can tell
// the store's failure from the client's.
type writeErr struct {
	w   io.Writer
	err error
}

func (f *writeErr) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err != nil && f.err == nil {
		f.err = err
	}
	return n, err
}

// putBlobDirect receives a whole blob in one request body and commits it
// under its digest only if the content matches.
func (h *handler) putBlobDirect(ctx context.Context, r *http.Request, name, digest string) error {
	body, err := h.checkSize(r, 0)
	if err != nil {
		return err
	}
	return h.receiveBlob(ctx, body, name, digest)
}

// receiveBlob streams body into a staged writer and commits it as the
// blob digest of name only if the content matches.
func (h *handler) receiveBlob(ctx context.Context, body io.Reader, name, digest string) error {
	hs := newHash(digest)
	sw, _, err := h.receive(ctx, body, hs)
	if err != nil {
		return err
	}
	if got := hashDigest(digest, hs); got != digest {
		_ = sw.Cancel(ctx)
		return errDigestMismatch(digest, got)
	}
	return h.commitBlob(ctx, sw, name, digest)
}

func hashDigest(want string, hs hash.Hash) string {
	alg, _, _ := strings.Cut(want, ":")
	return alg + ":" + hex.EncodeToString(hs.Sum(nil))
}

func errDigestMismatch(want, got string) *Error {
	return NewError(CodeDigestInvalid, "").WithDetail(map[string]string{"digest": want, "computed": got})
}

// commitBlob commits a verified writer under the blob key (unless the blob
// exists already) and links it into name.
func (h *handler) commitBlob(ctx context.Context, sw storage.Writer, name, digest string) error {
	return h.placeBlob(ctx, name, digest, func(key string, there bool) error {
		if there {
			_ = sw.Cancel(ctx)
			return nil
		}
		return sw.Commit(ctx, key)
	})
}

// placeBlob makes the verified blob digest visible under its key with put,
// which is told whether the blob is there already, and links it into name;
// garbage collection waits meanwhile.
func (h *handler) placeBlob(ctx context.Context, name, digest string, put func(key string, there bool) error) error {
	key := storage.BlobKey(digest)
	h.gcMu.RLock()
	defer h.gcMu.RUnlock()
	ok, _ := exists(ctx, h.store, key)
	if err := put(key, ok); err != nil {
		return fmt.Errorf("registry: commit blob %s: %w", digest, err)
	}
	h.cache.invalidate(name)
	return putSmall(ctx, h.store, storage.RepoBlobLinkKey(name, digest), []byte(digest))
}

// parseContentRange parses "start-end" (inclusive), with an optional
// "bytes " or "bytes=" prefix.
func parseContentRange(s string) (start, end int64, ok bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "bytes")
	s = strings.TrimLeft(s, " =")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

func errRange(offset int64) *Error {
	return NewError(CodeBlobUploadInvalid, fmt.Sprintf("chunk does not start at the upload's offset %d", offset)).WithStatus(http.StatusRequestedRangeNotSatisfiable)
}

// appendChunk stores the request body as the next chunk of an upload.
func (h *handler) appendChunk(ctx context.Context, r *http.Request, id string, chunks []chunk) ([]chunk, error) {
	off := uploadOffset(chunks)
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, end, ok := parseContentRange(cr)
		if !ok || start != off {
			return nil, errRange(off)
		}
		if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
			return nil, errRange(off)
		}
	}
	body, err := h.checkSize(r, off)
	if err != nil {
		return nil, err
	}
	hs := sha256.New()
	sw, n, err := h.receive(ctx, body, hs)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		_ = sw.Cancel(ctx)
		return chunks, nil
	}
	c := chunk{start: off, end: off + n, sum: hex.EncodeToString(hs.Sum(nil))}
	c.key = storage.UploadChunkKey(id, c.start, c.end, c.sum)
	if err := sw.Commit(ctx, c.key); err != nil {
		return nil, fmt.Errorf("registry: upload %s: %w", id, err)
	}
	return append(chunks, c), nil
}

// patchUpload answers PATCH /v2/<name>/blobs/uploads/<id>: streamed or
// chunked (Content-Range) data.
func (h *handler) patchUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	chunks, done, err := h.openUpload(ctx, w, rt, true)
	if err != nil {
		return err
	}
	defer done()
	chunks, err = h.appendChunk(ctx, r, rt.ref, chunks)
	if err != nil {
		return err
	}
	return uploadProgress(w, rt, chunks, http.StatusAccepted)
}

// uploadStatus answers GET /v2/<name>/blobs/uploads/<id>: 204 with the
// Range received so far.
func (h *handler) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) error {
	if err := h.checkPushable(rt.name); err != nil {
		return err
	}
	chunks, err := h.loadUpload(r.Context(), rt.name, rt.ref)
	if err != nil {
		return err
	}
	return uploadProgress(w, rt, chunks, http.StatusNoContent)
}

// uploadProgress answers a request on an upload with status, its Location
// and the Range received so far.
func uploadProgress(w http.ResponseWriter, rt route, chunks []chunk, status int) error {
	setUploadHeaders(w, rt.name, rt.ref, uploadOffset(chunks))
	w.WriteHeader(status)
	return nil
}

// cancelUpload answers DELETE /v2/<name>/blobs/uploads/<id>.
func (h *handler) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	_, done, err := h.openUpload(ctx, w, rt, false)
	if err != nil {
		return err
	}
	defer done()
	if err := h.removeUpload(ctx, rt.ref); err != nil {
		return err
	}
	return answerEmpty(w, http.StatusNoContent)
}

// removeUpload deletes an upload's info and chunks.
func (h *handler) removeUpload(ctx context.Context, id string) error {
	return removePrefix(ctx, h.store, storage.UploadPrefix(id))
}

func removePrefix(ctx context.Context, s storage.Store, prefix string) error {
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("registry: remove %s: %w", prefix, err)
	}
	for _, k := range keys {
		if err := s.Delete(ctx, k); err != nil {
			return fmt.Errorf("registry: remove %s: %w", prefix, err)
		}
	}
	return nil
}

// finishUpload answers PUT /v2/<name>/blobs/uploads/<id>?digest=: the last
// chunk (optional), verification, commit under the digest.
func (h *handler) finishUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	// Refused before the digest is looked at: a write outside the push
	// namespace is DENIED whatever it carries (openUpload checks again).
	if err := h.checkPushable(rt.name); err != nil {
		return err
	}
	dg := r.URL.Query().Get("digest")
	if dg == "" {
		return NewError(CodeDigestInvalid, "the digest query parameter is required")
	}
	d, err := ParseDigest(dg)
	if err != nil {
		return err
	}
	digest := d.String()
	chunks, done, err := h.openUpload(ctx, w, rt, true)
	if err != nil {
		return err
	}
	defer done()
	if len(chunks) == 0 {
		// The whole blob in this body: straight into a staged writer.
		if err := h.putBlobDirect(ctx, r, rt.name, digest); err != nil {
			return err
		}
	} else {
		if chunks, err = h.appendChunk(ctx, r, rt.ref, chunks); err != nil {
			return err
		}
		if err := h.assemble(ctx, rt.name, digest, chunks); err != nil {
			return err
		}
	}
	if err := h.removeUpload(ctx, rt.ref); err != nil {
		return err
	}
	return blobCreated(w, rt.name, digest)
}

// assemble verifies an upload's chunks against digest and commits them as
// the blob.
func (h *handler) assemble(ctx context.Context, name, digest string, chunks []chunk) error {
	if mv, ok := h.store.(storage.Mover); ok && len(chunks) == 1 && strings.HasPrefix(digest, "sha256:") {
		if "sha256:"+chunks[0].sum != digest {
			return errDigestMismatch(digest, "sha256:"+chunks[0].sum)
		}
		return h.placeBlob(ctx, name, digest, func(key string, there bool) error {
			if there {
				return nil
			}
			return mv.Move(ctx, chunks[0].key, key)
		})
	}
	readers := make([]io.Reader, 0, len(chunks))
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, c := range chunks {
		rc, err := h.store.Open(ctx, c.key)
		if err != nil {
			return fmt.Errorf("registry: upload chunk: %w", err)
		}
		closers = append(closers, rc)
		readers = append(readers, rc)
	}
	return h.receiveBlob(ctx, io.MultiReader(readers...), name, digest)
}
