package publish

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"strata/test/registries"
)

// dyingProxy forwards to reg until die is set, then answers every request
// 503, as a registry that went down mid-push.
func dyingProxy(t *testing.T, reg *registries.Distribution, dieAfter func(r *http.Request) bool) *registries.Proxy {
	t.Helper()
	var dead atomic.Bool
	return registries.StartProxy(t, reg.Host, registries.ProxyOptions{Intercept: func(w http.ResponseWriter, r *http.Request) bool {
		if dead.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		if dieAfter(r) {
			dead.Store(true)
		}
		return false
	}})
}

// tagExists reports whether repo:tag is in reg (read directly, not
// through the proxy).
func tagExists(t *testing.T, reg *registries.Distribution, repo, tag string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, "http://"+reg.Host+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

var fastFail = RetryOptions{Attempts: 2, Backoff: time.Millisecond}

func isManifestPut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/")
}

// TestRegistryDiesMidPush: the registry goes down after the image is
// written by digest, before its SBOM: the push fails, and the tag was
// never moved.
func TestRegistryDiesMidPush(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	px := dyingProxy(t, reg, isManifestPut)
	img := platformImage(t, 1024, 2, amd64)
	_, err := Copy(ctx, buildLayout(t, map[string]v1.Image{"latest": img}), px.Host+"/die/app:1.0-amd64", CopyOptions{Retry: fastFail})
	if err == nil || !strings.Contains(err.Error(), "referrer") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("push to a registry that died: %v", err)
	}
	if tagExists(t, reg, "die/app", "1.0-amd64") {
		t.Error("the tag was moved although the SBOM was not written")
	}
}

// TestRegistryDiesMidIndex: the registry goes down while the children of
// an index are copied: no index, no tag.
func TestRegistryDiesMidIndex(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	amd := pushByDigest(t, ctx, reg.Host+"/build/amd", platformImage(t, 512, 1, amd64))
	arm := pushByDigest(t, ctx, reg.Host+"/build/arm", platformImage(t, 512, 1, arm64))
	px := dyingProxy(t, reg, isManifestPut)
	pxRef := func(s string) string { return strings.Replace(s, reg.Host, px.Host, 1) }
	_, err := CreateIndex(ctx, px.Host+"/rel/app:1.0", IndexOptions{From: []string{pxRef(amd), pxRef(arm)}, Retry: fastFail})
	if err == nil || !strings.Contains(err.Error(), "the index was not pushed") {
		t.Fatalf("index create on a registry that died: %v", err)
	}
	if tagExists(t, reg, "rel/app", "1.0") {
		t.Error("the index tag exists although a child was not copied")
	}
}

// TestReleaseDiesBeforeLatest: a release whose registry dies after the
// version tag: latest stays where it was.
func TestReleaseDiesBeforeLatest(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	px := dyingProxy(t, reg, func(r *http.Request) bool {
		return isManifestPut(r) && strings.HasSuffix(r.URL.Path, "/manifests/1.0.0")
	})
	imgs := []PlatformImage{{Image: platformImage(t, 512, 1, amd64)}, {Image: platformImage(t, 512, 1, arm64)}}
	_, err := Release(ctx, ReleaseOptions{Repository: px.Host + "/rel/app", Version: "1.0.0", Images: imgs, MoveLatest: true, Retry: fastFail})
	if err == nil || !strings.Contains(err.Error(), "latest") {
		t.Fatalf("release on a registry that died: %v", err)
	}
	if !tagExists(t, reg, "rel/app", "1.0.0") || tagExists(t, reg, "rel/app", "latest") {
		t.Errorf("want 1.0.0 written and latest untouched (%v)", err)
	}
}

// TestUnauthorizedWritesNothing: a refused credential fails with what to
// do and changes nothing, for push and for index create.
func TestUnauthorizedWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	reg := registries.StartDistribution(t, registries.DistributionOptions{})
	const good, bad = "unauth-good-Zq71", "unauth-bad-Xk93"
	px := registries.StartProxy(t, reg.Host, registries.ProxyOptions{Bearer: &registries.BearerOptions{Users: map[string]string{"u": good}}})
	amd := pushByDigest(t, ctx, reg.Host+"/build/amd", platformImage(t, 512, 1, amd64))
	reg.Sync(t)
	n := reg.Log.Len()
	kc := Keychain(CredOptions{Username: "u", Password: bad, Getenv: noEnv()})
	_, err := Copy(ctx, buildLayout(t, map[string]v1.Image{"latest": platformImage(t, 512, 1, arm64)}), px.Host+"/rel/app:1-arm64", CopyOptions{Keychain: kc})
	if err == nil || !strings.Contains(err.Error(), "check the credentials") || strings.Contains(err.Error(), bad) {
		t.Errorf("push with a wrong password: %v", err)
	}
	_, err = CreateIndex(ctx, px.Host+"/rel/app:1", IndexOptions{From: []string{strings.Replace(amd, reg.Host, px.Host, 1)}, Keychain: kc})
	if err == nil || !strings.Contains(err.Error(), "check the credentials") {
		t.Errorf("index create with a wrong password: %v", err)
	}
	reg.Sync(t)
	if m := reg.Mutations(n); len(m) != 0 {
		t.Errorf("refused credentials mutated the registry: %v", m)
	}
}
