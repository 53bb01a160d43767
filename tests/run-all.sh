#!/usr/bin/env bash
# One command for every check: install the test servers if missing, then
# format check, clippy, and all tests (unit + end-to-end against real
# mosquitto, VictoriaMetrics and InfluxDB 1.x on loopback), building once.
#
#   bash tests/run-all.sh              # from the repo root (or any cwd)
#   SKIP_INSTALL=1 bash tests/run-all.sh   # never touch apt/pip
#
# Exits non-zero if any step fails. Uses $CARGO_TARGET_DIR when set.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# A fresh clone gains nothing from incremental caches, and they cost gigabytes.
[ "${CI:-}" = true ] && export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# The project's private Python (models/python-env.sh).
VENV="${ENFORCEMENT_VENV:-$HOME/.cache/enforcement-gateway/venv}"

RUN_START=$SECONDS
FAILED=()
SUMMARY=()

banner() { printf '\n==== %s ====\n' "$*"; }

# step NAME CMD...: run, time, record; never aborts the script.
step() {
    local name="$1"; shift
    banner "$name"
    local t0=$SECONDS
    "$@"
    local rc=$?
    local dt=$((SECONDS - t0))
    if [ $rc -eq 0 ]; then
        SUMMARY+=("ok    ${dt}s  $name")
        printf -- '---- %s: ok (%ss)\n' "$name" "$dt"
    else
        SUMMARY+=("FAIL  ${dt}s  $name (exit $rc)")
        FAILED+=("$name")
        printf -- '---- %s: FAILED with exit %s (%ss)\n' "$name" "$rc" "$dt"
    fi
    return $rc
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# command -> Debian package that provides it
declare -A APT_FOR=(
    [mosquitto]=mosquitto
    [mosquitto_passwd]=mosquitto
    [mosquitto_pub]=mosquitto-clients
    [mosquitto_sub]=mosquitto-clients
    [victoria-metrics]=victoria-metrics
    [influxd]=influxdb
    [socat]=socat
    [openssl]=openssl
    [stdbuf]=coreutils
    [python3]=python3
    [chromium]=chromium
    [node]=nodejs
    [npm]=npm
    [ffmpeg]=ffmpeg
    [exiftool]=libimage-exiftool-perl
    [psql]=postgresql-client-15
    [setpriv]=util-linux
    [lighttpd]=lighttpd
    [md5sum]=coreutils
)

install_deps() {
    local missing=() cmd pkg
    for cmd in "${!APT_FOR[@]}"; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
            pkg="${APT_FOR[$cmd]}"
            [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
        fi
    done
    # The dashboard's screenshots show Chinese: a CJK font for chromium.
    fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-wqy-zenhei)
    # PostgreSQL 15 for the shared clue store's tests: the server binaries are not on PATH
    # (tests/src/postgres.rs runs them from here, as the package's `postgres` user when root).
    [ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
    # The bounded clock-jump fault (resilience::bounded_clock_jump_loses_nothing) steers the
    # gateway's wall clock with libfaketime.
    [ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing+=(faketime)
    # Pulled-camera tests: an RTSP server from GStreamer (tests/camera/rtsp_server.py runs on
    # the system Python, whose `gi` bindings are Debian's) streaming Motion-JPEG.
    /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import Gst, GstRtspServer; Gst.init(None); assert Gst.ElementFactory.find("rtpjpegpay") and Gst.ElementFactory.find("jpegdec")' >/dev/null 2>&1 \
        || missing+=(python3 python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "apt: installing ${missing[*]}"
        # Packages must not start their system services (ports 1883/8086/8428):
        # tests start their own servers on free ports.
        local policy=/usr/sbin/policy-rc.d created_policy=0
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod +x "$policy" && created_policy=1
        fi
        as_root apt-get update -q || return 1
        as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
        local rc=$?
        [ $created_policy -eq 1 ] && as_root rm -f "$policy"
        [ $rc -eq 0 ] || return $rc
    else
        echo "apt: nothing missing (mosquitto, mosquitto-clients, victoria-metrics, influxdb, socat, openssl, chromium, nodejs, npm, a CJK font, postgresql-15, lighttpd, GStreamer's RTSP server, faketime)"
    fi

    # Python: every package the tests and the model converter use (tests/requirements.txt,
    # models/requirements.txt: pymodbus, Pillow, numpy, onnxruntime, onnx), pinned, in the
    # project's private venv; the system Python is never changed. Then the models themselves
    # (PyPI only, sha256-verified, cached under ~/.cache; a no-op when present).
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        as_root apt-get update -q && as_root apt-get install -y -q --no-install-recommends python3-venv || return 1
    fi
    bash models/python-env.sh models/requirements.txt tests/requirements.txt >/dev/null || return 1
    bash models/fetch.sh || return 1

    # Camera-health fixtures from real photos: the tuning scenes (scikit-image wheel) and the
    # judging scenes (Debian opencv-doc), fetched once, sha256-verified, cached under ~/.cache.
    local py="$VENV/bin/python3" fx_version fx
    [ -x "$py" ] || py=python3
    fx_version=$(sed -n 's/^VERSION = "\(.*\)"$/\1/p' tests/camera/make_fixtures.py)
    fx="${CAMERA_FIXTURES_DIR:-$HOME/.cache/enforcement-gateway/camera-fixtures/v$fx_version}"
    if [ ! -f "$fx/tune/labels.tsv" ]; then
        "$py" tests/camera/make_fixtures.py "$fx/tune" || return 1
    fi
    if [ ! -f "$fx/judge/labels.tsv" ]; then
        "$py" tests/camera/make_fixtures.py "$fx/judge" --source opencv-doc \
            || { as_root apt-get update -q \
                && "$py" tests/camera/make_fixtures.py "$fx/judge" --source opencv-doc; } \
            || return 1
    fi

    # Dashboard: uPlot and playwright-core from web/package-lock.json (the browser test drives
    # the chromium installed above; no browser download).
    bash web/setup.sh || return 1

    # Report versions: servers whose behaviour the harness depends on.
    mosquitto -h 2>/dev/null | head -1
    victoria-metrics -version 2>/dev/null | head -1 || true
    influxd version 2>/dev/null | head -1
    "$VENV/bin/python" -c 'import pymodbus; print("pymodbus", pymodbus.__version__)'
    chromium --version 2>/dev/null | head -1
}

check_toolchain() {
    cargo --version && cargo fmt --version && cargo clippy --version
}

if [ "${SKIP_INSTALL:-0}" = 1 ]; then
    banner "install: skipped (SKIP_INSTALL=1)"
else
    step "install test dependencies" install_deps || {
        echo "cannot continue without the test servers" >&2
        exit 1
    }
fi
# The tests' `python3` (Modbus slaves, fixtures, plate rendering) is the venv's, when there is one.
if [ -x "$VENV/bin/python3" ]; then
    export PATH="$VENV/bin:$PATH"
    echo "python3: $VENV/bin/python3"
fi
step "toolchain" check_toolchain || exit 1
# The build needs several GB; say so up front rather than fail mid-link.
df -h "${CARGO_TARGET_DIR:-$ROOT/target}" 2>/dev/null || df -h "$ROOT"

# Layers (ARCHITECTURE.md): no cycle between the gateway's top-level modules. Needs no
# build and takes well under a second, so it runs before the first compile.
step "no module cycles (tests/tools/module-cycles.py gateway/src)" \
    python3 "$ROOT/tests/tools/module-cycles.py" "$ROOT/gateway/src"
step "cargo fmt --all --check" cargo fmt --all --check
step "cargo clippy --workspace --all-targets -- -D warnings" \
    cargo clippy --workspace --all-targets -- -D warnings
# The production binary is built without the `demo` feature, which the line above never sees
# (the tests turn it on); this keeps `cargo build --release -p gateway` compiling.
step "cargo clippy -p gateway --bins (production features) -- -D warnings" \
    cargo clippy -p gateway --bins -- -D warnings

# No doc-test step: the crates set `doctest = false` (their examples run in the integration
# tests), which saves CI a separate doc-test build.
if cargo nextest --version >/dev/null 2>&1; then
    PROFILE=default
    [ "${CI:-}" = true ] && PROFILE=ci
    step "cargo nextest run --workspace (profile $PROFILE)" \
        cargo nextest run --workspace --profile "$PROFILE"
else
    echo "cargo-nextest not found: using cargo test"
    step "cargo test --workspace --all-targets" cargo test --workspace --all-targets
fi

banner "summary ($((SECONDS - RUN_START))s total)"
printf '%s\n' "${SUMMARY[@]}"
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "FAILED: ${FAILED[*]}"
    exit 1
fi
echo "all steps passed"
