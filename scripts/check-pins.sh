#!/usr/bin/env bash
# Resolves every pinned Go module version through the module proxy with an
# empty module cache, as a new machine would, and fails naming each pin the
# proxy refuses. A warm cache answers for versions the proxy no longer
# serves; this check never sees one.
#
#   scripts/check-pins.sh [ROOT]    # ROOT defaults to the project
#
# Pins are: go.mod and every tools/**/go.mod (their whole module graphs),
# and each MODULE@VERSION written in scripts/, Makefile, test/ and .ci/.
set -uo pipefail
root=$(realpath "${1:-$(dirname "$0")/..}")
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
# A new machine: nothing cached, the proxy and checksum database as configured.
fresh() { env GOMODCACHE="$tmp/mod" GOPATH="$tmp/gopath" GOCACHE="$tmp/cache" GOFLAGS=-mod=mod "$@"; }

refused=()

# Module graphs: every requirement of each go.mod, checked against its
# go.sum; the modules are checked in parallel, each in a cache of its own.
mods=()
while IFS= read -r modfile; do mods+=("$modfile"); done < <(find "$root" -name go.mod -not -path '*/.cache/*' -not -path '*/testdata/*' -not -path '*/.git/*' | sort)
for i in "${!mods[@]}"; do
	(
		# A copy of go.mod and go.sum: -mod=mod may add go.sum lines, and
		# the checked tree must not change.
		cache=$tmp/m$i
		dir=$cache/module
		mkdir -p "$dir"
		cp "${mods[$i]}" "$dir/go.mod"
		cp "$(dirname "${mods[$i]}")/go.sum" "$dir/go.sum" 2>/dev/null || true
		if ! out=$(cd "$dir" && env GOMODCACHE="$cache/mod" GOPATH="$cache/gopath" GOCACHE="$cache/cache" GOFLAGS=-mod=mod timeout 300 go list -m all 2>&1 >/dev/null); then
			why=$(grep -m1 -E 'not available|40[34]|410|unknown revision|invalid version|verifying|missing' <<<"$out")
			echo "${mods[$i]#"$root"/}: ${why:-$(tail -n1 <<<"$out")}" >"$tmp/refused.$i"
		fi
	) &
done
wait
checked=${#mods[@]}
for f in "$tmp"/refused.*; do [ -f "$f" ] && refused+=("$(cat "$f")"); done

# MODULE@VERSION pins written in scripts and tests. The module is the
# longest prefix of the package path that the proxy knows.
pins=$(cd "$root" && grep -rhoE '[a-z0-9.-]+\.[a-z]{2,}/[A-Za-z0-9_./~-]+@v?[0-9][A-Za-z0-9.+-]*' scripts Makefile test .ci 2>/dev/null | sort -u)
for pin in $pins; do
	checked=$((checked + 1))
	path=${pin%@*} ver=${pin##*@} ok="" why=""
	while [ -n "$path" ] && [ "$path" != . ]; do
		out=$(cd "$tmp" && fresh timeout 60 go list -m -json "$path@$ver" 2>&1)
		if grep -q '"Version"' <<<"$out" && ! grep -q '"Error"' <<<"$out"; then ok=1; break; fi
		[ -n "$why" ] || why=$(grep -m1 -oE '(403|404|410)[^"]*|not available|unknown revision|invalid version[^"]*' <<<"$out")
		path=$(dirname "$path")
	done
	[ -n "$ok" ] || refused+=("$pin: ${why:-the module proxy does not serve it}")
done

if [ ${#refused[@]} -gt 0 ]; then
	echo "check-pins: ${#refused[@]} pinned version(s) the module proxy refuses (a warm module cache hides this):" >&2
	printf '  %s\n' "${refused[@]}" >&2
	echo "check-pins: pin a version the proxy serves (go list -m -versions MODULE lists them)." >&2
	exit 1
fi
echo "check-pins: $checked module graphs and $(wc -w <<<"$pins") pinned versions resolve from an empty module cache"
