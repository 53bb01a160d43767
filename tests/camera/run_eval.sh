#!/usr/bin/env bash
# Camera-health evaluation on real photos: Pillow + numpy from the project's venv, builds the
# labelled fixtures (once, into ~/.cache/enforcement-gateway/camera-fixtures), prints the
# precision/recall table per condition and fails below the floor; BENCH=1 also prints the
# per-frame cost (release build).
#
#   bash tests/camera/run_eval.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="$(bash models/python-env.sh models/requirements.txt tests/requirements.txt)"
export PATH="$(dirname "$PY"):$PATH"
cargo test -p gateway --test e2e -- --nocapture camera_health_eval::
if [ "${BENCH:-0}" = 1 ]; then
    cargo test --release -p gateway --test e2e -- --ignored --nocapture camera_health_eval::camera_frame_cost
fi
