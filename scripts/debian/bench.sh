#!/usr/bin/env bash
# Benchmarks on real closures: the Debian package set of
# scripts/debian-pkgs.sh (make bench runs this; BENCH_OUT holds the output).
#
#   1. packing python3's closure: strata gzip vs tar | pigz (same level),
#      strata zstd vs tar | zstd -T0 (same level);
#   2. strata build of examples/python-app: a warm rebuild after one
#      package bump (libsqlite3-0 gets a new version, so it and python3,
#      which refers to it, are new store paths) vs a cold build;
#   3. bytes shared among the python3, git/curl and shell images.
#
# Medians over STRATA_BENCH_ROUNDS rounds (default 3), ratios in the same run.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../nix-env.sh"
cd "$(dirname "$0")/../.."
rounds=${STRATA_BENCH_ROUNDS:-3}
out=${BENCH_OUT:-.cache/bench}
pkgs=${DEBIAN_PKGS:-$PWD/.cache/debian-pkgs}
mkdir -p "$out"
export NIX_CONFIG="substituters =
${NIX_CONFIG:-}"

bash scripts/debian-pkgs.sh "$pkgs"
strata=$PWD/.cache/bench-strata
go build -o "$strata" ./cmd/strata
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "--- packing python3's closure (amd64)"
py=$(nix-build --no-out-link "$pkgs" -A python3)
paths=$(nix-store --query --requisites "$py" | paste -sd, -)
echo "$(nix-store --query --requisites "$py" | wc -l) store paths, $(nix path-info --extra-experimental-features nix-command -S "$py" | awk '{ printf "%.1f MB (NAR)", $2 / 1e6 }')"
STRATA_PACK_DIR=/nix/store STRATA_PACK_PATHS="$paths" \
  go test -run '^$' -bench 'BenchmarkPackVs(Pigz|Zstd)$' -benchtime "${rounds}x" ./internal/layer/ | grep -E 'Benchmark|strata|ok|FAIL'

echo "--- strata build of examples/python-app: warm rebuild after one package bump vs cold"
# The bumped sets: copies of the set's Nix files (the unpacked trees are
# shared through a link) with libsqlite3-0's version changed.
bumped() { # N: a set whose libsqlite3-0 is "bumped" N times
  local d=$work/bump$1
  if [ ! -d "$d" ]; then
    mkdir -p "$d/gen"
    cp "$pkgs/default.nix" "$d/"
    cp "$pkgs"/gen/*.nix "$d/gen/"
    ln -s "$pkgs/trees" "$d/trees"
    awk -v n="$1" '/^    "libsqlite3-0" = \{/ { g = 1 } g && /storeVersion = / { sub(/";$/, "+bench" n "\";"); g = 0 } { print }' \
      "$pkgs/gen/amd64.nix" > "$d/gen/amd64.nix"
    grep -q "+bench$1\"" "$d/gen/amd64.nix" || { echo "bench: could not bump libsqlite3-0" >&2; exit 1; }
    nix-build --no-out-link "$d" -A python3 >/dev/null # built before timing: strata's work is measured
  fi
  echo "$d"
}
build() { # PKGS CACHE: prints seconds and layers packed
  "$strata" build -f examples/python-app/image.yaml --pkgs-path "$1" --platform linux/amd64 --cache-dir "$2" --json |
    jq -r '"\(.seconds) \(.layersPacked)"'
}
cold=() warm=() coldPacked=0 warmPacked=0
for r in $(seq "$rounds"); do
  cache=$work/cache$r
  read -r s p < <(build "$pkgs" "$cache")
  cold+=("$s"); coldPacked=$p
  read -r s p < <(build "$(bumped "$r")" "$cache")
  warm+=("$s"); warmPacked=$p
  echo "round $r: cold ${cold[-1]} s ($coldPacked layers packed), warm after the bump ${warm[-1]} s ($warmPacked packed)"
done
c=$(printf '%s\n' "${cold[@]}" | median)
w=$(printf '%s\n' "${warm[@]}" | median)
awk -v c="$c" -v w="$w" -v cp="$coldPacked" -v wp="$warmPacked" \
  'BEGIN { printf "bench: python-app cold %.2f s (%d layers packed), warm rebuild after one bump %.2f s (%d packed): %.1fx faster\n", c, cp, w, wp, c / w }'

echo "--- bytes shared among the python3, git/curl and shell images (amd64, one cache)"
cache=$work/share
for img in "python3" "git curl" "bash coreutils dash"; do
  # shellcheck disable=SC2086
  "$strata" build --pkgs-path "$pkgs" $img --platform linux/amd64 --cache-dir "$cache" --json |
    jq -r '.manifests[0].layers[] | "\(.digest) \(.size)"' > "$work/layers-${img// /-}"
  echo "$img: $(wc -l < "$work/layers-${img// /-}") layers, $(awk '{ s += $2 } END { printf "%.1f MB", s / 1e6 }' "$work/layers-${img// /-}")"
done
cat "$work"/layers-* | awk '
  { total += $2; if (!seen[$1]++) unique += $2 }
  END { printf "bench: images %.1f MB in all, %.1f MB stored once: %.1f MB (%.0f%%) shared, storage ratio %.2f\n", total / 1e6, unique / 1e6, (total - unique) / 1e6, 100 * (total - unique) / total, total / unique }'
