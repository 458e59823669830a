#!/usr/bin/env bash
# The fresh-clone rehearsal: the README's two commands as a new user runs
# them. Clones HEAD into a new temporary folder and, with new empty HOME,
# GOPATH, GOMODCACHE, GOCACHE and Nix configuration folder and a PATH of
# the Go toolchain and the system only:
#   1. starts `make run` and waits until /v2/ answers,
#   2. runs shell/hello with podman and checks that it prints hello,
#   3. stops the server,
#   4. runs `make test`,
# printing the time of each step. Exits non-zero at the first failure.
#
#   scripts/fresh-clone.sh            # the whole rehearsal
#   FRESH_SKIP_TEST=1 scripts/fresh-clone.sh    # steps 1-3 only
#
# What it cannot make new: the machine's Debian packages and /opt/strata
# (MinIO, the arm64 busybox), which scripts/deps.sh installs once per
# machine; run it on a new machine to rehearse those too.
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=$(mktemp -d /tmp/strata-fresh-XXXXXX)
log=$work/log
mkdir -p "$log"
echo "fresh-clone: $work (logs in $log)"

git clone -q "$repo" "$work/strata"
git -C "$work/strata" log --oneline -1
mkdir -p "$work/home" "$work/gopath" "$work/gomodcache" "$work/gocache" "$work/nixconf"
# NIX_CONF_DIR: an empty folder, so Nix runs as on a machine that has no
# /etc/nix/nix.conf (Debian's nix-bin installs none).
clean_env=(env -i
	HOME="$work/home" GOPATH="$work/gopath" GOMODCACHE="$work/gomodcache" GOCACHE="$work/gocache"
	NIX_CONF_DIR="$work/nixconf"
	PATH="$(dirname "$(command -v go)"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	TERM=dumb LANG=C.UTF-8)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port

times=()
step() { times+=("$(printf '%-34s %6.0f s' "$1" "$2")"); echo "fresh-clone: $1: $(printf '%.0f' "$2") s"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
summary() {
	echo
	echo "fresh-clone: times"
	printf '  %s\n' "${times[@]}"
}

server=""
cleanup() {
	if [ -n "$server" ]; then kill -INT -- "-$server" 2>/dev/null || true; sleep 2; kill -KILL -- "-$server" 2>/dev/null || true; fi
}
trap cleanup EXIT

# 0. The user's own client, which make run does not install (it is not
#    needed to serve): podman with runc, as scripts/deps.sh test installs them.
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
	t0=$(now)
	echo "fresh-clone: installing podman and runc (the client)"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc >/dev/null
	step "apt-get install podman (the client)" "$(since "$t0")"
fi

# 1. make run, until /v2/ answers.
t0=$(now)
(cd "$work/strata" && exec setsid "${clean_env[@]}" RUN_ADDR="$addr" RUN_DEBIAN_ADDR="127.0.0.1:$dport" make run) >"$log/make-run.log" 2>&1 &
server=$!
until curl -fsS -o /dev/null "http://$addr/v2/" 2>/dev/null; do
	if ! kill -0 "$server" 2>/dev/null; then
		tail -n 30 "$log/make-run.log"
		echo "fresh-clone: make run exited before serving /v2/" >&2
		exit 1
	fi
	if [ "$(since "$t0" | cut -d. -f1)" -gt 900 ]; then
		echo "fresh-clone: make run did not serve /v2/ in 15 minutes" >&2
		exit 1
	fi
	sleep 1
done
step "make run until /v2/ answers" "$(since "$t0")"

# 2. podman run shell/hello, as the README says (plus this machine's
#    podman settings, see ../shared/TESTING.md), in a store of its own.
t0=$(now)
pm=$work/podman
mkdir -p "$pm"
printf '[containers]\ndefault_ulimits = []\n' >"$pm/containers.conf"
out=$(CONTAINERS_CONF=$pm/containers.conf podman --root "$pm/root" --runroot "$pm/run" \
	--runtime runc --cgroup-manager=cgroupfs \
	run --rm --tls-verify=false "$addr/shell/hello" hello 2>"$log/podman.log") || { cat "$log/podman.log"; exit 1; }
echo "  $out"
case $out in *[Hh]ello*) ;; *) echo "fresh-clone: shell/hello printed '$out', not hello" >&2; exit 1 ;; esac
step "podman run shell/hello" "$(since "$t0")"
testtools='staticcheck|govulncheck|crane|regctl|conformance|chromium|minio|docker-registry|skopeo|umoci|podman|qemu'
if grep -E '^deps: ' "$log/make-run.log" | grep -qE "$testtools"; then
	echo "fresh-clone: make run's output names a test-only tool:" >&2
	grep -E '^deps: ' "$log/make-run.log" | grep -E "$testtools" >&2
	exit 1
fi

# 3. stop the server.
cleanup
server=""
wait 2>/dev/null || true

# 4. make test.
if [ "${FRESH_SKIP_TEST:-0}" != 1 ]; then
	t0=$(now)
	if ! (cd "$work/strata" && "${clean_env[@]}" make test) >"$log/make-test.log" 2>&1; then
		tail -n 60 "$log/make-test.log"
		step "make test (FAILED)" "$(since "$t0")"
		summary
		exit 1
	fi
	step "make test" "$(since "$t0")"
fi
summary
chmod -R u+w "$work" 2>/dev/null
rm -rf "$work"
