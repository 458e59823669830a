package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"strata/internal/storage"
)

// Keys of pushed repositories. A name component never starts with "_", so
// "_tags", "_manifests", "_blobs" and "_referrers" never collide with the
// components of a nested repository name.
//
//	repos/<name>/_tags/<tag>                        → the tagged digest
//	repos/<name>/_manifests/<alg>/<hex>             → the manifest's media type
//	repos/<name>/_blobs/<alg>/<hex>                 → the digest (a link)
//	repos/<name>/_referrers/<alg>/<hex>/<alg>-<hex> → a referrer's descriptor
//
// The bytes of manifests and blobs live once, under storage.BlobKey; a
// manifest or blob is visible in a pushed repository only when linked
// there.
const reposPrefix = "repos/"

func tagKey(name, tag string) string { return reposPrefix + name + "/_tags/" + tag }
func tagsPrefix(name string) string  { return reposPrefix + name + "/_tags/" }

func manifestLinkKey(name, digest string) string {
	alg, hex, _ := strings.Cut(digest, ":")
	return reposPrefix + name + "/_manifests/" + alg + "/" + hex
}

func blobLinkKey(name, digest string) string {
	alg, hex, _ := strings.Cut(digest, ":")
	return reposPrefix + name + "/_blobs/" + alg + "/" + hex
}

func referrersPrefix(name, subject string) string {
	alg, hex, _ := strings.Cut(subject, ":")
	return reposPrefix + name + "/_referrers/" + alg + "/" + hex + "/"
}

func referrerKey(name, subject, digest string) string {
	return referrersPrefix(name, subject) + strings.Replace(digest, ":", "-", 1)
}

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
// (immutable, so kept until evicted) and pushed tags and links (mutable, so
// kept for a short TTL and dropped on every local write to the repository;
// another replica's write is seen after at most the TTL).
type cache struct {
	ttl time.Duration

	mu        sync.Mutex
	manifests map[string]*cachedManifest // digest → manifest
	order     []string                   // FIFO eviction of manifests
	size      int64                      // bytes of cached manifest bodies
	maxSize   int64
	refs      map[string]cachedRef // "name\x00ref" → resolved digest + type
}

type cachedManifest struct {
	body      []byte
	mediaType string
}

type cachedRef struct {
	digest    string
	mediaType string
	expires   time.Time
}

func newCache(ttl time.Duration, maxSize int64) *cache {
	return &cache{ttl: ttl, maxSize: maxSize, manifests: map[string]*cachedManifest{}, refs: map[string]cachedRef{}}
}

func (c *cache) manifest(digest string) (*cachedManifest, bool) {
	c.mu.Lock()
	m, ok := c.manifests[digest]
	c.mu.Unlock()
	return m, ok
}

func (c *cache) putManifest(digest string, m *cachedManifest) {
	if int64(len(m.body)) > c.maxSize/16 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.manifests[digest]; ok {
		return
	}
	for c.size+int64(len(m.body)) > c.maxSize && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		if om, ok := c.manifests[old]; ok {
			c.size -= int64(len(om.body))
			delete(c.manifests, old)
		}
	}
	c.manifests[digest] = m
	c.order = append(c.order, digest)
	c.size += int64(len(m.body))
}

func (c *cache) ref(name, ref string, now time.Time) (cachedRef, bool) {
	if c.ttl <= 0 {
		return cachedRef{}, false
	}
	c.mu.Lock()
	r, ok := c.refs[name+"\x00"+ref]
	c.mu.Unlock()
	if !ok || now.After(r.expires) {
		return cachedRef{}, false
	}
	return r, true
}

func (c *cache) putRef(name, ref string, r cachedRef, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	r.expires = now.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.refs) > 100000 {
		clear(c.refs)
	}
	c.refs[name+"\x00"+ref] = r
}

// invalidate drops every resolved reference of a repository.
func (c *cache) invalidate(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := name + "\x00"
	for k := range c.refs {
		if strings.HasPrefix(k, p) {
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

// invalidateAll drops every resolved reference.
func (c *cache) invalidateAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.refs)
}
