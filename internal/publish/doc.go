// Package publish gets images to registries: Copy (push and copy from an OCI
// layout, a docker-archive or another registry), CreateIndex (an OCI index
// from per-platform images), Release (the whole release), Preflight, and
// the credentials they use (Keychain, HasCredential).
//
// It is the one writer of strata: every write to a registry (build
// --output, push, copy, index create, publish) goes through a Target (an
// OCI layout, a docker-archive or a registry, chosen by ParseLocation, the
// one parser of "oci:", "docker-archive:" and registry references). An
// Artifact is an image or an index with its referrers (SBOMs): a registry
// Target writes the content by digest, then the referrers (the referrers
// API, or the referrers tag schema where the registry lacks it), then the
// tag, so a tag never names an image whose SBOM is missing, and an image
// stays an image under its tag.
//
// The OCI model, the registry protocol, blob existence checks, parallel
// uploads, cross-repository mounts and the Basic/Bearer handshake are
// go-containerregistry's (pkg/v1/remote). This package adds, below ggcr's
// authentication, an HTTP stack (see newTransport) for what ggcr lacks:
//
//   - retries of 408, 429 and 5xx answers that honour Retry-After (ggcr
//     ignores the header and never retries 429), bounded by RetryOptions;
//   - a chunked upload fallback: ggcr sends a blob as one PATCH; when that is
//     refused with 413 (a proxy's body limit), the blob goes again in PATCH
//     chunks with Content-Range;
//   - the Bearer token exchange POSTs the OAuth2 password grant first and
//     falls back to GET with Basic auth (ggcr GETs unless it holds an
//     identity token);
//   - plain HTTP only to loopback hosts (IsLoopback: a loopback IP or
//     exactly "localhost"; "localhost.evil.com" is not) unless Insecure
//     (ggcr would also fall back to HTTP for private and .local addresses);
//   - a debug log of every request with credentials redacted.
//
// No secret is ever printed, logged or put in an error.
package publish
