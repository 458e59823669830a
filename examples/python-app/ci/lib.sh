# Shared by the release steps in this directory; each step is one small
# script that a CI job runs on its own (docs/release.md). Every setting
# comes from the environment:
#
#   IMAGE        REGISTRY/REPOSITORY to release to (push, index, publish)
#   VERSION      the release version; default the CI tag without its
#                leading v ($CI_COMMIT_TAG, $GITHUB_REF_NAME on a tag),
#                else 0.0.0-dev
#   DESCRIPTION  the image description (default examples/python-app/image.yaml)
#   PKGS_PATH    the package set (default .cache/debian-pkgs, made by
#                scripts/debian-pkgs.sh)
#   OUT          the directory handed from job to job (default out)
#   PUBLISH      1 to push; anything else is a dry run (the default)
#   REGISTRY_TOKEN  the credential; else `pass show $PASS_ENTRY`, else the
#                docker/podman auth files (docker login, podman login)
#   PASS_ENTRY   the pass entry (default strata/registry-token)
#   REGISTRY_USER  the user name the token is the password of (registries
#                with Basic auth or a token service); default none: the
#                token is sent as a Bearer token
#   SOURCE_URL   org.opencontainers.image.source of the index
#   STRATA       the strata binary (default strata)
#   CACHE_DIR    strata build's cache (default strata's own)
#
# A blocker (registry down, no credential) stops a step with exit code 2
# and BLOCKER(registry-down) / BLOCKER(empty-token) on stderr, before it
# changes anything. Nothing here prints a secret: never run it with sh -x.
set -eu

: "${STRATA:=strata}"
: "${DESCRIPTION:=examples/python-app/image.yaml}"
: "${PKGS_PATH:=.cache/debian-pkgs}"
: "${OUT:=out}"
: "${IMAGE:=}"
: "${PUBLISH:=}"
: "${PASS_ENTRY:=strata/registry-token}"
: "${REGISTRY_USER:=}"
: "${SOURCE_URL:=https://example.org/strata/examples/python-app}"
: "${CACHE_DIR:=}"

if [ -z "${VERSION:-}" ]; then
	if [ -n "${CI_COMMIT_TAG:-}" ]; then
		VERSION=${CI_COMMIT_TAG#v}
	elif [ "${GITHUB_REF_TYPE:-}" = tag ] && [ -n "${GITHUB_REF_NAME:-}" ]; then
		VERSION=${GITHUB_REF_NAME#v}
	else
		VERSION=0.0.0-dev
	fi
fi

publishing() {
	case "$PUBLISH" in 1 | true | yes | on) return 0 ;; esac
	return 1
}

# is_release: MAJOR.MINOR.PATCH only (no pre-release, no build metadata).
is_release() {
	printf '%s\n' "$VERSION" | grep -Eq '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$'
}

need_image() {
	if [ -z "$IMAGE" ]; then
		echo "IMAGE is not set: set it to REGISTRY/REPOSITORY, e.g. IMAGE=ghcr.io/example/python-app" >&2
		exit 1
	fi
}

# credentials: $REGISTRY_TOKEN, else `pass show $PASS_ENTRY` (its first
# line), else nothing here: strata reads the docker/podman auth files.
credentials() {
	if [ -z "${REGISTRY_TOKEN:-}" ] && command -v pass >/dev/null 2>&1; then
		if tok=$(pass show "$PASS_ENTRY" 2>/dev/null) && [ -n "$tok" ]; then
			REGISTRY_TOKEN=$(printf '%s\n' "$tok" | head -n 1)
			export REGISTRY_TOKEN
		fi
		unset tok
	fi
	if [ -n "$REGISTRY_USER" ]; then
		USER_FLAG="--username=$REGISTRY_USER"
	else
		USER_FLAG=""
	fi
}

# strata_remote runs a strata command that talks to the registry, with the
# user name when there is one.
strata_remote() {
	cmd=$1
	shift
	if [ -n "$USER_FLAG" ]; then
		"$STRATA" "$cmd" "$USER_FLAG" "$@"
	else
		"$STRATA" "$cmd" "$@"
	fi
}

# preflight: the registry is up and takes the credential, or exit 2.
preflight() {
	strata_remote preflight "$IMAGE"
}

build_leg() {
	arch=$1
	mkdir -p "$OUT"
	if [ -n "$CACHE_DIR" ]; then
		set -- --cache-dir "$CACHE_DIR"
	else
		set --
	fi
	"$STRATA" build "$@" --pkgs-path "$PKGS_PATH" -f "$DESCRIPTION" \
		--platform "linux/$arch" --output "oci:$OUT/$arch"
}

push_leg() {
	arch=$1
	need_image
	credentials
	preflight
	if publishing; then
		set --
	else
		set -- --dry-run
	fi
	strata_remote push "$@" --platform "linux/$arch" --digest-file "$OUT/$arch.digest" \
		"oci:$OUT/$arch" "$IMAGE:$VERSION-$arch"
}

index_leg() {
	need_image
	credentials
	preflight
	amd64=$(cat "$OUT/amd64.digest")
	arm64=$(cat "$OUT/arm64.digest")
	set -- "$IMAGE:$VERSION" \
		--from "linux/amd64=$IMAGE:$VERSION-amd64@$amd64" \
		--from "linux/arm64=$IMAGE:$VERSION-arm64@$arm64" \
		--require linux/amd64 --require linux/arm64 \
		--annotation "org.opencontainers.image.version=$VERSION" \
		--annotation "org.opencontainers.image.source=$SOURCE_URL" \
		--digest-file "$OUT/index.digest"
	if publishing; then
		strata_remote index create "$@"
	else
		echo "dry run: would run: strata index create $*"
	fi
}

publish_leg() {
	need_image
	credentials
	preflight
	if ! is_release; then
		echo "version $VERSION is not a release (pre-release, dev or build metadata): latest stays"
		return 0
	fi
	if ! publishing; then
		echo "dry run: would move $IMAGE:latest to the index of $IMAGE:$VERSION (set PUBLISH=1 to publish)"
		return 0
	fi
	index=$(cat "$OUT/index.digest")
	# latest moves last, to the digest the index step pushed; strata checks
	# the version tag still names it (a moved tag is an error).
	strata_remote copy --referrers=false "$IMAGE:$VERSION@$index" "$IMAGE:latest"
}
