#!/usr/bin/env bash
# Installs what strata needs on a Debian 12 machine, as root. Each level adds
# to the one before; idempotent and silent when nothing is missing.
#
#   scripts/deps.sh run      # serving: Nix, static busybox (amd64 and arm64)
#   scripts/deps.sh test     # + the real clients and peers the tests drive,
#                            #   and the Go tools pinned in tools/go.mod
#   scripts/deps.sh bench    # + the benchmark peers (wrk, nginx, hyperfine)
#
# No version is named here: Debian's packages come from the machine's
# release, Go tools from tools/go.mod and tools/minio/go.mod (checked by
# go.sum). `make check-pins` proves every pin resolves on a new machine.
set -euo pipefail
cd "$(dirname "$0")/.."

level=${1:-test}
case $level in run|test|bench) ;; *) echo "usage: scripts/deps.sh run|test|bench" >&2; exit 2 ;; esac

say() { echo "deps: $*" >&2; }
need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
want() { have "$1" || need_apt+=("$2"); }

# --- run: what serving the bundled package set needs ---------------------
want nix-build nix-bin
[ -x /bin/busybox ] || need_apt+=(busybox-static)
want lz4cat lz4 # scripts/debian-pkgs.sh reads Debian's Packages lists
want xz xz-utils  # scripts/debian-pkgs.sh unpacks the .debs
want curl curl   # scripts/run.sh waits for /v2/
if [ "$level" != run ]; then
	want skopeo skopeo
	want umoci umoci
	want podman podman
	want runc runc
	want pigz pigz
	want zstd zstd
	want qemu-aarch64-static qemu-user-static
	want docker-registry docker-registry
	want htpasswd apache2-utils
	want sqlite3 sqlite3
	want jq jq
	want chromium chromium
fi
if [ "$level" = bench ]; then
	want wrk wrk
	want hyperfine hyperfine
	want nginx nginx
fi

export DEBIAN_FRONTEND=noninteractive
if [ ${#need_apt[@]} -gt 0 ]; then
	say "installing ${need_apt[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# arm64 as a foreign architecture, with its Packages lists: the arm64
# busybox below and scripts/debian-pkgs.sh (Debian packages for arm64).
if ! dpkg --print-foreign-architectures | grep -qx arm64 || ! ls /var/lib/apt/lists/*_binary-arm64_Packages* >/dev/null 2>&1; then
	say "adding the arm64 architecture"
	dpkg --add-architecture arm64
	apt-get update -qq
fi

# The arm64 busybox for the cross platform of the offline package set.
arm_bb=/opt/strata/busybox-arm64/bin/busybox
if [ ! -x "$arm_bb" ]; then
	say "fetching busybox-static:arm64"
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get download -qq busybox-static:arm64)
	mkdir -p /opt/strata/busybox-arm64
	dpkg -x "$tmp"/busybox-static_*.deb /opt/strata/busybox-arm64
	rm -rf "$tmp"
fi

# Nix's state directories, single-user as root. No nix.conf is written:
# strata passes the settings it needs on every Nix call.
mkdir -p /nix/var/nix/profiles /nix/var/nix/gcroots
# The store's database made once here: Nix 2.8 answers "database is busy"
# to two programs that both find it missing and create it at once (the
# first `make run` builds the offline set and the Debian set side by side).
[ -e /nix/var/nix/db/db.sqlite ] || (. scripts/nix-env.sh && nix-store --init)

[ "$level" = run ] && exit 0

# --- test: the Go tools, built from their pinned modules -------------------
# With the Go release go.mod names (as make does), so that tools that load
# strata's packages (staticcheck, govulncheck) read them as the build does.
# Each binary is rebuilt only when its module version or Go release differs.
export GOTOOLCHAIN=${GOTOOLCHAIN:-$(sed -n 's/^toolchain //p' go.mod)}
[ "$GOTOOLCHAIN" != local ] || GOTOOLCHAIN=$(sed -n 's/^toolchain //p' go.mod)
gover=$(go env GOVERSION)
gobin=$(go env GOPATH)/bin
mkdir -p "$gobin"
build_tools() { # modfile bindir go-release|any tool-package...
	local modfile=$1 dir=$2 go=$3 pkg mod want got stale=()
	shift 3
	for pkg in "$@"; do
		mod=$(go list -modfile="$modfile" -f '{{.Module.Path}}' "$pkg")
		want=$(go list -modfile="$modfile" -m -f '{{.Version}}' "$mod")
		got=$(go version -m "$dir/${pkg##*/}" 2>/dev/null | awk -v m="$mod" 'NR==1 {print $2} ($1=="mod"||$1=="dep") && $2==m {print $3}' | paste -sd' ' || true)
		[ "$go" = any ] && got=${got#* } && go=""
		[ "$got" = "${go:+$go }$want" ] || stale+=("$pkg")
	done
	[ ${#stale[@]} -eq 0 ] && return 0
	say "building ${stale[*]##*/} from $modfile"
	mkdir -p "$dir"
	GOFLAGS= go build -modfile="$modfile" -o "$dir/" "${stale[@]}"
}
build_tools tools/go.mod "$gobin" "$gover" \
	github.com/google/go-containerregistry/cmd/crane \
	github.com/regclient/regclient/cmd/regctl \
	honnef.co/go/tools/cmd/staticcheck \
	golang.org/x/vuln/cmd/govulncheck \
	github.com/opencontainers/distribution-spec/conformance

# MinIO for the object-storage tests (about 6 minutes the first time); a
# server, so any Go release that built the pinned version will do.
build_tools tools/minio/go.mod "${STRATA_BIN:-/opt/strata/bin}" any github.com/minio/minio
