#!/usr/bin/env bash
# Regenerates testdata/corpus/debian12.json, the layering corpus made from
# Debian 12's real dependency graph (Depends, Pre-Depends, Installed-Size of
# bookworm main, amd64). Needs apt's lists of a Debian 12 machine (run
# `apt-get update` first if /var/lib/apt/lists has no Packages index) and lz4.
set -euo pipefail
cd "$(dirname "$0")/../.."
lists=${APT_LISTS:-/var/lib/apt/lists}
idx=$(ls "$lists"/*debian_dists_bookworm_main_binary-amd64_Packages* 2>/dev/null | head -n1 || true)
if [ -z "$idx" ]; then
  echo "debian12.sh: no bookworm main amd64 Packages index in $lists; run: apt-get update" >&2
  exit 1
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
case "$idx" in
  *.lz4) lz4cat "$idx" >"$tmp" ;;
  *.xz) xzcat "$idx" >"$tmp" ;;
  *.gz) zcat "$idx" >"$tmp" ;;
  *) cp "$idx" "$tmp" ;;
esac
go test -count=1 -run '^TestDebianCorpus$' ./internal/layering/eval -debian-packages "$tmp"
echo "wrote testdata/corpus/debian12.json from $idx"
