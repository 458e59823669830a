package nixcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixhash"
	"github.com/prometheus/client_golang/prometheus"

	"strata/internal/closure"
	"strata/internal/storage"
)

const (
	hashA = "0c9ab8wp3fh2pjbcqk1mh6kvwyqm5yhq"
	hashB = "1ncaxs2ipgy2ydnh6nf0r1asdd9csc8b"
	pathA = StoreDir + "/" + hashA + "-liba-1.0"
	pathB = StoreDir + "/" + hashB + "-b-2.0"
)

// countingStore counts every call that reads storage.
type countingStore struct {
	storage.Store
	reads atomic.Int64
}

func (c *countingStore) Stat(ctx context.Context, key string) (storage.Info, error) {
	c.reads.Add(1)
	return c.Store.Stat(ctx, key)
}

func (c *countingStore) Open(ctx context.Context, key string) (io.ReadSeekCloser, error) {
	c.reads.Add(1)
	return c.Store.Open(ctx, key)
}

func (c *countingStore) List(ctx context.Context, prefix string) ([]string, error) {
	c.reads.Add(1)
	return c.Store.List(ctx, prefix)
}

// fixture writes two store paths under a chroot: b refers to a and to
// itself.
func fixture(t *testing.T) (root string, g *closure.Graph) {
	t.Helper()
	root = t.TempDir()
	a := filepath.Join(root, pathA)
	b := filepath.Join(root, pathB)
	for _, d := range []string{filepath.Join(a, "lib"), filepath.Join(b, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(a, "lib", "liba.so"), strings.Repeat("library bytes ", 1000), 0o644)
	write(filepath.Join(b, "bin", "b"), "#!"+pathA+"/lib/liba.so\nexec "+pathB+"/bin/b\n", 0o755)
	if err := os.Symlink("bin/b", filepath.Join(b, "run")); err != nil {
		t.Fatal(err)
	}
	g, err := closure.New([]*closure.Path{
		{Path: pathA, NarSize: narSize(t, a), NarHash: narHashOf(t, a)},
		{Path: pathB, References: []string{pathA, pathB}},
	}, []string{pathB})
	if err != nil {
		t.Fatal(err)
	}
	return root, g
}

func narHashOf(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	if err := nar.DumpPath(h, dir); err != nil {
		t.Fatal(err)
	}
	return nixhash.MustNewHashWithEncoding(nixhash.SHA256, h.Sum(nil), nixhash.NixBase32, true).String()
}

func narSize(t *testing.T, dir string) int64 {
	t.Helper()
	c := &counter{}
	if err := nar.DumpPath(c, dir); err != nil {
		t.Fatal(err)
	}
	return c.n
}

func newFS(t *testing.T) storage.Store {
	t.Helper()
	st, err := storage.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestRecordAndServe(t *testing.T) {
	ctx := context.Background()
	root, g := fixture(t)
	st := &countingStore{Store: newFS(t)}
	key, err := GenerateKey("test-cache-1")
	if err != nil {
		t.Fatal(err)
	}
	r := &Recorder{Store: st, Key: key, Root: root}
	if err := r.Record(ctx, g); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h, err := New(Options{Store: st, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signature.ParsePublicKey(key.PublicKey())
	if err != nil {
		t.Fatal(err)
	}

	w := get(t, h, "GET", "/nix-cache-info")
	if w.Code != 200 || w.Body.String() != "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 41\n" {
		t.Fatalf("/nix-cache-info: %d %q", w.Code, w.Body.String())
	}

	for _, tc := range []struct {
		hash, path string
		refs       []string
	}{
		{hashA, pathA, nil},
		{hashB, pathB, []string{hashA + "-liba-1.0", hashB + "-b-2.0"}},
	} {
		w := get(t, h, "GET", "/"+tc.hash+".narinfo")
		if w.Code != 200 || w.Header().Get("Content-Type") != "text/x-nix-narinfo" {
			t.Fatalf("narinfo of %s: %d %q", tc.path, w.Code, w.Header().Get("Content-Type"))
		}
		ni, err := narinfo.Parse(w.Body)
		if err != nil {
			t.Fatalf("narinfo of %s does not parse: %v", tc.path, err)
		}
		if ni.StorePath != tc.path || ni.Compression != "zstd" || strings.Join(ni.References, " ") != strings.Join(tc.refs, " ") {
			t.Errorf("narinfo of %s: %+v", tc.path, ni)
		}
		if !signature.VerifyFirst(ni.Fingerprint(), ni.Signatures, []signature.PublicKey{pub}) {
			t.Errorf("narinfo of %s: signature does not verify", tc.path)
		}
		// The NAR: the file hash names it; it decompresses to a NAR of
		// the stated hash and size, equal to the path's serialisation.
		w = get(t, h, "GET", "/"+ni.URL)
		if w.Code != 200 || uint64(w.Body.Len()) != ni.FileSize {
			t.Fatalf("%s: %d, %d bytes, want %d", ni.URL, w.Code, w.Body.Len(), ni.FileSize)
		}
		fileSum := sha256.Sum256(w.Body.Bytes())
		if !bytes.Equal(fileSum[:], ni.FileHash.Digest()) {
			t.Errorf("%s: file hash differs from FileHash", ni.URL)
		}
		dec, err := zstd.NewReader(bytes.NewReader(w.Body.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(dec)
		dec.Close()
		if err != nil {
			t.Fatal(err)
		}
		narSum := sha256.Sum256(raw)
		if !bytes.Equal(narSum[:], ni.NarHash.Digest()) || uint64(len(raw)) != ni.NarSize {
			t.Errorf("%s: NAR hash or size differ from the narinfo", ni.URL)
		}
		if want := narHashOf(t, filepath.Join(root, tc.path)); ni.NarHash.String() != want {
			t.Errorf("NarHash %s, want %s", ni.NarHash, want)
		}
		nr, err := nar.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nr.Next(); err != nil {
			t.Errorf("%s is not a NAR: %v", ni.URL, err)
		}

		// HEAD and Range.
		w = get(t, h, "HEAD", "/"+ni.URL)
		if w.Code != 200 || w.Header().Get("Content-Length") != itoa(ni.FileSize) || w.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d, length %q", ni.URL, w.Code, w.Header().Get("Content-Length"))
		}
		w = get(t, h, "GET", "/"+ni.URL, "Range", "bytes=4-9")
		body, _ := io.ReadAll(w.Body)
		full := get(t, h, "GET", "/"+ni.URL).Body.Bytes()
		if w.Code != 206 || !bytes.Equal(body, full[4:10]) {
			t.Errorf("Range bytes=4-9 of %s: %d %d bytes", ni.URL, w.Code, len(body))
		}
	}

	// Names that are not a hash read nothing and answer 404.
	before := st.reads.Load()
	for _, p := range []string{"/etc/passwd.narinfo", "/" + hashA + "x.narinfo", "/" + strings.ToUpper(hashA) + ".narinfo",
		"/" + strings.Replace(hashA, "0", "e", 1) + ".narinfo", // e is not in Nix's base-32
		"/nar/../narinfo/" + hashA + ".narinfo", "/nar/x.nar.zst", "/nar/" + hashA + ".nar.zst", "/nar/" + hashA + ".nar.xz"} {
		if w := get(t, h, "GET", p); w.Code != 404 {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
	if n := st.reads.Load() - before; n != 0 {
		t.Errorf("invalid names read storage %d times", n)
	}
	// A well-formed hash that was never recorded: 404 after one lookup.
	if w := get(t, h, "GET", "/"+strings.Replace(hashA, "0", "1", 1)+".narinfo"); w.Code != 404 {
		t.Errorf("unrecorded hash: %d", w.Code)
	}
	if w := get(t, h, "PUT", "/"+hashA+".narinfo"); w.Code != 405 {
		t.Errorf("PUT: %d, want 405", w.Code)
	}
	counts := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "strata_nixcache_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var kind, result string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "kind":
					kind = l.GetValue()
				case "result":
					result = l.GetValue()
				}
			}
			counts[kind+"/"+result] = m.GetCounter().GetValue()
		}
	}
	if len(counts) != 9 {
		t.Errorf("registered series: %v", counts)
	}
	for _, c := range []struct {
		kind, result string
		min          float64
	}{{"narinfo", "hit", 2}, {"narinfo", "miss", 1}, {"narinfo", "invalid", 4}, {"nar", "hit", 8}, {"nar", "invalid", 4}} {
		got := counts[c.kind+"/"+c.result]
		if got < c.min {
			t.Errorf("requests{kind=%s,result=%s} = %v, want at least %v", c.kind, c.result, got, c.min)
		}
	}
}

func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// A store path whose bytes are not the ones Nix registered is refused,
// and nothing of it becomes visible.
func TestRecordRefusesChangedPath(t *testing.T) {
	ctx := context.Background()
	root, g := fixture(t)
	if err := os.WriteFile(filepath.Join(root, pathA, "lib", "liba.so"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := newFS(t)
	r := &Recorder{Store: st, Root: root}
	err := r.Record(ctx, &closure.Graph{Paths: map[string]*closure.Path{pathA: g.Paths[pathA]}, Roots: []string{pathA}})
	if err == nil || !strings.Contains(err.Error(), "changed on disk") {
		t.Fatalf("Record of a changed path: %v", err)
	}
	keys, err := st.List(ctx, "nixcache/")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("a refused path left %v", keys)
	}
	if ok, _ := r.Recorded(ctx, pathA); ok {
		t.Fatal("a refused path is recorded")
	}
}

func TestAuthorize(t *testing.T) {
	h, err := New(Options{Store: newFS(t), Authorize: func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") == "" {
			http.Error(w, "no", http.StatusUnauthorized)
			return false
		}
		return true
	}})
	if err != nil {
		t.Fatal(err)
	}
	if w := get(t, h, "GET", "/nix-cache-info"); w.Code != 401 {
		t.Errorf("without credentials: %d", w.Code)
	}
	if w := get(t, h, "GET", "/nix-cache-info", "Authorization", "Basic x"); w.Code != 200 {
		t.Errorf("with credentials: %d", w.Code)
	}
}

func TestKeys(t *testing.T) {
	k, err := GenerateKey("cache.example.org-1")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseKey(k.String() + "\n")
	if err != nil || k2.PublicKey() != k.PublicKey() || !strings.HasPrefix(k.PublicKey(), "cache.example.org-1:") {
		t.Fatalf("round trip: %v %q", err, k2)
	}
	secret := k.String()[strings.IndexByte(k.String(), ':')+1:]
	for _, bad := range []string{"", "nocolon", ":" + secret, "name:" + secret[:20]} {
		_, err := ParseKey(bad)
		if err == nil {
			t.Errorf("ParseKey(%q) succeeded", bad)
			continue
		}
		if len(bad) > 8 && strings.Contains(err.Error(), bad[5:]) {
			t.Errorf("the error holds the key: %v", err)
		}
		if !strings.Contains(err.Error(), "nix-store --generate-binary-cache-key") {
			t.Errorf("the error does not say how to make a key: %v", err)
		}
	}
	for _, tc := range []struct {
		p  string
		ok bool
	}{{pathA, true}, {pathA + "/lib", false}, {"/nix/store/short-x", false}, {"/other/" + hashA + "-x", false}, {StoreDir + "/" + hashA, false}} {
		if _, err := StorePathHash(tc.p); (err == nil) != tc.ok {
			t.Errorf("StorePathHash(%q): %v", tc.p, err)
		}
	}
	if !Match("/nix-cache-info") || !Match("/"+hashA+".narinfo") || !Match("/nar/x") || Match("/v2/") || Match("/a/b.narinfo") || Match("/") {
		t.Error("Match")
	}
}
