#!/usr/bin/env bash
# make bench: every benchmark next to its peer, in one run, with ratios.
# Machines are noisy: each benchmark reports medians over several rounds and
# ratios against a peer measured in the same run, never one absolute time.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/nix-env.sh"
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"
export STRATA_BENCH=1
out=${BENCH_OUT:-.cache/bench}
mkdir -p "$out"

section() { printf '\n=== %s ===\n' "$*"; }

section "layering: efficiency and update cost per update kind, tuning, held-out and fresh held-out corpora (nixpkgs, generated shapes, Debian 12), strata beside four baselines, with the efficiency and update-cost bounds (budgets 100 and 20)"
go test -run '^$' -bench Layering -benchtime 1x ./internal/layering/eval/ | tee "$out/layering.txt"

section "packing: the closure of largeImage, strata vs tar | pigz at the same level"
pkgs=$(nix-build --no-out-link --option substituters '' testdata/pkgs -A largeImage \
  --arg busyboxAmd64 /bin/busybox 2>/dev/null || nix-build --no-out-link --option substituters '' testdata/pkgs -A largeImage)
paths=$(nix-store --query --requisites $pkgs | paste -sd, -)
STRATA_PACK_DIR=/nix/store STRATA_PACK_PATHS="$paths" \
  go test -run '^$' -bench BenchmarkPackVsPigz -benchtime 3x ./internal/layer/ | tee "$out/pack.txt"

section "copy: strata copy vs skopeo copy vs crane copy between two docker-registry instances"
STRATA_BENCH_ROUNDS=${STRATA_BENCH_ROUNDS:-5} \
  go test -run '^$' -bench BenchmarkCopyVsPeers -benchtime 1x ./internal/publish/ | tee "$out/copy.txt"

section "build: warm rebuild after a one-package change vs a cold build (strata build)"
STRATA_BENCH_ROUNDS=${STRATA_BENCH_ROUNDS:-3} \
  go test -count=1 -run TestBuildRebuildSpeed -v ./test/e2e/ | grep -vE '^\s*\{' | tee "$out/build.txt"

section "registry: manifests by digest and by tag (pushed and on-demand) and a 1 MiB blob, strata vs nginx serving the same bytes (and docker-registry 2.8.2), wrk -t2 -c16; peak RSS"
go test -count=1 -run TestRegistryBench -v ./test/e2e/ | grep -E 'bench:|^(--- |ok|FAIL)' | tee "$out/registry.txt"

section "nixcache: bytes a node pulls for a second image sharing most of its closure with the first (shell/largeimage/hello after shell/largeimage), layers vs nix-snapshotter + strata's Nix binary cache (Nix 2.8 substituting, counted on the wire), budgets 100 and 8"
go test -count=1 -timeout 60m -run TestNixCacheBench -v ./test/e2e/ | grep -E 'bench:|^(--- |ok|FAIL)' | tee "$out/nixcache.txt"

section "real closures: Debian 12 python3, git, curl (scripts/debian-pkgs.sh): packing, rebuild after a bump, sharing"
bash scripts/debian/bench.sh | tee "$out/debian.txt"
