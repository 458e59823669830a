package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Options configure an S3 store. Only Bucket is required.
type S3Options struct {
	// Endpoint is the S3 API endpoint: "host[:port]" or a URL
	// ("http://minio:9000", "https://s3.eu-west-1.amazonaws.com"); a URL's
	// scheme decides between HTTP and HTTPS. Default "s3.amazonaws.com".
	Endpoint string
	// Bucket holds the objects; it must exist.
	Bucket string
	// Region of the bucket; default: asked of the endpoint (MinIO answers
	// us-east-1).
	Region string
	// Prefix is prepended to every key ("strata/" keeps the objects of
	// strata under strata/ in a shared bucket); default none.
	Prefix string
	// AccessKeyID and SecretAccessKey are static credentials; when both
	// are empty, the usual chain is used: AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), MINIO_ROOT_USER and
	// MINIO_ROOT_PASSWORD, then the instance's or pod's IAM role.
	AccessKeyID, SecretAccessKey, SessionToken string
	// Insecure talks plain HTTP to an Endpoint given without a scheme;
	// default false (HTTPS).
	Insecure bool
	// PublicEndpoint, when set, is the endpoint written into pre-signed
	// URLs (RedirectURL) when clients reach the object store by another
	// address than strata does; default Endpoint.
	PublicEndpoint string
	// TempDir holds staged writes larger than the in-memory limit until
	// they are uploaded by Commit; default os.TempDir().
	TempDir string
	// Transport is the HTTP transport; default minio-go's.
	Transport http.RoundTripper
}

// S3 is a Store on S3-compatible object storage (AWS S3, MinIO, Ceph RGW,
// R2 ...).
//
// Layout: the object under key "a/b/c" is the S3 object PREFIX + "a/b/c".
// Keys starting with "_staging" or "_locks" are reserved (ErrInvalidKey):
// "_locks/" holds the leases of TryLease, and "_staging" is kept reserved
// as on the filesystem backend so that a bucket and a directory accept the
// same keys. List never shows reserved objects.
//
// Staged writes: Create keeps up to stageMemLimit bytes in memory and
// spills anything larger to a temporary file in S3Options.TempDir. Commit
// uploads the bytes to the final key with one PUT, or for large objects a
// multipart upload whose object appears only when the upload completes.
// Either way S3 makes the object visible atomically: a reader sees the
// previous object or the complete new one, never a part, and of
// concurrent commits to one key the last to complete wins. A crash before
// or during Commit leaves no object under any key: only a temporary file
// (removed by NewS3 when older than StagingMaxAge, like the filesystem
// backend's staging files) and possibly an incomplete multipart upload,
// which S3 never shows as an object; NewS3 aborts those older than
// StagingMaxAge under the prefix (a bucket lifecycle rule
// AbortIncompleteMultipartUpload does the same without strata).
//
// Unlike a filesystem, S3 can hold both "a" and "a/b"; the backend does not
// forbid it.
//
// Open returns a reader that streams one GET from its start and, after a
// Seek elsewhere, issues a ranged GET pinned to the object's ETag
// (If-Match), so a reader never mixes two versions of an overwritten
// object: it fails instead.
//
// Errors for missing objects wrap ErrNotFound, for bad keys ErrInvalidKey.
// Credentials never appear in errors.
type S3 struct {
	client    *minio.Client
	core      minio.Core
	presign   *minio.Client
	bucket    string
	prefix    string
	tempDir   string
	condWrite bool // the server honours If-None-Match / If-Match on PUT
}

var (
	_ Store      = (*S3)(nil)
	_ Redirector = (*S3)(nil)
	_ Mover      = (*S3)(nil)
	_ Leaser     = (*S3)(nil)
)

// stageMemLimit is the largest staged write kept in memory; larger ones
// spill to a temporary file.
const stageMemLimit = 4 << 20

// s3PartSize is the part size of multipart uploads.
const s3PartSize = 16 << 20

// tempPattern names the spill files of staged writes.
const tempPattern = "strata-s3-stage-*"

// NewS3 connects to the bucket of opts, checks that it exists and that the
// credentials can read it, removes staged-write garbage older than
// StagingMaxAge, and returns the store.
func NewS3(ctx context.Context, opts S3Options) (*S3, error) {
	if opts.Bucket == "" {
		return nil, errors.New("storage: s3: no bucket given")
	}
	client, err := newMinioClient(opts.Endpoint, opts)
	if err != nil {
		return nil, err
	}
	s := &S3{
		client:  client,
		core:    minio.Core{Client: client},
		presign: client,
		bucket:  opts.Bucket,
		prefix:  normPrefix(opts.Prefix),
		tempDir: opts.TempDir,
	}
	if s.tempDir == "" {
		s.tempDir = os.TempDir()
	}
	ok, err := client.BucketExists(ctx, opts.Bucket)
	if err != nil {
		return nil, fmt.Errorf("storage: s3: bucket %q at %s: %w", opts.Bucket, client.EndpointURL().Host, s3Err(err))
	}
	if !ok {
		return nil, fmt.Errorf("storage: s3: bucket %q does not exist at %s; create it first (e.g. mc mb ALIAS/%s)", opts.Bucket, client.EndpointURL().Host, opts.Bucket)
	}
	if opts.PublicEndpoint != "" {
		region := opts.Region
		if region == "" {
			if region, err = client.GetBucketLocation(ctx, opts.Bucket); err != nil {
				return nil, fmt.Errorf("storage: s3: bucket %q location: %w", opts.Bucket, s3Err(err))
			}
		}
		po := opts
		po.Region = region
		if s.presign, err = newMinioClient(opts.PublicEndpoint, po); err != nil {
			return nil, err
		}
	}
	if err := s.cleanStaging(ctx, time.Now().Add(-StagingMaxAge)); err != nil {
		return nil, err
	}
	if s.condWrite, err = s.probeConditionalWrites(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// newMinioClient makes a client for endpoint with the credentials and
// settings of opts.
func newMinioClient(endpoint string, opts S3Options) (*minio.Client, error) {
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	secure := !opts.Insecure
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("storage: s3: endpoint %q: want host[:port] or http(s)://host[:port]", endpoint)
		}
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("storage: s3: endpoint %q: a path is not supported; give the bucket with the bucket option", endpoint)
		}
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	var creds *credentials.Credentials
	if opts.AccessKeyID != "" || opts.SecretAccessKey != "" {
		creds = credentials.NewStaticV4(opts.AccessKeyID, opts.SecretAccessKey, opts.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.IAM{},
		})
	}
	c, err := minio.New(endpoint, &minio.Options{Creds: creds, Secure: secure, Region: opts.Region, Transport: opts.Transport})
	if err != nil {
		return nil, fmt.Errorf("storage: s3: endpoint %q: %w", endpoint, err)
	}
	return c, nil
}

// normPrefix makes a non-empty prefix end with one "/".
func normPrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// Bucket returns the bucket name.
func (s *S3) Bucket() string { return s.bucket }

// ConditionalWrites reports whether the server honours conditional PUTs
// (If-None-Match: *), which make TryLease exclusive; see TryLease.
func (s *S3) ConditionalWrites() bool { return s.condWrite }

// reserved reports whether key lies in a directory the backend keeps for
// itself.
func reserved(key string) bool {
	for _, d := range []string{StagingDir, locksDir} {
		if key == d || strings.HasPrefix(key, d+"/") {
			return true
		}
	}
	return false
}

// object validates key and returns its object name.
func (s *S3) object(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if reserved(key) {
		return "", fmt.Errorf("%w: %q is reserved", ErrInvalidKey, key)
	}
	return s.prefix + key, nil
}

// s3Code is the S3 error code of err ("" for a non-S3 error).
func s3Code(err error) string { return minio.ToErrorResponse(err).Code }

// isNoSuchKey reports whether err says the object does not exist.
func isNoSuchKey(err error) bool {
	switch s3Code(err) {
	case "NoSuchKey", "NotFound":
		return true
	}
	return minio.ToErrorResponse(err).StatusCode == http.StatusNotFound && s3Code(err) != "NoSuchBucket"
}

// isPreconditionFailed reports whether a conditional request lost.
func isPreconditionFailed(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == "PreconditionFailed" || r.Code == "ConditionalRequestConflict" ||
		r.StatusCode == http.StatusPreconditionFailed || r.StatusCode == http.StatusConflict
}

// s3Err reduces an S3 error to its code and message: minio-go's errors hold
// no credentials, but this keeps request details (host, request ids) out of
// the messages shown to users.
func s3Err(err error) error {
	r := minio.ToErrorResponse(err)
	if r.Code == "" {
		return err
	}
	msg := r.Message
	if msg == "" {
		msg = http.StatusText(r.StatusCode)
	}
	return &S3Error{Code: r.Code, Message: msg, Status: r.StatusCode, err: err}
}

// S3Error is an error answered by the object store.
type S3Error struct {
	Code    string // S3 error code, e.g. "AccessDenied"
	Message string
	Status  int // HTTP status
	err     error
}

func (e *S3Error) Error() string { return "s3: " + e.Code + ": " + e.Message }

// Unwrap returns minio-go's error.
func (e *S3Error) Unwrap() error { return e.err }

// Is makes an object store that is full or over its quota a storage fault
// (see FaultOf), like a full disk: errors.Is(err, syscall.ENOSPC) or
// syscall.EDQUOT.
func (e *S3Error) Is(target error) bool {
	switch target {
	case syscall.ENOSPC:
		return e.Status == http.StatusInsufficientStorage || e.Code == "XMinioStorageFull" || e.Code == "InsufficientStorage"
	case syscall.EDQUOT:
		return e.Code == "QuotaExceeded" || e.Code == "XMinioAdminBucketQuotaExceeded"
	}
	return false
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	obj, err := s.object(key)
	if err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, obj, minio.StatObjectOptions{})
	if err != nil {
		if isNoSuchKey(err) {
			return Info{}, fmt.Errorf("stat %q: %w", key, ErrNotFound)
		}
		return Info{}, fmt.Errorf("storage: stat %q: %w", key, s3Err(err))
	}
	return Info{Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Open implements Store. It starts a GET of the whole object; see the type
// doc for seeking.
func (s *S3) Open(ctx context.Context, key string) (io.ReadSeekCloser, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	// The reader outlives Open's caller in places (layers read lazily);
	// Close, not ctx, ends its requests.
	rctx := context.WithoutCancel(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	body, oi, _, err := s.core.GetObject(rctx, s.bucket, obj, minio.GetObjectOptions{})
	if err != nil {
		if isNoSuchKey(err) {
			return nil, fmt.Errorf("open %q: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("storage: open %q: %w", key, s3Err(err))
	}
	return &s3Reader{s: s, ctx: rctx, key: key, obj: obj, size: oi.Size, etag: oi.ETag, body: body}, nil
}

// s3Reader reads one version of an object (see S3).
type s3Reader struct {
	s        *S3
	ctx      context.Context
	key, obj string
	size     int64
	etag     string
	off      int64         // logical offset
	body     io.ReadCloser // nil: none open
	bodyOff  int64         // offset of body's next byte
	closed   bool
}

func (r *s3Reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("storage: read of a closed object")
	}
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.body != nil && r.bodyOff != r.off {
		r.body.Close()
		r.body = nil
	}
	if r.body == nil {
		o := minio.GetObjectOptions{}
		if err := o.SetRange(r.off, 0); err != nil {
			return 0, fmt.Errorf("storage: read %q: %w", r.key, err)
		}
		if r.etag != "" {
			if err := o.SetMatchETag(r.etag); err != nil {
				return 0, fmt.Errorf("storage: read %q: %w", r.key, err)
			}
		}
		body, _, _, err := r.s.core.GetObject(r.ctx, r.s.bucket, r.obj, o)
		if err != nil {
			if isPreconditionFailed(err) || isNoSuchKey(err) {
				return 0, fmt.Errorf("storage: read %q: the object was replaced or deleted while being read", r.key)
			}
			return 0, fmt.Errorf("storage: read %q: %w", r.key, s3Err(err))
		}
		r.body, r.bodyOff = body, r.off
	}
	n, err := r.body.Read(p)
	r.off += int64(n)
	r.bodyOff += int64(n)
	if err == io.EOF {
		if r.off < r.size {
			return n, fmt.Errorf("storage: read %q: %w", r.key, io.ErrUnexpectedEOF)
		}
		return n, io.EOF
	}
	if err != nil {
		return n, fmt.Errorf("storage: read %q: %w", r.key, s3Err(err))
	}
	return n, nil
}

func (r *s3Reader) Seek(offset int64, whence int) (int64, error) {
	if r.closed {
		return 0, errors.New("storage: seek of a closed object")
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return 0, fmt.Errorf("storage: seek %q: invalid whence %d", r.key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("storage: seek %q: negative position", r.key)
	}
	r.off = abs
	return abs, nil
}

func (r *s3Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}

// Create implements Store.
func (s *S3) Create(ctx context.Context) (Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &s3Writer{s: s}, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	obj, err := s.object(key)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{}); err != nil && !isNoSuchKey(err) {
		return fmt.Errorf("storage: delete %q: %w", key, s3Err(err))
	}
	return nil
}

// List implements Store: every key that starts with prefix, sorted.
// Reserved keys are never listed.
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	if err := CheckPrefix(prefix); err != nil {
		return nil, err
	}
	var keys []string
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if oi.Err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("storage: list %q: %w", prefix, s3Err(oi.Err))
		}
		key := strings.TrimPrefix(oi.Key, s.prefix)
		if reserved(key) || !ValidKey(key) || strings.HasSuffix(oi.Key, "/") {
			continue // ours, or not written by strata
		}
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys, nil
}

// Move implements Mover with a server-side copy and a delete of the source:
// the bytes do not pass through strata, though the object store copies
// them (S3 has no rename). The copy is atomic like any PUT. If deleting
// the source fails, the error is returned and both keys hold the object.
func (s *S3) Move(ctx context.Context, from, to string) error {
	src, err := s.object(from)
	if err != nil {
		return err
	}
	dst, err := s.object(to)
	if err != nil {
		return err
	}
	// ComposeObject copies objects above 5 GiB part by part, where a
	// plain CopyObject fails.
	_, err = s.client.ComposeObject(ctx,
		minio.CopyDestOptions{Bucket: s.bucket, Object: dst},
		minio.CopySrcOptions{Bucket: s.bucket, Object: src})
	if err != nil {
		if isNoSuchKey(err) {
			return fmt.Errorf("move %q: %w", from, ErrNotFound)
		}
		return fmt.Errorf("storage: move %q to %q: %w", from, to, s3Err(err))
	}
	if err := s.client.RemoveObject(ctx, s.bucket, src, minio.RemoveObjectOptions{}); err != nil && !isNoSuchKey(err) {
		return fmt.Errorf("storage: move %q to %q: delete source: %w", from, to, s3Err(err))
	}
	return nil
}

// maxPresign is the longest validity S3 allows a pre-signed URL.
const maxPresign = 7 * 24 * time.Hour

// RedirectURL implements Redirector: a pre-signed GET URL of the object,
// valid for ttl (at least a second, at most seven days), on
// S3Options.PublicEndpoint when set. It does not check that the object
// exists.
func (s *S3) RedirectURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	obj, err := s.object(key)
	if err != nil {
		return "", err
	}
	ttl = min(max(ttl, time.Second), maxPresign)
	u, err := s.presign.PresignedGetObject(ctx, s.bucket, obj, ttl, nil)
	if err != nil {
		return "", fmt.Errorf("storage: pre-sign %q: %w", key, s3Err(err))
	}
	return u.String(), nil
}

// cleanStaging removes spill files and aborts incomplete multipart uploads
// under the prefix that started before cutoff.
func (s *S3) cleanStaging(ctx context.Context, cutoff time.Time) error {
	if matches, err := filepath.Glob(filepath.Join(s.tempDir, tempPattern)); err == nil {
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.ModTime().Before(cutoff) {
				os.Remove(m)
			}
		}
	}
	// Listed from the bucket's root and filtered here: MinIO takes a
	// prefix as one exact object name when listing uploads.
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, "", true) {
		if u.Err != nil {
			// Some S3-compatible stores do not list uploads; a lifecycle
			// rule can clean them instead.
			if s3Code(u.Err) == "NotImplemented" {
				return nil
			}
			return fmt.Errorf("storage: s3: list incomplete uploads: %w", s3Err(u.Err))
		}
		if strings.HasPrefix(u.Key, s.prefix) && u.Initiated.Before(cutoff) {
			if err := s.core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID); err != nil && s3Code(err) != "NoSuchUpload" {
				return fmt.Errorf("storage: s3: abort stale upload: %w", s3Err(err))
			}
		}
	}
	return nil
}

// s3Writer is a staged write: in memory, then in a temporary file.
type s3Writer struct {
	staging
	s   *S3
	buf []byte
	f   *os.File
}

func (w *s3Writer) Write(p []byte) (int, error) {
	return w.write(p, w.stage)
}

// stage keeps p in memory up to stageMemLimit bytes, and in a temporary
// file from there on.
func (w *s3Writer) stage(p []byte) (int, error) {
	if w.f == nil && len(w.buf)+len(p) <= stageMemLimit {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if w.f == nil {
		f, err := os.CreateTemp(w.s.tempDir, tempPattern)
		if err != nil {
			return 0, fmt.Errorf("storage: s3: create staging file: %w", err)
		}
		w.f = f
		if _, err := f.Write(w.buf); err != nil {
			return 0, fmt.Errorf("storage: s3: write staging file: %w", err)
		}
		w.buf = nil
	}
	n, err := w.f.Write(p)
	if err != nil {
		return n, fmt.Errorf("storage: s3: write staging file: %w", err)
	}
	return n, nil
}

// release drops the staged bytes.
func (w *s3Writer) release() {
	w.buf = nil
	if w.f != nil {
		w.f.Close()
		os.Remove(w.f.Name())
		w.f = nil
	}
}

// Commit implements Writer: one PUT (multipart above the part size) to
// the final key.
func (w *s3Writer) Commit(ctx context.Context, key string) error {
	if !w.finish() {
		return errWriterDone
	}
	defer w.mu.Unlock()
	defer w.release()
	obj, err := w.s.object(key)
	if err != nil {
		return err
	}
	if w.err != nil {
		return fmt.Errorf("storage: commit %q: %w", key, w.err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: commit %q: %w", key, err)
	}
	var r io.Reader = bytes.NewReader(w.buf)
	if w.f != nil {
		if _, err := w.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("storage: commit %q: %w", key, err)
		}
		r = w.f
	}
	_, err = w.s.client.PutObject(ctx, w.s.bucket, obj, r, w.size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    s3PartSize,
	})
	if err != nil {
		return fmt.Errorf("storage: commit %q: %w", key, s3Err(err))
	}
	return nil
}

// Cancel implements Writer.
func (w *s3Writer) Cancel(ctx context.Context) error {
	if !w.finish() {
		return nil
	}
	defer w.mu.Unlock()
	w.release()
	return nil
}

// randomID returns 16 random hex digits.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
