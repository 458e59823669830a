package storage_test

import (
	"strings"
	"testing"

	"strata/internal/storage"
)

func TestKeyLayout(t *testing.T) {
	const d = "sha256:abcdef"
	cases := []struct{ got, want string }{
		{storage.BlobKey(d), "blobs/sha256/ab/abcdef"},
		{storage.BlobKey("sha256:a"), "blobs/sha256/a"},
		{storage.ImageRecordKey("k1"), "cache/images/k1.json"},
		{storage.LayerRecordKey("k2"), "cache/layers/k2.json"},
		{storage.ReferrersRecordKey(d), "cache/referrers/sha256-abcdef.json"},
		{storage.ImageLeaseName("k3"), "images/k3"},
		{storage.RepoPrefix("pushed/a"), "repos/pushed/a/"},
		{storage.RepoTagsPrefix("pushed/a"), "repos/pushed/a/_tags/"},
		{storage.RepoTagKey("pushed/a", "v1"), "repos/pushed/a/_tags/v1"},
		{storage.RepoManifestLinkKey("pushed/a", d), "repos/pushed/a/_manifests/sha256/abcdef"},
		{storage.RepoBlobLinkKey("pushed/a", d), "repos/pushed/a/_blobs/sha256/abcdef"},
		{storage.RepoReferrersPrefix("pushed/a", d), "repos/pushed/a/_referrers/sha256/abcdef/"},
		{storage.RepoReferrerKey("pushed/a", d, "sha256:0123"), "repos/pushed/a/_referrers/sha256/abcdef/sha256-0123"},
		{storage.UploadPrefix("u1"), "uploads/u1/"},
		{storage.UploadInfoKey("u1"), "uploads/u1/info"},
		{storage.UploadDataPrefix("u1"), "uploads/u1/data/"},
		{storage.UploadChunkKey("u1", 0, 12, "ff"), "uploads/u1/data/00000000000000000000-00000000000000000012-ff"},
		{storage.NarinfoKey("h"), "nixcache/narinfo/h.narinfo"},
		{storage.NARKey("f"), "nixcache/nar/f.nar.zst"},
		{storage.ReadinessKey, "readyz/probe"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("key %q, want %q", c.got, c.want)
		}
		if strings.HasSuffix(c.want, "/") {
			if err := storage.CheckPrefix(c.got); err != nil {
				t.Errorf("prefix %q: %v", c.got, err)
			}
		} else if !storage.ValidKey(c.got) {
			t.Errorf("key %q is not a valid key", c.got)
		}
	}
	want := []string{"cache/images/", "cache/layers/", "cache/referrers/"}
	if got := storage.CacheRecordPrefixes(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("CacheRecordPrefixes() = %q, want %q", got, want)
	}
}

func TestBlobKeyDigest(t *testing.T) {
	if d, ok := storage.BlobKeyDigest(storage.BlobKey("sha256:abcdef")); !ok || d != "sha256:abcdef" {
		t.Errorf("BlobKeyDigest(BlobKey(sha256:abcdef)) = %q, %v", d, ok)
	}
	for _, k := range []string{"blobs/sha256/a", "cache/images/x/y/z", "blobs/sha256/ab/abcd/e"} {
		if d, ok := storage.BlobKeyDigest(k); ok {
			t.Errorf("BlobKeyDigest(%q) = %q, true; want false", k, d)
		}
	}
}

func TestRepoKey(t *testing.T) {
	cases := []struct{ key, name, kind, tail string }{
		{storage.RepoTagKey("pushed/a/b", "v1"), "pushed/a/b", storage.RepoTags, "v1"},
		{storage.RepoManifestLinkKey("pushed/a", "sha256:ab"), "pushed/a", storage.RepoManifests, "sha256/ab"},
		{storage.RepoBlobLinkKey("pushed/a", "sha256:ab"), "pushed/a", storage.RepoBlobs, "sha256/ab"},
		{storage.RepoReferrerKey("pushed/a", "sha256:ab", "sha256:cd"), "pushed/a", storage.RepoReferrers, "sha256/ab/sha256-cd"},
	}
	for _, c := range cases {
		name, kind, tail, ok := storage.RepoKey(c.key)
		if !ok || name != c.name || kind != c.kind || tail != c.tail {
			t.Errorf("RepoKey(%q) = %q, %q, %q, %v; want %q, %q, %q, true", c.key, name, kind, tail, ok, c.name, c.kind, c.tail)
		}
	}
	if _, _, _, ok := storage.RepoKey("repos/pushed/a/other"); ok {
		t.Error("RepoKey accepted a key of no known kind")
	}
}
