#!/usr/bin/env bash
# Installs everything strata's build, demo and tests need on a Debian 12
# machine, as root. Idempotent: a second run installs nothing.
#
#   scripts/deps.sh            # tools for make run / make test
#   scripts/deps.sh bench      # also the benchmark peers
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
want() { have "$1" || need_apt+=("$2"); }

want nix-build nix-bin
[ -x /bin/busybox ] || need_apt+=(busybox-static)
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
want curl curl
want jq jq
want lz4cat lz4
want chromium chromium
if [ "${1:-}" = bench ]; then
  want wrk wrk
  want hyperfine hyperfine
  want nginx nginx
fi

export DEBIAN_FRONTEND=noninteractive
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "deps: installing ${need_apt[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# arm64 as a foreign architecture, with its Packages lists: the arm64
# busybox below and scripts/debian-pkgs.sh (Debian packages for arm64).
if ! dpkg --print-foreign-architectures | grep -qx arm64 || ! ls /var/lib/apt/lists/*_binary-arm64_Packages* >/dev/null 2>&1; then
  echo "deps: adding the arm64 architecture" >&2
  dpkg --add-architecture arm64
  apt-get update -qq
fi

# The arm64 busybox for the cross platform of the offline package set.
arm_bb=/opt/strata/busybox-arm64/bin/busybox
if [ ! -x "$arm_bb" ]; then
  echo "deps: fetching busybox-static:arm64" >&2
  dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; apt-get update -qq; }
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq busybox-static:arm64)
  mkdir -p /opt/strata/busybox-arm64
  dpkg -x "$tmp"/busybox-static_*.deb /opt/strata/busybox-arm64
  rm -rf "$tmp"
fi

# Go tools, pinned.
gobin=$(go env GOPATH)/bin
goinst() { # name module@version
  [ -x "$gobin/$1" ] || { echo "deps: go install $2" >&2; go install "$2"; }
}
goinst crane github.com/google/go-containerregistry/cmd/crane@v0.22.1
goinst regctl github.com/regclient/regclient/cmd/regctl@v0.11.7
goinst staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2

# MinIO, for the object-storage tests (scripts/minio.sh pins the version).
[ -x scripts/minio.sh ] && bash scripts/minio.sh

# Nix: single-user, as root, no daemon, no binary cache.
mkdir -p /nix/var/nix/profiles /etc/nix
if ! grep -q '^substituters' /etc/nix/nix.conf 2>/dev/null; then
  cat >>/etc/nix/nix.conf <<'CONF'
substituters =
sandbox = true
build-users-group =
CONF
fi
echo "deps: ok" >&2
