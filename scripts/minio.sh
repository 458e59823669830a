#!/usr/bin/env bash
# Installs a pinned MinIO server binary for the object-storage tests
# (internal/storage S3 suite, test/e2e S3 replicas) at /opt/strata/bin/minio.
# Idempotent: skips the build when the binary exists and was built from the
# pinned module version. The first build takes several minutes and ~150 MB.
#
#   scripts/minio.sh           # install if missing or of another version
#
# MinIO publishes no semver tags, so the pin is a module pseudo-version
# (its go.mod asks for go >= 1.24, which the go 1.26 toolchain satisfies).
set -euo pipefail

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
BIN_DIR=${STRATA_BIN:-/opt/strata/bin}
bin=$BIN_DIR/minio

if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+$MINIO_MODULE[[:space:]]+$MINIO_VERSION([[:space:]]|\$)"; then
  exit 0
fi

echo "deps: go install $MINIO_MODULE@$MINIO_VERSION (takes minutes the first time)" >&2
mkdir -p "$BIN_DIR"
GOBIN=$BIN_DIR GOFLAGS= GOTOOLCHAIN=local go install "$MINIO_MODULE@$MINIO_VERSION"
"$bin" --version >/dev/null
