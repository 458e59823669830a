#!/usr/bin/env bash
# Makes a Nix package set of Debian 12 packages at DIR, for linux/amd64 and
# linux/arm64: python3 (with its whole standard library and venv), git,
# curl, cacert (ca-certificates with its bundle), openssl, bash, coreutils,
# dash and their Depends closures, one store path per Debian package.
# DIR is an ordinary --pkgs-path for strata serve and strata build.
#
#   scripts/debian-pkgs.sh DIR                 # both architectures
#   DEBIAN_ARCHES=amd64 scripts/debian-pkgs.sh DIR
#   DEBIAN_PACKAGES="python3 jq" scripts/debian-pkgs.sh DIR
#
# Steps: scripts/debian (Go) resolves the closures from apt's Packages lists
# (newest version, first satisfiable alternative, Provides), asks apt-get
# where the missing .debs are (one call), downloads them side by side,
# checks each against the list's SHA256, unpacks each as soon as it is
# there (usr merged into /; manual pages, translations and documentation
# but copyright files left out) and writes DIR/gen/*.nix; then nix-build
# builds every store path (scripts/debian/default.nix, copied to
# DIR/default.nix). It prints the time of each step. Cached: a second run
# downloads, unpacks and builds nothing. Interrupted runs leave only
# temporaries the next run removes; DIR/default.nix appears once
# everything built.
#
# Needs apt's lists for both architectures, lz4, xz, nix-build and the
# static busybox, and Nix's database made before the two nix-builds below
# start side by side (Nix 2.8 answers "database is busy" to two programs
# that both create a missing one): scripts/deps.sh does all of it.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
start=$EPOCHREALTIME
# CPU seconds (user and system) of this shell and the programs it waited for.
tck=$(getconf CLK_TCK)
cpu() { awk -v t="$tck" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13 + $14 + $15) / t }' "/proc/$$/stat"; }
phase_t=$start phase_c=0 phases=()
phase() {
  local now=$EPOCHREALTIME c
  c=$(cpu)
  phases+=("$(awk -v n="$1" -v a="$phase_t" -v b="$now" -v c="$phase_c" -v d="$c" 'BEGIN { printf "%s %.1f s (cpu %.1f s)", n, b - a, d - c }')")
  phase_t=$now phase_c=$c
}
. "$(dirname "${BASH_SOURCE[0]}")/nix-env.sh"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
mkdir -p "$1"
dir=$(cd "$1" && pwd)
# One run at a time per directory (make debian-pkgs beside the e2e tests).
exec 9>"$dir/.lock"
flock 9

for t in lz4cat xz apt-get nix-build go; do
  command -v "$t" >/dev/null || { echo "debian-pkgs: $t is missing: run scripts/deps.sh" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "debian-pkgs: /bin/busybox is missing: run scripts/deps.sh" >&2; exit 1; }

arches=${DEBIAN_ARCHES:-amd64,arm64}
packages=${DEBIAN_PACKAGES:-python3 python3-venv git curl ca-certificates openssl bash coreutils dash}

args=(-arch "$arches"
  -exclude dpkg,debconf,debconf-2.0,perl,perl-base,perl-modules-5.36,libperl5.36,liberror-perl,install-info
  -recommends ca-certificates
  -tools patchelf
  -merge 'python3=(lib)?python3(\.[0-9]+)?(-minimal|-stdlib|-venv|-distutils|-lib2to3)?'
  -env 'python3-minimal=PYTHONHOME=@out@'
  -env 'git=GIT_EXEC_PATH=@out@/lib/git-core'
  -env 'git=GIT_TEMPLATE_DIR=@out@/share/git-core/templates'
  -env 'ca-certificates=SSL_CERT_FILE=@out@/etc/ssl/certs/ca-bundle.crt'
  -env 'ca-certificates=CURL_CA_BUNDLE=@out@/etc/ssl/certs/ca-bundle.crt'
  -env 'ca-certificates=GIT_SSL_CAINFO=@out@/etc/ssl/certs/ca-bundle.crt'
  -ca-bundle ca-certificates
  $packages)

# The resolver's inputs: when neither they nor apt's lists changed since
# the last complete run, its output stands and only nix-build runs.
lists=(/var/lib/apt/lists/*_binary-*_Packages*)
stamp=$({ cat "$here"/debian/*.go "$here/debian/default.nix"; printf '%s\n' "${args[@]}"; stat -c '%n %s %Y' "${lists[@]}"; } | sha256sum | cut -c1-64)
if [ "$(cat "$dir/gen/stamp" 2>/dev/null)" = "$stamp" ] && [ -f "$dir/default.nix" ]; then
  cp "$dir/default.nix" "$dir/.default.nix.tmp"
else
  rm -f "$dir/gen/stamp"
  bin=$dir/.bin/debian
  mkdir -p "$dir/.bin"
  (cd "$repo" && go build -o "$bin.tmp" ./scripts/debian && mv "$bin.tmp" "$bin")
  phase "go build"
  "$bin" -out "$dir" "${args[@]}"
  phase "prepare"
  cp "$here/debian/default.nix" "$dir/.default.nix.tmp"
fi

export NIX_CONFIG="substituters =
${NIX_CONFIG:-}"
# Build every store path, one nix-build per architecture side by side:
# each evaluates its set (importing its unpacked trees) on its own core.
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; exit 1' INT TERM
for a in ${arches//,/ }; do
  case $a in
    amd64) sys=x86_64-linux ;;
    arm64) sys=aarch64-linux ;;
    *) echo "debian-pkgs: unknown architecture $a" >&2; exit 1 ;;
  esac
  expr="builtins.attrValues (builtins.removeAttrs (import $dir/.default.nix.tmp { crossSystem = \"$sys\"; }) [ \"pkgsCross\" \"strata\" \"lib\" ])"
  nix-build --no-out-link --max-jobs 2 --cores 1 -E "$expr" >"$dir/.nix-build-$a.log" 2>&1 &
  pids+=($!)
done
failed=
i=0
for a in ${arches//,/ }; do
  if ! wait "${pids[$i]}"; then
    grep -v '^  /nix/store/' "$dir/.nix-build-$a.log" | tail -n 20 | cut -c1-400 >&2
    failed+=" $a"
  fi
  i=$((i + 1))
done
trap - INT TERM
if [ -n "$failed" ]; then
  echo "debian-pkgs: nix-build failed for$failed (above)" >&2
  exit 1
fi
out=$(cat "$dir"/.nix-build-*.log)
rm -f "$dir"/.nix-build-*.log
phase "nix-build"
mv "$dir/.default.nix.tmp" "$dir/default.nix"
echo "$stamp" > "$dir/gen/stamp"
n=$(printf '%s\n' "$out" | grep '^/nix/store/' | sort -u | wc -l)
(IFS=,; echo "debian-pkgs: ${phases[*]}" | sed 's/,/, /g') >&2
awk -v d="$dir" -v n="$n" -v s="$start" -v e="$EPOCHREALTIME" -v c="$(cpu)" \
  'BEGIN { printf "debian-pkgs: %s: %d store paths ready in %.1f s (cpu %.1f s)\n", d, n, e - s, c }' >&2
