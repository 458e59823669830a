package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"strata/internal/storage"
)

// The keys of pushed repositories are laid out in storage/paths.go
// (storage.RepoTagKey and its siblings); the bytes of manifests and blobs
// live once, under storage.BlobKey, and a manifest or blob is visible in a
// pushed repository only when linked there.

// putSmall writes a small object atomically.
func putSmall(ctx context.Context, s storage.Store, key string, data []byte) error {
	w, err := s.Create(ctx)
	if err != nil {
		return fmt.Errorf("registry: put %s: %w", key, err)
	}
	if _, err := w.Write(data); err != nil {
		_ = w.Cancel(ctx)
		return fmt.Errorf("registry: put %s: %w", key, err)
	}
	if err := w.Commit(ctx, key); err != nil {
		return fmt.Errorf("registry: put %s: %w", key, err)
	}
	return nil
}

// getSmall reads a small object (at most limit bytes); storage.ErrNotFound
// passes through wrapped.
func getSmall(ctx context.Context, s storage.Store, key string, limit int64) ([]byte, error) {
	rc, err := s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("registry: read %s: %w", key, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("registry: %s is larger than %d bytes", key, limit)
	}
	return b, nil
}

// exists reports whether key holds an object.
func exists(ctx context.Context, s storage.Store, key string) (bool, error) {
	_, err := s.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("registry: stat %s: %w", key, err)
	}
	return true, nil
}

// cache is the in-memory cache of the pull hot path: manifests by digest
// (immutable, so kept until evicted, with their response headers built
// once) and resolved references (mutable, so kept for a short TTL): the
// tags and links of pushed repositories, dropped on every local write to
// the repository, and the tags of on-demand names. A write through another
// replica, or a package set that moved on, is seen after at most the TTL.
type cache struct {
	ttl time.Duration

	mu        sync.RWMutex
	manifests map[string]*cachedManifest // digest → manifest
	order     []string                   // FIFO eviction of manifests
	size      int64                      // bytes of cached manifest bodies
	maxSize   int64
	refs      map[refKey]cachedRef
}

// refKey names a resolved reference without building a string per request.
type refKey struct {
	kind   refKind
	name   string
	ref    string
	accept string // on-demand tags: the client's Accept, which picks the manifest
}

type refKind uint8

const (
	refPushed   refKind = iota // a pushed repository's tag or manifest digest
	refBlob                    // a pushed repository's blob link
	refOnDemand                // an on-demand name's tag
)

// cachedManifest is a manifest with the values of its response headers.
type cachedManifest struct {
	body      []byte
	mediaType string
	digest    string
	// Header values, built once and shared by every response (never
	// modified).
	contentType, contentLength, dockerDigest, etag []string
}

func newCachedManifest(body []byte, mediaType, digest string) *cachedManifest {
	return &cachedManifest{body: body, mediaType: mediaType, digest: digest,
		contentType: []string{mediaType}, contentLength: []string{strconv.Itoa(len(body))},
		dockerDigest: []string{digest}, etag: []string{`"` + digest + `"`}}
}

// withType returns m served as mediaType (a pushed manifest's link may name
// another type than the one its bytes were first cached with).
func (m *cachedManifest) withType(mediaType string) *cachedManifest {
	if mediaType == m.mediaType {
		return m
	}
	c := *m
	c.mediaType, c.contentType = mediaType, []string{mediaType}
	return &c
}

type cachedRef struct {
	digest    string
	mediaType string
	m         *cachedManifest // the manifest itself, once read
	refreshAt time.Time       // half the TTL: a hit after it may refresh the entry
	expires   time.Time
}

func newCache(ttl time.Duration, maxSize int64) *cache {
	return &cache{ttl: ttl, maxSize: maxSize, manifests: map[string]*cachedManifest{}, refs: map[refKey]cachedRef{}}
}

func (c *cache) manifest(digest string) (*cachedManifest, bool) {
	c.mu.RLock()
	m, ok := c.manifests[digest]
	c.mu.RUnlock()
	return m, ok
}

// putManifest caches m (unless it is large) and returns the cached one.
func (c *cache) putManifest(m *cachedManifest) *cachedManifest {
	if int64(len(m.body)) > c.maxSize/16 {
		return m
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.manifests[m.digest]; ok {
		return old
	}
	for c.size+int64(len(m.body)) > c.maxSize && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		if om, ok := c.manifests[old]; ok {
			c.size -= int64(len(om.body))
			delete(c.manifests, old)
		}
	}
	c.manifests[m.digest] = m
	c.order = append(c.order, m.digest)
	c.size += int64(len(m.body))
	return m
}

func (c *cache) ref(k refKey, now time.Time) (cachedRef, bool) {
	if c.ttl <= 0 {
		return cachedRef{}, false
	}
	c.mu.RLock()
	r, ok := c.refs[k]
	c.mu.RUnlock()
	if !ok || now.After(r.expires) {
		return cachedRef{}, false
	}
	return r, true
}

func (c *cache) putRef(k refKey, r cachedRef, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	r.refreshAt, r.expires = now.Add(c.ttl/2), now.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.refs) > 100000 {
		clear(c.refs)
	}
	c.refs[k] = r
}

// invalidate drops every resolved reference of a pushed repository.
func (c *cache) invalidate(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.refs {
		if k.name == name && k.kind != refOnDemand {
			delete(c.refs, k)
		}
	}
}

// descriptor is an OCI content descriptor as kept in the referrers index.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	URLs         []string          `json:"urls,omitempty"`
}

// parsedManifest holds the fields of a manifest or index the registry acts
// on.
type parsedManifest struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *descriptor       `json:"config"`
	Layers       []descriptor      `json:"layers"`
	Manifests    []descriptor      `json:"manifests"`
	Subject      *descriptor       `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

func parseManifest(body []byte) (parsedManifest, error) {
	var m parsedManifest
	if err := json.Unmarshal(body, &m); err != nil {
		return m, fmt.Errorf("registry: parse manifest: %w", err)
	}
	return m, nil
}

// references lists the digests a manifest points at: config, layers and
// child manifests (not its subject: a referrer keeps its subject's
// referrers list alive, not the subject).
func (m parsedManifest) references() []string {
	var out []string
	if m.Config != nil && m.Config.Digest != "" {
		out = append(out, m.Config.Digest)
	}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	for _, c := range m.Manifests {
		out = append(out, c.Digest)
	}
	return out
}

// invalidateAll drops every resolved reference and cached manifest (a
// garbage collection removed bytes).
func (c *cache) invalidateAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.refs)
	clear(c.manifests)
	c.order, c.size = nil, 0
}
