#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints a summary; fails if any target finds a
# crash (the input is kept under $TARGET/fuzz/artifacts/TARGET/ and named in the output).
#
#   bash fuzz/run.sh            # 30 s per target
#   bash fuzz/run.sh 300        # 5 min per target
#   bash fuzz/run.sh 10 mqtt_payload uart_frame    # only these targets
#
# Uses cargo-fuzz (installed from crates.io if missing) on the stable toolchain with
# RUSTC_BOOTSTRAP=1 for the nightly-only compiler flags libFuzzer needs; no sanitizer by
# default (the code under test is safe Rust; FUZZ_SANITIZER=address to add ASan where the
# toolchain ships its runtime). Seeds come from fuzz/seeds/TARGET (committed, read-only); what
# libFuzzer finds goes to a working corpus under the target dir, so the tree stays clean.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
SECONDS_EACH="${1:-30}"
shift || true
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
FUZZ_TARGET_DIR="$TARGET/fuzz-build"
WORK="$TARGET/fuzz"
SANITIZER="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1
# The fuzz build must not inherit the main workspace's target dir (different flags).
unset CARGO_TARGET_DIR

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked --quiet
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

echo "fuzz: building ${#targets[@]} targets (sanitizer: $SANITIZER)"
cargo fuzz build -s "$SANITIZER" --target-dir "$FUZZ_TARGET_DIR" >"$WORK.build.log" 2>&1 || {
    mkdir -p "$WORK"
    tail -40 "$WORK.build.log"
    echo "fuzz: build failed (log: $WORK.build.log)" >&2
    exit 1
}

failed=0
summary=()
for t in "${targets[@]}"; do
    corpus="$WORK/corpus/$t"
    artifacts="$WORK/artifacts/$t"
    mkdir -p "$corpus" "$artifacts" "seeds/$t"
    log="$WORK/$t.log"
    echo "fuzz: $t for ${SECONDS_EACH}s"
    set +e
    cargo fuzz run -s "$SANITIZER" --target-dir "$FUZZ_TARGET_DIR" "$t" "$corpus" "seeds/$t" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    if [ "$rc" -eq 0 ]; then
        summary+=("$(printf '%-26s ok     %10s runs  cov %6s' "$t" "${runs:-?}" "${cov:-?}")")
    else
        failed=1
        crash=$(grep -o "$artifacts/[^ ]*" "$log" | tail -1)
        summary+=("$(printf '%-26s FAILED %10s runs  %s' "$t" "${runs:-?}" "${crash:-see $log}")")
        grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5 || true
    fi
done

echo
echo "== fuzz summary (${SECONDS_EACH}s per target, $(date -u +%Y-%m-%dT%H:%MZ))"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    echo "fuzz: a target crashed; reproduce with: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s $SANITIZER TARGET ARTIFACT" >&2
    exit 1
fi
echo "fuzz: no crashes"
