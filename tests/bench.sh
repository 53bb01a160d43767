#!/usr/bin/env bash
# Every benchmark in one run (issue 13): builds release, starts the real servers (e2e harness),
# runs each benchmark beside a reference measured in the same run on this machine, and prints
# one table (figure, reference, ratio, peak RSS, CPU). Results: $TARGET/bench/results.json,
# the table in $TARGET/bench/table.md. About 3 minutes on 2 cores after the build.
#
#   bash tests/bench.sh
#   BENCH_ONLY="ingest db_writes" bash tests/bench.sh      # a subset
#
# Benchmarks: ingest (bench_ingest vs mosquitto_sub), db_writes (gateway MQTT->database vs a raw
# HTTP line-protocol poster), vision (vision_bench vs Python onnxruntime), modbus (modbus_bench
# vs a pymodbus async client polling the same slaves), outbox, rules, clues, camera.
# Needs the test servers and Python packages that tests/run-all.sh installs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/bench"
LOGS="$OUT/logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"
ONLY="${BENCH_ONLY:-ingest db_writes vision modbus outbox rules clues camera}"
want() { [[ " $ONLY " == *" $1 "* ]]; }
step() { echo "bench: [$(date -u +%H:%M:%S)] $*"; }

# Python references (pymodbus, onnxruntime) run in the project's venv (models/python-env.sh).
PY="$(bash models/python-env.sh models/requirements.txt tests/requirements.txt)"
export PATH="$(dirname "$PY"):$PATH"

for cmd in mosquitto mosquitto_sub victoria-metrics python3; do
    command -v "$cmd" >/dev/null 2>&1 || {
        echo "bench: $cmd not found (bash tests/run-all.sh installs the test servers)" >&2
        exit 1
    }
done
TIME=/usr/bin/time
[ -x "$TIME" ] || { apt-get install -y -qq time >/dev/null 2>&1 || true; }

step "building release (gateway, benchmark drivers, benchmark tests)"
cargo build --release -q -p gateway --bin gateway
# The ingest benchmark runs this copy, built alone as users build it: the examples and tests
# built below pull in dev-dependencies, whose features cargo unifies into the gateway crate, and
# building the e2e tests relinks target/release/gateway with them (a 35 MB binary instead of
# 29.5 MB on 2026-12-06), which is not the binary users run.
mkdir -p "$OUT"
cp "$TARGET/release/gateway" "$OUT/gateway"
cargo build --release -q -p gateway --example vision_bench --example modbus_bench
cargo build --release -q -p e2e --example bench_ingest --example bench_db_writes
cargo test --release -q -p gateway --lib --test e2e --no-run 2>&1 |
    grep -v '^ *Executable' || true

# run NAME CMD...: runs under /usr/bin/time (peak RSS, CPU), output to $LOGS/NAME.log.
run() {
    local name=$1
    shift
    step "$name: $*"
    local rc=0
    "$TIME" -f '%M %U %S %e' -o "$LOGS/$name.time" "$@" >"$LOGS/$name.log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "bench: $name FAILED (exit $rc); last lines:" >&2
        tail -15 "$LOGS/$name.log" >&2
        echo "$name" >>"$LOGS/failed"
    fi
    grep '^BENCH ' "$LOGS/$name.log" | sed "s/^BENCH //" | sed "s/^/$name /" >>"$LOGS/rows" || true
}

if want ingest; then
    # shellcheck disable=SC2086
    run ingest "$TARGET/release/examples/bench_ingest" --gateway "$OUT/gateway" \
        --out "$OUT/ingest.json" ${BENCH_INGEST_ARGS:---messages 100000 --devices 10000 --rounds 2}
fi
if want db_writes; then
    run db_writes "$TARGET/release/examples/bench_db_writes" 100000
fi
if want vision; then
    if [ ! -f "${GATEWAY_MODELS_DIR:-$HOME/.cache/enforcement-gateway/models}/yolov3-tiny.onnx" ]; then
        step "vision: fetching the models (models/fetch.sh)"
        bash models/fetch.sh >"$LOGS/models.log" 2>&1 || echo "bench: models/fetch.sh failed" >&2
    fi
    IMG=/usr/share/darknet/data/dog.jpg
    [ -f "$IMG" ] || IMG="$OUT/street.jpg"
    if [ ! -f "$IMG" ]; then
        python3 -c "from PIL import Image; import sys; Image.new('RGB',(768,576),(90,110,130)).save(sys.argv[1])" "$IMG"
    fi
    run vision "$TARGET/release/examples/vision_bench" "$IMG" 30
fi
if want modbus; then
    run modbus "$TARGET/release/examples/modbus_bench" 200 20 10 4
    # Reference: pymodbus's async client, same load, against four fresh slave processes.
    ports=()
    pids=()
    for _ in 1 2 3 4; do
        p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        python3 tests/modbus/slave.py --tcp "$p" >"$LOGS/slave-$p.log" 2>&1 &
        pids+=($!)
        ports+=("$p")
    done
    for p in "${ports[@]}"; do
        for _ in $(seq 100); do grep -q ready "$LOGS/slave-$p.log" 2>/dev/null && break; sleep 0.1; done
    done
    run modbus_reference python3 tests/modbus/poll_reference.py \
        --ports "$(IFS=,; echo "${ports[*]}")" --devices 200 --seconds 10
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
fi
if want outbox; then
    run outbox env OUTBOX_BENCH_DIR="$TARGET" cargo test --release -q -p gateway --lib \
        outbox::tests::throughput -- --ignored --nocapture
fi
if want rules; then
    run rules cargo test --release -q -p gateway --lib rules_bench -- --ignored --nocapture
fi
if want clues; then
    run clues env CLUE_BENCH_EVENTS=200000 CLUE_BENCH_POOL=50000 cargo test --release -q \
        -p gateway --test e2e -- --ignored --nocapture clue_bench::
fi
if want camera; then
    run camera cargo test --release -q -p gateway --test e2e -- --ignored \
        --nocapture camera_health_eval::camera_frame_cost
fi

step "collecting"
python3 tests/bench_table.py "$OUT" "$LOGS"
if [ -f "$LOGS/failed" ]; then
    echo "bench: FAILED: $(tr '\n' ' ' <"$LOGS/failed")(logs in $LOGS)" >&2
    exit 1
fi
