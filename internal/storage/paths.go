package storage

import (
	"fmt"
	"strings"
)

// The key layout: every key prefix strata reads or writes is named in this
// file and nowhere else (test/arch checks that no other non-test file
// spells one), as distribution's registry/storage/paths.go does.
//
//	blobs/<alg>/<hex[:2]>/<hex>                     content-addressed bytes (BlobKey)
//	cache/images/<key>.json                         a built image's record (ImageRecordKey)
//	cache/layers/<key>.json                         a packed layer's record (LayerRecordKey)
//	cache/referrers/<alg>-<hex>.json                an on-demand image's referrers (ReferrersRecordKey)
//	repos/<name>/_tags/<tag>                        a pushed tag → its digest (RepoTagKey)
//	repos/<name>/_manifests/<alg>/<hex>             a manifest link → its media type (RepoManifestLinkKey)
//	repos/<name>/_blobs/<alg>/<hex>                 a blob link → the digest (RepoBlobLinkKey)
//	repos/<name>/_referrers/<alg>/<hex>/<alg>-<hex> a referrer's descriptor (RepoReferrerKey)
//	uploads/<id>/info                               an upload's state (UploadInfoKey)
//	uploads/<id>/data/<start>-<end>-<sha256>        an upload's chunks (UploadChunkKey)
//	nixcache/narinfo/<hash>.narinfo                 a signed narinfo (NarinfoKey)
//	nixcache/nar/<filehash>.nar.zst                 a compressed NAR (NARKey)
//	readyz/probe                                    the readiness probe (ReadinessKey)
//	_locks/<name>                                   leases (S3 only; reserved, never listed)
//	_staging                                        writes in progress (reserved, never listed)
//
// A pushed repository's name component never starts with "_", so its
// "_tags", "_manifests", "_blobs" and "_referrers" never collide with the
// components of a nested repository name.
const (
	// BlobsPrefix holds every blob under its digest.
	BlobsPrefix = "blobs/"
	// ImagesPrefix holds the builder's image records.
	ImagesPrefix = "cache/images/"
	// LayersPrefix holds the builder's layer records.
	LayersPrefix = "cache/layers/"
	// ReferrersPrefix holds the builder's referrers records.
	ReferrersPrefix = "cache/referrers/"
	// ReposPrefix holds the links and tags of pushed repositories.
	ReposPrefix = "repos/"
	// UploadsPrefix holds the state and chunks of blob uploads.
	UploadsPrefix = "uploads/"
	// NARPrefix holds the Nix binary cache's compressed NARs.
	NARPrefix = "nixcache/nar/"
	// NarinfoPrefix holds the Nix binary cache's narinfos.
	NarinfoPrefix = "nixcache/narinfo/"
	// ReadinessKey is the key the readiness check writes and reads back.
	ReadinessKey = "readyz/probe"
	// StagingDir is the reserved key directory (and, on the filesystem, the
	// directory under the root) that holds writes in progress.
	StagingDir = "_staging"
	// locksDir is the reserved key directory of leases.
	locksDir = "_locks"
)

// CacheRecordPrefixes are the prefixes of the builder's records, which
// garbage collection reads for the digests they name.
func CacheRecordPrefixes() []string {
	return []string{ImagesPrefix, LayersPrefix, ReferrersPrefix}
}

// BlobKey is the key of a content-addressed blob ("sha256:<hex>").
func BlobKey(digest string) string {
	alg, hex, _ := strings.Cut(digest, ":")
	if len(hex) < 2 {
		return BlobsPrefix + alg + "/" + hex
	}
	return BlobsPrefix + alg + "/" + hex[:2] + "/" + hex
}

// BlobKeyDigest is the digest of the blob stored under key (a key
// BlobKey made for a digest with at least two hex digits), and whether key
// is such a key.
func BlobKeyDigest(key string) (string, bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0]+"/" != BlobsPrefix {
		return "", false
	}
	return parts[1] + ":" + parts[3], true
}

// ImageRecordKey is the key of the record of the image with cache key key.
func ImageRecordKey(key string) string { return ImagesPrefix + key + ".json" }

// LayerRecordKey is the key of the record of the layer with cache key key.
func LayerRecordKey(key string) string { return LayersPrefix + key + ".json" }

// ReferrersRecordKey is the key of the referrers record of the on-demand
// image manifest with the given digest.
func ReferrersRecordKey(digest string) string {
	return ReferrersPrefix + strings.Replace(digest, ":", "-", 1) + ".json"
}

// ImageLeaseName is the name of the lease a replica takes while it builds
// the image with cache key key.
func ImageLeaseName(key string) string { return "images/" + key }

// The kinds of key under a pushed repository (RepoKey's kind).
const (
	RepoTags      = "_tags"
	RepoManifests = "_manifests"
	RepoBlobs     = "_blobs"
	RepoReferrers = "_referrers"
)

var repoKinds = []string{RepoTags, RepoManifests, RepoBlobs, RepoReferrers}

// RepoPrefix is the prefix of every key of the pushed repository name.
func RepoPrefix(name string) string { return ReposPrefix + name + "/" }

// RepoTagsPrefix is the prefix of the tags of the pushed repository name.
func RepoTagsPrefix(name string) string { return RepoPrefix(name) + RepoTags + "/" }

// RepoTagKey is the key of a tag of a pushed repository.
func RepoTagKey(name, tag string) string { return RepoTagsPrefix(name) + tag }

// RepoManifestLinkKey is the key of a manifest's link in a pushed repository.
func RepoManifestLinkKey(name, digest string) string {
	alg, hex, _ := strings.Cut(digest, ":")
	return RepoPrefix(name) + RepoManifests + "/" + alg + "/" + hex
}

// RepoBlobLinkKey is the key of a blob's link in a pushed repository.
func RepoBlobLinkKey(name, digest string) string {
	alg, hex, _ := strings.Cut(digest, ":")
	return RepoPrefix(name) + RepoBlobs + "/" + alg + "/" + hex
}

// RepoReferrersPrefix is the prefix of the referrers of subject in a pushed
// repository.
func RepoReferrersPrefix(name, subject string) string {
	alg, hex, _ := strings.Cut(subject, ":")
	return RepoPrefix(name) + RepoReferrers + "/" + alg + "/" + hex + "/"
}

// RepoReferrerKey is the key of the referrer digest of subject in a pushed
// repository.
func RepoReferrerKey(name, subject, digest string) string {
	return RepoReferrersPrefix(name, subject) + strings.Replace(digest, ":", "-", 1)
}

// RepoKey splits a key under ReposPrefix into the repository name, the kind
// (RepoTags, RepoManifests, RepoBlobs or RepoReferrers) and the rest after
// the kind's "/". ok is false for a key of no known kind.
func RepoKey(key string) (name, kind, tail string, ok bool) {
	rest := strings.TrimPrefix(key, ReposPrefix)
	for _, kind := range repoKinds {
		sep := "/" + kind + "/"
		if i := strings.Index(rest, sep); i >= 0 {
			return rest[:i], kind, rest[i+len(sep):], true
		}
	}
	return "", "", "", false
}

// UploadPrefix is the prefix of every key of the upload id.
func UploadPrefix(id string) string { return UploadsPrefix + id + "/" }

// UploadInfoKey is the key of the stored state of the upload id.
func UploadInfoKey(id string) string { return UploadPrefix(id) + "info" }

// UploadDataPrefix is the prefix of the chunks of the upload id.
func UploadDataPrefix(id string) string { return UploadPrefix(id) + "data/" }

// UploadChunkKey is the key of the chunk [start, end) of the upload id
// whose bytes have the SHA-256 sum (hex).
func UploadChunkKey(id string, start, end int64, sum string) string {
	return fmt.Sprintf("%s%020d-%020d-%s", UploadDataPrefix(id), start, end, sum)
}

// NarinfoKey is the key of the narinfo of a store path hash.
func NarinfoKey(hash string) string { return NarinfoPrefix + hash + ".narinfo" }

// NARKey is the key of a compressed NAR by its file hash.
func NARKey(fileHash string) string { return NARPrefix + fileHash + ".nar.zst" }
