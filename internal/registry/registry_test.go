package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/registry"
	"strata/internal/storage"
)

const ociManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
	`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`

func TestBase(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/v2/", "/v2"} {
		resp, body := e.do(t, "GET", path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
		if v := resp.Header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
			t.Errorf("API version header = %q", v)
		}
		if resp.Header.Get("Content-Type") != "application/json" || strings.TrimSpace(string(body)) != "{}" {
			t.Errorf("body %q type %q", body, resp.Header.Get("Content-Type"))
		}
	}
	resp, body := e.do(t, "HEAD", "/v2/", nil)
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("HEAD /v2/ = %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = e.do(t, "POST", "/v2/", nil)
	wantError(t, resp, body, 405, registry.CodeUnsupported)
	// Errors carry the API version header too.
	if v := resp.Header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
		t.Errorf("API version header on error = %q", v)
	}
}

func TestManifestByTag(t *testing.T) {
	e := newEnv(t)
	body := []byte(ociManifest)
	d := digestOf(body)
	e.backend.manifests["shell/git:latest"] = registry.Manifest{Body: body, MediaType: string(types.OCIManifestSchema1), Digest: d}

	hdr := http.Header{"Accept": {
		"application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json;q=0.5",
		"application/vnd.oci.image.index.v1+json",
		"text/plain;q=0",
	}}
	resp, got := e.do(t, "GET", "/v2/shell/git/manifests/latest", hdr)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	if string(got) != ociManifest {
		t.Errorf("body = %s", got)
	}
	checkManifestHeaders(t, resp, string(types.OCIManifestSchema1), d, len(body))
	wantAccept := []string{
		"application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.oci.image.index.v1+json",
	}
	if got := e.backend.accepts[0]; !slices.Equal(got, wantAccept) {
		t.Errorf("backend got Accept %q, want %q", got, wantAccept)
	}

	resp, got = e.do(t, "HEAD", "/v2/shell/git/manifests/latest", nil)
	if resp.StatusCode != 200 || len(got) != 0 {
		t.Fatalf("HEAD = %d with %d bytes", resp.StatusCode, len(got))
	}
	checkManifestHeaders(t, resp, string(types.OCIManifestSchema1), d, len(body))

	// A backend answer without digest or media type gets both computed.
	e.backend.manifests["hello:v1"] = registry.Manifest{Body: body}
	resp, _ = e.do(t, "GET", "/v2/hello/manifests/v1", nil)
	checkManifestHeaders(t, resp, string(types.OCIManifestSchema1), d, len(body))

	// Unknown tag: the backend's MANIFEST_UNKNOWN.
	resp, got = e.do(t, "GET", "/v2/hello/manifests/nope", nil)
	se := wantError(t, resp, got, 404, registry.CodeManifestUnknown)
	if len(se.Errors) == 1 && se.Errors[0].Message != "unknown hello:nope" {
		t.Errorf("message = %q", se.Errors[0].Message)
	}
	resp, got = e.do(t, "HEAD", "/v2/hello/manifests/nope", nil)
	if resp.StatusCode != 404 || len(got) != 0 {
		t.Errorf("HEAD unknown = %d with %d bytes", resp.StatusCode, len(got))
	}
}

func checkManifestHeaders(t *testing.T, resp *http.Response, mediaType, digest string, size int) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != mediaType {
		t.Errorf("Content-Type = %q, want %q", ct, mediaType)
	}
	if dcd := resp.Header.Get("Docker-Content-Digest"); dcd != digest {
		t.Errorf("Docker-Content-Digest = %q, want %q", dcd, digest)
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(size) {
		t.Errorf("Content-Length = %q, want %d", cl, size)
	}
}

func TestManifestByDigest(t *testing.T) {
	e := newEnv(t)
	d := e.put(t, []byte(ociManifest))
	// Any valid name may fetch any stored manifest (on-demand namespace).
	for _, name := range []string{"hello", "shell/git", "a/b/c"} {
		resp, body := e.do(t, "GET", "/v2/"+name+"/manifests/"+d, nil)
		if resp.StatusCode != 200 || string(body) != ociManifest {
			t.Fatalf("GET %s@%s = %d %s", name, d, resp.StatusCode, body)
		}
		checkManifestHeaders(t, resp, string(types.OCIManifestSchema1), d, len(ociManifest))
		resp, body = e.do(t, "HEAD", "/v2/"+name+"/manifests/"+d, nil)
		if resp.StatusCode != 200 || len(body) != 0 {
			t.Fatalf("HEAD = %d, %d bytes", resp.StatusCode, len(body))
		}
		checkManifestHeaders(t, resp, string(types.OCIManifestSchema1), d, len(ociManifest))
	}
	if n := e.backend.numCalls(); n != 0 {
		t.Errorf("digest requests called the backend %d times", n)
	}

	// Media type fallback when the JSON has no mediaType field.
	for _, tc := range []struct{ body, want string }{
		{`{"schemaVersion":2,"manifests":[]}`, string(types.OCIImageIndex)},
		{`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[]}`, string(types.OCIManifestSchema1)},
		{`{"schemaVersion":2,"config":{"mediaType":"application/vnd.docker.container.image.v1+json"},"layers":[]}`, string(types.DockerManifestSchema2)},
		{`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`, string(types.DockerManifestList)},
	} {
		d := e.put(t, []byte(tc.body))
		resp, _ := e.do(t, "GET", "/v2/x/manifests/"+d, nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s: status %d", tc.body, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != tc.want {
			t.Errorf("%s: Content-Type %q, want %q", tc.body, ct, tc.want)
		}
	}

	// Blobs that are not manifests are not served as manifests.
	for _, notManifest := range []string{
		"just a layer",
		`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`,
		`{"schemaVersion":1,"config":{},"layers":[]}`,
		`{"schemaVersion":2}`,
		`{"schemaVersion":2,"manifests":[],"config":{},"layers":[]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","config":{},"layers":[]}`,
	} {
		d := e.put(t, []byte(notManifest))
		resp, body := e.do(t, "GET", "/v2/x/manifests/"+d, nil)
		wantError(t, resp, body, 404, registry.CodeManifestUnknown)
		// It is still a blob.
		if resp, _ := e.do(t, "GET", "/v2/x/blobs/"+d, nil); resp.StatusCode != 200 {
			t.Errorf("blob GET = %d", resp.StatusCode)
		}
	}

	missing := digestOf([]byte("missing"))
	resp, body := e.do(t, "GET", "/v2/x/manifests/"+missing, nil)
	wantError(t, resp, body, 404, registry.CodeManifestUnknown)
	resp, body = e.do(t, "GET", "/v2/x/manifests/sha512:"+strings.Repeat("ab", 64), nil)
	wantError(t, resp, body, 404, registry.CodeManifestUnknown)
}

func TestManifestCorruptInStore(t *testing.T) {
	e := newEnv(t)
	// A manifest stored under the wrong digest is an internal error, never
	// served.
	wrong := digestOf([]byte("other"))
	storagetestPut(t, e, storage.BlobKey(wrong), []byte(ociManifest))
	resp, body := e.do(t, "GET", "/v2/x/manifests/"+wrong, nil)
	wantError(t, resp, body, 500, registry.CodeUnknown)
}

func TestBlob(t *testing.T) {
	e := newEnv(t)
	data := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	d := e.put(t, data)
	path := "/v2/some/repo/blobs/" + d

	resp, body := e.do(t, "GET", path, nil)
	if resp.StatusCode != 200 || string(body) != string(data) {
		t.Fatalf("GET = %d %q", resp.StatusCode, body)
	}
	for k, want := range map[string]string{
		"Content-Type":          "application/octet-stream",
		"Content-Length":        strconv.Itoa(len(data)),
		"Docker-Content-Digest": d,
		"Accept-Ranges":         "bytes",
		"ETag":                  `"` + d + `"`,
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	resp, body = e.do(t, "HEAD", path, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Length") != strconv.Itoa(len(data)) {
		t.Fatalf("HEAD = %d, %d bytes, length %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
	}
	if resp.Header.Get("Docker-Content-Digest") != d {
		t.Errorf("HEAD digest = %q", resp.Header.Get("Docker-Content-Digest"))
	}

	resp, body = e.do(t, "GET", path, http.Header{"Range": {"bytes=10-19"}})
	if resp.StatusCode != http.StatusPartialContent || string(body) != "abcdefghij" {
		t.Fatalf("Range = %d %q", resp.StatusCode, body)
	}
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 10-19/%d", len(data)) {
		t.Errorf("Content-Range = %q", cr)
	}
	if resp.Header.Get("Content-Length") != "10" {
		t.Errorf("Content-Length = %q", resp.Header.Get("Content-Length"))
	}
	resp, body = e.do(t, "GET", path, http.Header{"Range": {"bytes=-5"}})
	if resp.StatusCode != 206 || string(body) != "vwxyz" {
		t.Errorf("suffix Range = %d %q", resp.StatusCode, body)
	}
	resp, _ = e.do(t, "GET", path, http.Header{"Range": {"bytes=1000-"}})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable Range = %d", resp.StatusCode)
	}
	resp, body = e.do(t, "GET", path, http.Header{"If-None-Match": {`"` + d + `"`}})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match = %d", resp.StatusCode)
	}

	missing := digestOf([]byte("nope"))
	resp, body = e.do(t, "GET", "/v2/some/repo/blobs/"+missing, nil)
	wantError(t, resp, body, 404, registry.CodeBlobUnknown)
	if resp.Header.Get("Docker-Content-Digest") != "" {
		t.Errorf("error response has Docker-Content-Digest")
	}
	resp, body = e.do(t, "HEAD", "/v2/some/repo/blobs/"+missing, nil)
	if resp.StatusCode != 404 || len(body) != 0 {
		t.Errorf("HEAD missing = %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestLargeBlobRange(t *testing.T) {
	e := newEnv(t)
	data := make([]byte, 5<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	d := e.put(t, data)
	resp, body := e.do(t, "GET", "/v2/r/blobs/"+d, nil)
	if resp.StatusCode != 200 || digestOf(body) != d {
		t.Fatalf("GET = %d, digest %s", resp.StatusCode, digestOf(body))
	}
	resp, body = e.do(t, "GET", "/v2/r/blobs/"+d, http.Header{"Range": {"bytes=4194304-"}})
	if resp.StatusCode != 206 || string(body) != string(data[4194304:]) {
		t.Fatalf("Range = %d, %d bytes", resp.StatusCode, len(body))
	}
}

// redirectStore adds pre-signed URLs to a store.
type redirectStore struct {
	storage.Store
}

func (redirectStore) RedirectURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	return "https://bucket.example/" + key + "?ttl=" + ttl.String(), nil
}

func TestBlobRedirect(t *testing.T) {
	e := newEnvWith(t, func(o *registry.Options) {
		o.Store = redirectStore{o.Store}
		o.Redirect = 10 * time.Minute
	})
	d := e.put(t, []byte("redirected"))
	resp, _ := e.do(t, "GET", "/v2/r/blobs/"+d, nil)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("status %d, want 307", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "https://bucket.example/"+storage.BlobKey(d)+"?ttl=10m0s" {
		t.Errorf("Location = %q", loc)
	}
	if resp.Header.Get("Docker-Content-Digest") != d {
		t.Errorf("Docker-Content-Digest = %q", resp.Header.Get("Docker-Content-Digest"))
	}
	// Missing blobs are 404, not a redirect.
	resp, body := e.do(t, "GET", "/v2/r/blobs/"+digestOf([]byte("x")), nil)
	wantError(t, resp, body, 404, registry.CodeBlobUnknown)
	// HEAD is answered locally.
	resp, _ = e.do(t, "HEAD", "/v2/r/blobs/"+d, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != "10" {
		t.Errorf("HEAD = %d, length %q", resp.StatusCode, resp.Header.Get("Content-Length"))
	}

	// Without Options.Redirect the blob is served directly.
	e2 := newEnvWith(t, func(o *registry.Options) { o.Store = redirectStore{o.Store} })
	d = e2.put(t, []byte("direct"))
	resp, body = e2.do(t, "GET", "/v2/r/blobs/"+d, nil)
	if resp.StatusCode != 200 || string(body) != "direct" {
		t.Errorf("GET = %d %q", resp.StatusCode, body)
	}
}

func TestTags(t *testing.T) {
	e := newEnv(t)
	e.backend.tags["shell/git"] = []string{"v2", "latest", "v1", "a", "v1"}
	get := func(query string) (*http.Response, []string) {
		t.Helper()
		resp, body := e.do(t, "GET", "/v2/shell/git/tags/list"+query, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("tags%s = %d %s", query, resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		var tl struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &tl); err != nil {
			t.Fatal(err)
		}
		if tl.Name != "shell/git" {
			t.Errorf("name = %q", tl.Name)
		}
		if tl.Tags == nil {
			t.Errorf("tags is null, want a list: %s", body)
		}
		return resp, tl.Tags
	}
	resp, tags := get("")
	if !slices.Equal(tags, []string{"a", "latest", "v1", "v2"}) || resp.Header.Get("Link") != "" {
		t.Errorf("all tags = %q, Link %q", tags, resp.Header.Get("Link"))
	}
	resp, tags = get("?n=2")
	if !slices.Equal(tags, []string{"a", "latest"}) {
		t.Errorf("n=2: %q", tags)
	}
	if link := resp.Header.Get("Link"); link != `</v2/shell/git/tags/list?last=latest&n=2>; rel="next"` {
		t.Errorf("Link = %q", link)
	}
	resp, tags = get("?n=2&last=latest")
	if !slices.Equal(tags, []string{"v1", "v2"}) || resp.Header.Get("Link") != "" {
		t.Errorf("page 2 = %q, Link %q", tags, resp.Header.Get("Link"))
	}
	if _, tags = get("?last=b"); !slices.Equal(tags, []string{"latest", "v1", "v2"}) {
		t.Errorf("last=b: %q", tags)
	}
	if _, tags = get("?n=0"); len(tags) != 0 {
		t.Errorf("n=0: %q", tags)
	}
	if _, tags = get("?last=zzz"); len(tags) != 0 {
		t.Errorf("last=zzz: %q", tags)
	}
	if _, tags = get("?n=100"); len(tags) != 4 {
		t.Errorf("n=100: %q", tags)
	}
	for _, bad := range []string{"?n=-1", "?n=x", "?n=1.5"} {
		resp, body := e.do(t, "GET", "/v2/shell/git/tags/list"+bad, nil)
		wantError(t, resp, body, 400, registry.CodePaginationNumberInvalid)
	}
	resp, body := e.do(t, "GET", "/v2/unknown/tags/list", nil)
	wantError(t, resp, body, 404, registry.CodeNameUnknown)
	e.backend.tags["empty"] = nil
	if _, tags := func() (*http.Response, []string) {
		resp, body := e.do(t, "GET", "/v2/empty/tags/list", nil)
		var tl struct{ Tags []string }
		json.Unmarshal(body, &tl)
		if !strings.Contains(string(body), `"tags":[]`) {
			t.Errorf("empty tags body = %s", body)
		}
		return resp, tl.Tags
	}(); len(tags) != 0 {
		t.Errorf("empty: %q", tags)
	}
}

// codedError is another package's error type carrying a spec code.
type codedError struct {
	code, msg string
}

func (e *codedError) Error() string     { return e.msg }
func (e *codedError) ErrorCode() string { return e.code }

func TestErrorTable(t *testing.T) {
	want := map[registry.ErrorCode]int{
		"BLOB_UNKNOWN": 404, "BLOB_UPLOAD_INVALID": 400, "BLOB_UPLOAD_UNKNOWN": 404,
		"DIGEST_INVALID": 400, "MANIFEST_BLOB_UNKNOWN": 400, "MANIFEST_INVALID": 400,
		"MANIFEST_UNKNOWN": 404, "NAME_INVALID": 400, "NAME_UNKNOWN": 404, "SIZE_INVALID": 400,
		"UNAUTHORIZED": 401, "DENIED": 403, "UNSUPPORTED": 405, "TOOMANYREQUESTS": 429,
		"UNKNOWN": 500, "PAGINATION_NUMBER_INVALID": 400,
	}
	codes := registry.ErrorCodes()
	if len(codes) != len(want) {
		t.Errorf("table has %d codes, want %d: %q", len(codes), len(want), codes)
	}
	e := newEnv(t)
	for code, status := range want {
		if got := code.Status(); got != status {
			t.Errorf("%s.Status() = %d, want %d", code, got, status)
		}
		// Through the handler, from a foreign error type wrapped with %w.
		msg := "something about " + string(code)
		e.backend.setErr(fmt.Errorf("builder: %w", &codedError{code: string(code), msg: msg}))
		resp, body := e.do(t, "GET", "/v2/hello/manifests/latest", nil)
		se := wantError(t, resp, body, status, code)
		if len(se.Errors) == 1 && se.Errors[0].Message != "builder: "+msg {
			t.Errorf("%s: message %q", code, se.Errors[0].Message)
		}
		// The body is exactly {"errors":[{code,message[,detail]}]}.
		var raw map[string][]map[string]any
		if err := json.Unmarshal(body, &raw); err != nil || len(raw) != 1 || len(raw["errors"]) != 1 {
			t.Errorf("%s: body shape %s", code, body)
		}
		for k := range raw["errors"][0] {
			if k != "code" && k != "message" && k != "detail" {
				t.Errorf("%s: unexpected field %q", code, k)
			}
		}
	}
	// A code outside the table becomes UNKNOWN, keeping the message.
	e.backend.setErr(&codedError{code: "NO_SUCH_CODE", msg: "odd"})
	resp, body := e.do(t, "GET", "/v2/hello/manifests/latest", nil)
	se := wantError(t, resp, body, 500, registry.CodeUnknown)
	if len(se.Errors) == 1 && se.Errors[0].Message != "odd" {
		t.Errorf("message %q", se.Errors[0].Message)
	}
	// Status overrides and details on *Error.
	e.backend.setErr(registry.NewError(registry.CodeUnsupported, "wrong media type").WithStatus(415).WithDetail(map[string]int{"n": 1}))
	resp, body = e.do(t, "GET", "/v2/hello/manifests/latest", nil)
	se = wantError(t, resp, body, 415, registry.CodeUnsupported)
	if len(se.Errors) == 1 && string(se.Errors[0].Detail) != `{"n":1}` {
		t.Errorf("detail = %s", se.Errors[0].Detail)
	}
}

func TestBackendErrorMapping(t *testing.T) {
	e := newEnv(t)
	secret := "/nix/store/secret-path failed with token hunter2"
	e.backend.setErr(fmt.Errorf("nix: %w", errors.New(secret)))
	resp, body := e.do(t, "GET", "/v2/hello/manifests/latest", nil)
	se := wantError(t, resp, body, 500, registry.CodeUnknown)
	if len(se.Errors) == 1 && se.Errors[0].Message != "internal error" {
		t.Errorf("message = %q", se.Errors[0].Message)
	}
	if strings.Contains(string(body), "hunter2") {
		t.Errorf("internal error leaked: %s", body)
	}
	// The real error is logged.
	waitFor(t, func() bool {
		for _, r := range e.logs.byMsg("internal error") {
			if strings.Contains(r["error"].String(), "hunter2") {
				return true
			}
		}
		return false
	})

	e.backend.setErr(fmt.Errorf("build: %w", context.DeadlineExceeded))
	resp, body = e.do(t, "GET", "/v2/hello/manifests/latest", nil)
	se = wantError(t, resp, body, 504, registry.CodeUnknown)
	if len(se.Errors) == 1 && !strings.Contains(se.Errors[0].Message, "timed out") {
		t.Errorf("timeout message = %q", se.Errors[0].Message)
	}

	// Tags errors map the same way.
	e.backend.setErr(&codedError{code: "DENIED", msg: "no"})
	resp, body = e.do(t, "GET", "/v2/hello/tags/list", nil)
	wantError(t, resp, body, 403, registry.CodeDenied)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met")
}

func TestBadRequestsTouchNothing(t *testing.T) {
	e := newEnv(t)
	d := e.put(t, []byte(ociManifest))
	e.backend.manifests["hello:latest"] = registry.Manifest{Body: []byte(ociManifest)}
	before := snapshot(t, e.store.Dir())
	long := strings.Repeat("a", 10000)
	hex := strings.TrimPrefix(d, "sha256:")
	for _, tc := range []struct {
		method, target string
		status         int
		code           registry.ErrorCode
	}{
		{"GET", "/v2/UPPER/manifests/latest", 400, registry.CodeNameInvalid},
		{"GET", "/v2/a__-b/manifests/latest", 400, registry.CodeNameInvalid},
		{"GET", "/v2/-a/manifests/latest", 400, registry.CodeNameInvalid},
		{"GET", "/v2/a./manifests/latest", 400, registry.CodeNameInvalid},
		{"GET", "/v2/" + strings.Repeat("a", 256) + "/manifests/latest", 400, registry.CodeNameInvalid},
		{"GET", "/v2/" + long + "/manifests/latest", 414, registry.CodeNameInvalid},
		{"GET", "/v2/" + long + "/blobs/" + d, 414, registry.CodeNameInvalid},
		{"GET", "/v2/x/blobs/" + d + "?" + long, 414, registry.CodeNameInvalid},
		{"GET", "/v2/../blobs/" + d, 400, registry.CodeNameInvalid},
		{"GET", "/v2/a/../../blobs/" + d, 400, registry.CodeNameInvalid},
		{"GET", "/v2/a/%2e%2e/blobs/" + d, 400, registry.CodeNameInvalid},
		{"GET", "/v2/a/%2E%2E/%2e%2e/manifests/latest", 400, registry.CodeNameInvalid},
		{"GET", "/v2/a%2fb/manifests/latest", 400, registry.CodeNameInvalid},
		{"GET", "/v2//a/manifests/latest", 400, registry.CodeNameInvalid},
		{"GET", "/v2/a//b/manifests/latest", 400, registry.CodeNameInvalid},
		{"GET", "/v2/./a/manifests/latest", 400, registry.CodeNameInvalid},
		{"GET", "/v2/a/blobs/sha256:../../../etc/passwd", 400, registry.CodeDigestInvalid},
		{"GET", "/v2/a/blobs/sha256:" + hex[:63], 400, registry.CodeDigestInvalid},
		{"GET", "/v2/a/blobs/sha256:" + strings.ToUpper(hex), 400, registry.CodeDigestInvalid},
		{"GET", "/v2/a/blobs/sha256:" + hex + "00", 400, registry.CodeDigestInvalid},
		{"GET", "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", 400, registry.CodeDigestInvalid},
		{"GET", "/v2/a/blobs/sha512:" + hex, 400, registry.CodeDigestInvalid},
		{"GET", "/v2/a/blobs/" + hex, 400, registry.CodeDigestInvalid},
		{"GET", "/v2/a/blobs/sha256:", 400, registry.CodeDigestInvalid},
		{"GET", "/v2/a/manifests/sha256:abc", 400, registry.CodeDigestInvalid},
		{"GET", "/v2/a/manifests/sha256:" + hex + "/x", 400, registry.CodeDigestInvalid},
		{"GET", "/v2/a/manifests/..", 404, registry.CodeManifestUnknown},
		{"GET", "/v2/a/manifests/.hidden", 404, registry.CodeManifestUnknown},
		{"GET", "/v2/a/manifests/" + strings.Repeat("t", 129), 404, registry.CodeManifestUnknown},
		{"GET", "/v2/a/manifests/", 404, registry.CodeManifestUnknown},
		{"GET", "/v2/hello", 404, registry.CodeNameUnknown},
		{"GET", "/v2/hello/", 404, registry.CodeNameUnknown},
		{"GET", "/v2/hello/tags", 404, registry.CodeNameUnknown},
		{"GET", "/v3/hello/manifests/latest", 404, registry.CodeNameUnknown},
		{"GET", "/", 404, registry.CodeNameUnknown},
		{"GET", "/v2/a/blobs/uploads/../../x", 404, registry.CodeBlobUploadUnknown},
		{"DELETE", "/v2/hello/manifests/latest", 405, registry.CodeUnsupported},
		{"PUT", "/v2/hello/manifests/latest", 405, registry.CodeUnsupported},
		{"DELETE", "/v2/hello/blobs/" + d, 405, registry.CodeUnsupported},
		{"POST", "/v2/hello/blobs/uploads/", 405, registry.CodeUnsupported},
		{"PATCH", "/v2/hello/blobs/uploads/abc", 405, registry.CodeUnsupported},
		{"PUT", "/v2/hello/blobs/uploads/abc", 405, registry.CodeUnsupported},
		{"POST", "/v2/hello/referrers/" + d, 405, registry.CodeUnsupported},
		{"POST", "/v2/hello/tags/list", 405, registry.CodeUnsupported},
		{"BREW", "/v2/hello/manifests/latest", 405, registry.CodeUnsupported},
	} {
		resp, body := e.raw(t, tc.method, tc.target)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %.100s: status %d, want %d (%s)", tc.method, tc.target, resp.StatusCode, tc.status, body)
			continue
		}
		var se specErrors
		if err := json.Unmarshal(body, &se); err != nil || len(se.Errors) != 1 || se.Errors[0].Code != string(tc.code) {
			t.Errorf("%s %.100s: body %s, want code %s", tc.method, tc.target, body, tc.code)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %.100s: Content-Type %q", tc.method, tc.target, ct)
		}
		if len(body) > 2048 {
			t.Errorf("%s %.100s: %d-byte error body echoes input", tc.method, tc.target, len(body))
		}
	}
	if n := e.backend.numCalls(); n != 0 {
		t.Errorf("bad requests reached the backend %d times", n)
	}
	after := snapshot(t, e.store.Dir())
	if !sameSnapshot(before, after) {
		t.Fatalf("store changed:\nbefore %q\nafter  %q", sortedKeys(before), sortedKeys(after))
	}
	// A 405 names the allowed methods.
	resp, _ := e.raw(t, "DELETE", "/v2/hello/manifests/latest")
	if allow := resp.Header.Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("Allow = %q", allow)
	}
}

func TestNamesWithEndpointWords(t *testing.T) {
	e := newEnv(t)
	body := []byte(ociManifest)
	for _, name := range []string{"manifests", "blobs/manifests", "a/tags/list", "tags/list/manifests", "a/blobs/uploads", "referrers/x"} {
		e.backend.manifests[name+":latest"] = registry.Manifest{Body: body}
		e.backend.tags[name] = []string{"latest"}
		resp, got := e.do(t, "GET", "/v2/"+name+"/manifests/latest", nil)
		if resp.StatusCode != 200 || string(got) != ociManifest {
			t.Errorf("%s: manifest %d %s", name, resp.StatusCode, got)
		}
		resp, got = e.do(t, "GET", "/v2/"+name+"/tags/list", nil)
		if resp.StatusCode != 200 || !strings.Contains(string(got), `"name":"`+name+`"`) {
			t.Errorf("%s: tags %d %s", name, resp.StatusCode, got)
		}
	}
	d := e.put(t, []byte("blob"))
	resp, got := e.do(t, "GET", "/v2/manifests/blobs/"+d, nil)
	if resp.StatusCode != 200 || string(got) != "blob" {
		t.Errorf("blob under name 'manifests': %d", resp.StatusCode)
	}
}

func TestAccessLog(t *testing.T) {
	logs := &logRecorder{}
	store, err := storage.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := newFakeBackend()
	b.manifests["hello:latest"] = registry.Manifest{Body: []byte(ociManifest)}
	h := registry.New(registry.Options{Store: store, Backend: b, Log: slog.New(logs)})

	req := httptest.NewRequest("GET", "/v2/hello/manifests/latest", nil)
	req.Header.Set("Authorization", "Bearer s3cr3t-token")
	req.RemoteAddr = "127.0.0.1:4242"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	req = httptest.NewRequest("HEAD", "/v2/nope/blobs/"+digestOf([]byte("x")), nil)
	req.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
	h.ServeHTTP(httptest.NewRecorder(), req)

	recs := logs.byMsg("request")
	if len(recs) != 2 {
		t.Fatalf("%d access records, want 2", len(recs))
	}
	r := recs[0]
	if r["method"].String() != "GET" || r["path"].String() != "/v2/hello/manifests/latest" {
		t.Errorf("method/path = %v %v", r["method"], r["path"])
	}
	if r["status"].Kind() != slog.KindInt64 || r["status"].Int64() != 200 {
		t.Errorf("status = %v", r["status"])
	}
	if r["bytes"].Int64() != int64(len(ociManifest)) {
		t.Errorf("bytes = %v, want %d", r["bytes"], len(ociManifest))
	}
	if r["duration"].Kind() != slog.KindDuration {
		t.Errorf("duration = %v (%v)", r["duration"], r["duration"].Kind())
	}
	if r["remote"].String() != "127.0.0.1:4242" {
		t.Errorf("remote = %v", r["remote"])
	}
	if recs[1]["status"].Int64() != 404 || recs[1]["method"].String() != "HEAD" || recs[1]["bytes"].Int64() != 0 {
		t.Errorf("second record = %v", recs[1])
	}
	// No record mentions credentials.
	var buf strings.Builder
	jl := slog.New(slog.NewJSONHandler(&buf, nil))
	h = registry.New(registry.Options{Store: store, Backend: b, Log: jl})
	req = httptest.NewRequest("GET", "/v2/hello/manifests/latest", nil)
	req.Header.Set("Authorization", "Bearer s3cr3t-token")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if strings.Contains(buf.String(), "s3cr3t") || strings.Contains(strings.ToLower(buf.String()), "authorization") {
		t.Errorf("log mentions credentials: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"msg":"request"`) {
		t.Errorf("JSON log = %s", buf.String())
	}
}

func storagetestPut(t *testing.T, e *env, key string, data []byte) {
	t.Helper()
	ctx := context.Background()
	w, err := e.store.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(ctx, key); err != nil {
		t.Fatal(err)
	}
}
