#!/usr/bin/env bash
# Ingest benchmark (issue 3): the gateway draining a queued 200,000-message MQTT backlog
# into its outbox and into VictoriaMetrics, against mosquitto_sub draining the same backlog.
#
#   bash tests/bench-ingest.sh                          # 200,000 messages, 10,000 devices
#   bash tests/bench-ingest.sh --messages 20000 --devices 1000
#
# Builds release, starts mosquitto and VictoriaMetrics on free loopback ports (e2e harness),
# prints progress and a results table, writes $CARGO_TARGET_DIR/bench/ingest.json (or
# target/bench/ingest.json). Extra flags go to the driver (tests/examples/bench_ingest.rs).
# Needs mosquitto, mosquitto-clients and victoria-metrics (bash tests/run-all.sh installs them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

for cmd in mosquitto mosquitto_sub victoria-metrics; do
    command -v "$cmd" >/dev/null 2>&1 || {
        echo "bench-ingest: $cmd not found (bash tests/run-all.sh installs the test servers)" >&2
        exit 1
    }
done

cargo build --release -p gateway --bin gateway
cargo build --release -p e2e --example bench_ingest

exec "$TARGET/release/examples/bench_ingest" \
    --gateway "$TARGET/release/gateway" \
    --out "$TARGET/bench/ingest.json" \
    "$@"
