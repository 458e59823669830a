#!/usr/bin/env bash
# govulncheck against the Go vulnerability database pinned in
# tools/vulndb/go.mod, indexed locally (vuln.go.dev is not reachable here).
# Exits non-zero when a vulnerability is reachable from strata's code.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Go release strata builds with (go.mod's toolchain line), whose
# standard library is the one checked.
export GOTOOLCHAIN=$(sed -n 's/^toolchain //p' go.mod)
mod=tools/vulndb/go.mod
src=$(go list -modfile=$mod -m -f '{{.Dir}}' golang.org/x/vulndb)
[ -n "$src" ] || { GOFLAGS= go mod download -modfile=$mod golang.org/x/vulndb; src=$(go list -modfile=$mod -m -f '{{.Dir}}' golang.org/x/vulndb); }
ver=$(go list -modfile=$mod -m -f '{{.Version}}' golang.org/x/vulndb)
db=${STRATA_CACHE:-.cache}/vulndb/$ver
if [ ! -f "$db/index/db.json" ]; then
	rm -rf "$db.tmp" && mkdir -p "$db.tmp"
	go tool -modfile=$mod indexdb -vulns "$src/data/osv" -out "$db.tmp"
	rm -rf "$db" && mv "$db.tmp" "$db"
fi
exec govulncheck -db "file://$(realpath "$db")" ./...
