#!/usr/bin/env bash
# make run: two registries on filesystem storage, until Ctrl-C.
#
#   RUN_ADDR (127.0.0.1:5000)         the bundled offline package set
#                                     (testdata/pkgs: hello, shell, ...)
#   RUN_DEBIAN_ADDR (127.0.0.1:5001)  real software from Debian 12's archive
#                                     (python3, git, curl, ...), amd64 and arm64
#
# The first registry answers at once; the Debian package set is prepared
# meanwhile (about a minute the first time, seconds after that) and served
# by the second. RUN_DEBIAN=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${BIN:-bin/strata}
addr=${RUN_ADDR:-127.0.0.1:5000}
daddr=${RUN_DEBIAN_ADDR:-127.0.0.1:5001}
storage=${RUN_STORAGE:-$PWD/.cache/storage}
debian=${DEBIAN_PKGS:-$PWD/.cache/debian-pkgs}
mkdir -p "$storage" "$storage-debian"

pids=()
stop() {
	trap - INT TERM EXIT
	[ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
	wait 2>/dev/null
	exit 0
}
trap stop INT TERM EXIT

# wait_v2 ADDR PID: until /v2/ answers, or the server exits.
wait_v2() {
	for _ in $(seq 600); do
		curl -fsS -o /dev/null "http://$1/v2/" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || { echo "run: strata serve on $1 exited; its log is above" >&2; exit 1; }
		sleep 0.1
	done
	echo "run: strata serve on $1 did not answer in 60 s" >&2
	exit 1
}

"$bin" serve --listen "$addr" --pkgs-path "$PWD/testdata/pkgs" \
	--storage-path "$storage" --log-format text &
pids+=($!)
wait_v2 "$addr" "${pids[0]}"
cat <<EOF

strata serves the bundled package set on http://$addr (Ctrl-C stops it). In another shell:

    podman pull --tls-verify=false $addr/shell/hello
    podman run --rm --tls-verify=false $addr/shell/hello hello

EOF

[ "${RUN_DEBIAN:-1}" = 0 ] && { wait; exit 0; }
echo "run: preparing Debian 12 packages (python3, git, curl) at $debian ..." >&2
if ! bash scripts/debian-pkgs.sh "$debian" >&2; then
	echo "run: the Debian package set could not be made (see above); serving the bundled set only" >&2
	wait
	exit 0
fi
"$bin" serve --listen "$daddr" --pkgs-path "$debian" --platforms linux/amd64,linux/arm64 \
	--storage-path "$storage-debian" --log-format text &
pids+=($!)
wait_v2 "$daddr" "${pids[1]}"
cat <<EOF

strata serves Debian 12's python3, git and curl on http://$daddr, for linux/amd64 and linux/arm64:

    podman run --rm --tls-verify=false $daddr/shell/python3 python3 -c 'import ssl, sqlite3, json, http.server; print(len(ssl.create_default_context().get_ca_certs()), "CA certificates")'
    podman run --rm --tls-verify=false $daddr/git/curl git --version

EOF
wait
