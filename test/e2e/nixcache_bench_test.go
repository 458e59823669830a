package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"sync/atomic"
	"testing"
)

// countingBody counts the bytes a client reads of a response.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// imageBytes are the bytes a node that holds the blobs of have pulls for
// the image name: its manifest, its config and each layer it lacks; it
// returns the blob digests of the image too.
func imageBytes(t *testing.T, base, name string, have map[string]bool) (int64, map[string]bool) {
	t.Helper()
	resp, body := httpDo(t, "GET", base+"/v2/"+name+"/manifests/latest", map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"})
	if resp.StatusCode != 200 {
		t.Fatalf("manifest of %s: %d %s", name, resp.StatusCode, body)
	}
	var m struct {
		Config struct {
			Digest string
			Size   int64
		}
		Layers []struct {
			Digest string
			Size   int64
		}
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	n := int64(len(body)) + m.Config.Size
	blobs := map[string]bool{m.Config.Digest: true}
	for _, l := range m.Layers {
		blobs[l.Digest] = true
		if !have[l.Digest] {
			n += l.Size
		}
	}
	return n, blobs
}

// TestNixCacheBench (STRATA_BENCH=1, run by make bench): the bytes a node
// pulls for a second image that shares most of its closure with a first
// one it already runs. The first image is shell/largeimage (237 MB of
// store paths in 21), the second shell/largeimage/hello (hello adds one
// path of 1 KB; busybox is in both). Layers: the second image's manifest, config and the layers the
// node lacks, as podman or containerd fetch them. Cache: the node runs
// nix-snapshotter images; it pulls the second one's manifest, config and
// the layers it lacks (the customisation layer and the mount points), and
// Nix 2.8 substitutes the closure from strata's cache into a store that
// holds the first image's closure; those bytes are counted on the wire by
// a proxy. Printed for the default layer budget and for a budget of 8.
func TestNixCacheBench(t *testing.T) {
	if os.Getenv("STRATA_BENCH") != "1" {
		t.Skip("a benchmark: set STRATA_BENCH=1 (make bench)")
	}
	secret, public := cacheKey(t, "strata-bench-1")
	for _, budget := range []string{"100", "8"} {
		s := startServer(t, serverOpts{args: []string{"--cache-key-file", secret, "--max-layers", budget, "--nix-timeout", "20m"}})
		base := "http://" + s.Addr
		var wire atomic.Int64
		target, _ := url.Parse(base)
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.ModifyResponse = func(r *http.Response) error {
			r.Body = countingBody{r.Body, &wire}
			return nil
		}
		proxy := httptest.NewServer(rp)
		defer proxy.Close()

		_, haveA := imageBytes(t, base, "shell/largeimage", nil)
		layers, _ := imageBytes(t, base, "shell/largeimage/hello", haveA)

		_, haveNA := imageBytes(t, base, "nix-snapshotter/shell/largeimage", nil)
		imgB, _ := imageBytes(t, base, "nix-snapshotter/shell/largeimage/hello", haveNA)
		c := newNixClient(t, proxy.URL, public, "")
		closureInfo := func(name string) string {
			_, body := httpDo(t, "GET", base+"/v2/"+name+"/manifests/latest", map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"})
			m := regexp.MustCompile(`"containerd.io/snapshot/nix-closure":"([^"]+)"`).FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("%s has no nix-closure annotation: %s", name, body)
			}
			return m[1]
		}
		if out, err := c.realise(closureInfo("nix-snapshotter/shell/largeimage")); err != nil {
			t.Fatalf("first closure: %v\n%s", err, out)
		}
		first := wire.Swap(0)
		if out, err := c.realise(closureInfo("nix-snapshotter/shell/largeimage/hello")); err != nil {
			t.Fatalf("second closure: %v\n%s", err, out)
		}
		subst := wire.Load()
		if first <= 0 || subst <= 0 || subst >= first {
			t.Fatalf("substituted %d bytes for the first closure and %d for the second", first, subst)
		}
		cache := imgB + subst
		fmt.Printf("bench: nixcache budget=%s second image (shell/largeimage/hello after shell/largeimage): layers %d bytes, nix-snapshotter image %d + cache %d = %d bytes, layers/cache %.2fx (first closure from the cache: %d bytes)\n",
			budget, layers, imgB, subst, cache, float64(layers)/float64(cache), first)
	}
}
