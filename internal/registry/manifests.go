package registry

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata/internal/storage"
)

// getManifest answers GET and HEAD /v2/<name>/manifests/<ref>.
func (h *handler) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	var m Manifest
	if h.pushed(rt.name) {
		var err error
		if m, err = h.pushedManifest(r.Context(), rt); err != nil {
			return err
		}
	} else if rt.isDigest() {
		var err error
		m, err = h.manifestByDigest(r, rt)
		if err != nil {
			return err
		}
	} else {
		var err error
		m, err = h.backend.Manifest(r.Context(), rt.name, rt.ref, ParseAccept(r.Header.Values("Accept")))
		if err != nil {
			return err
		}
		if m.Digest == "" {
			sum := sha256.Sum256(m.Body)
			m.Digest = "sha256:" + hex.EncodeToString(sum[:])
		}
		if m.MediaType == "" {
			mt, err := detectManifest(m.Body)
			if err != nil {
				return fmt.Errorf("registry: backend manifest for %s:%s: %w", rt.name, rt.ref, err)
			}
			m.MediaType = mt
		}
	}
	// Canonical keys, assigned directly: this is the pull hot path.
	hd := w.Header()
	hd["Content-Type"] = []string{m.MediaType}
	hd["Content-Length"] = []string{strconv.Itoa(len(m.Body))}
	hd["Docker-Content-Digest"] = []string{m.Digest}
	hd["Etag"] = []string{`"` + m.Digest + `"`}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(m.Body)
	}
	return nil
}

// manifestByDigest reads a manifest from the store. Any repository name may
// read any stored manifest (see the package doc); what is read must parse
// as a manifest or index, and hash to the digest.
func (h *handler) manifestByDigest(r *http.Request, rt route) (Manifest, error) {
	ctx := r.Context()
	key := storage.BlobKey(rt.ref)
	unknown := func() error {
		return NewError(CodeManifestUnknown, "").WithDetail(map[string]string{"digest": rt.ref})
	}
	info, err := h.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return Manifest{}, unknown()
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("registry: stat manifest %s: %w", rt.ref, err)
	}
	if info.Size > MaxManifestSize {
		return Manifest{}, unknown() // a large blob, not a manifest
	}
	rc, err := h.store.Open(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return Manifest{}, unknown()
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("registry: open manifest %s: %w", rt.ref, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, MaxManifestSize+1))
	if err != nil {
		return Manifest{}, fmt.Errorf("registry: read manifest %s: %w", rt.ref, err)
	}
	if len(body) > MaxManifestSize {
		return Manifest{}, unknown()
	}
	if !digestMatches(rt.digest.Algorithm, rt.digest.Hex, body) {
		return Manifest{}, fmt.Errorf("registry: stored manifest %s does not match its digest", rt.ref)
	}
	mt, err := detectManifest(body)
	if err != nil {
		return Manifest{}, unknown()
	}
	return Manifest{Body: body, MediaType: mt, Digest: rt.ref}, nil
}

// digestMatches reports whether body hashes to alg:hexDigest.
func digestMatches(alg, hexDigest string, body []byte) bool {
	switch alg {
	case "sha256":
		sum := sha256.Sum256(body)
		return hex.EncodeToString(sum[:]) == hexDigest
	case "sha512":
		sum := sha512.Sum512(body)
		return hex.EncodeToString(sum[:]) == hexDigest
	}
	return false
}

// manifestFields are the fields that tell manifests and indexes apart.
type manifestFields struct {
	SchemaVersion *int            `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        json.RawMessage `json:"config"`
	Layers        json.RawMessage `json:"layers"`
	Manifests     json.RawMessage `json:"manifests"`
}

// Manifest media types the handler knows.
var knownManifestTypes = map[types.MediaType]bool{
	types.OCIManifestSchema1:    true,
	types.OCIImageIndex:         true,
	types.DockerManifestSchema2: true,
	types.DockerManifestList:    true,
}

// detectManifest validates body as an image manifest or index (schema
// version 2) and returns its media type: the mediaType field when present,
// else an index when it has "manifests", else a Docker manifest when its
// config is a Docker config, else an OCI manifest.
func detectManifest(body []byte) (string, error) {
	var f manifestFields
	if err := json.Unmarshal(body, &f); err != nil {
		return "", fmt.Errorf("not a manifest: %w", err)
	}
	if f.SchemaVersion == nil || *f.SchemaVersion != 2 {
		return "", errors.New("not a manifest: schemaVersion is not 2")
	}
	isArray := func(raw json.RawMessage) bool {
		var a []json.RawMessage
		return len(raw) > 0 && json.Unmarshal(raw, &a) == nil && a != nil
	}
	var config struct {
		MediaType string `json:"mediaType"`
	}
	hasConfig := len(f.Config) > 0 && json.Unmarshal(f.Config, &config) == nil && string(f.Config) != "null"
	index := isArray(f.Manifests)
	image := hasConfig && isArray(f.Layers)
	switch {
	case index == image:
		return "", errors.New("not a manifest: neither an image manifest nor an index")
	case f.MediaType != "":
		mt := types.MediaType(f.MediaType)
		if knownManifestTypes[mt] && mt.IsIndex() != index {
			return "", fmt.Errorf("not a manifest: mediaType %s does not match its fields", mt)
		}
		return f.MediaType, nil
	case index:
		return string(types.OCIImageIndex), nil
	case types.MediaType(config.MediaType) == types.DockerConfigJSON:
		return string(types.DockerManifestSchema2), nil
	default:
		return string(types.OCIManifestSchema1), nil
	}
}
