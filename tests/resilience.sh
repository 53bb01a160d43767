#!/usr/bin/env bash
# Resilience suite (issue 13): under a steady MQTT load, one fault at a time, counted in the
# database afterwards. Prints per fault "FAULT: sent N, stored N, lost 0, duplicates M" and a
# summary; fails if any fault loses a reading. Loopback only, every wait bounded (~6 min).
#
#   bash tests/resilience.sh                 # every fault
#   bash tests/resilience.sh disk_full       # one fault (test name filter)
#
# Faults: gateway SIGKILL, database down then up, broker restart (clean and crash), disk full
# under the storage dir (3 MB tmpfs; needs root for mount), gateway clock jump (libfaketime),
# 10% malformed traffic, a slow database (delaying TCP proxy), a flood of reconnecting
# devices. Tests: gateway/tests/e2e/resilience.rs. Results: $TARGET/resilience/results.json.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/resilience"
mkdir -p "$OUT"

need=()
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto mosquitto-clients)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need+=(faketime)
if [ ${#need[@]} -gt 0 ]; then
    echo "resilience: installing ${need[*]}"
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null; }
    else
        echo "resilience: not root; install ${need[*]} first" >&2
        exit 1
    fi
fi

echo "resilience: building (release)"
cargo build --release -p gateway --bin gateway --test e2e -q

echo "resilience: running faults one at a time"
set +e
# The faults are the ignored tests of the `resilience` module of the one integration-test
# binary; a name given on the command line picks one of them.
filters=()
for f in "$@"; do filters+=("resilience::$f"); done
[ ${#filters[@]} -gt 0 ] || filters=("resilience::")
cargo test --release -p gateway --test e2e -q -- \
    --ignored --nocapture --test-threads=1 "${filters[@]}" 2>&1 | tee "$OUT/log.txt"
status=${PIPESTATUS[0]}
set -e

echo
echo "== resilience summary ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
python3 - "$OUT/log.txt" "$OUT/results.json" <<'PY'
import json, re, sys
rows = [json.loads(m) for m in re.findall(r"RESILIENCE (\{.*\})", open(sys.argv[1]).read())]
json.dump(rows, open(sys.argv[2], "w"), indent=1)
for r in rows:
    if "skipped" in r:
        print("%s: NOT RUN (%s)" % (r["fault"], r["skipped"]))
    else:
        note = "  [%s]" % r["note"] if r.get("note") else ""
        print("%s: sent %d, stored %d, lost %d, duplicates %d%s"
              % (r["fault"], r["sent"], r["stored"], r["lost"], r["duplicates"], note))
PY
echo "results: $OUT/results.json"
if [ "$status" -ne 0 ]; then
    echo "resilience: FAILED (a fault lost data or a step failed; see $OUT/log.txt)" >&2
fi
exit "$status"
