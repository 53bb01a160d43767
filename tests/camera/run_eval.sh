#!/usr/bin/env bash
# Camera-health evaluation on real photos: installs Pillow + numpy if missing, builds the
# labelled fixtures (once, into ~/.cache/enforcement-gateway/camera-fixtures), prints the
# precision/recall table per condition and fails below the floor; BENCH=1 also prints the
# per-frame cost (release build).
#
#   bash tests/camera/run_eval.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
if ! python3 -c 'import PIL, numpy' >/dev/null 2>&1; then
    python3 -m pip install -q pillow numpy \
        || python3 -m pip install -q --break-system-packages pillow numpy
fi
cargo test -p gateway --test camera_health_eval -- --nocapture
if [ "${BENCH:-0}" = 1 ]; then
    cargo test --release -p gateway --test camera_health_eval -- --ignored --nocapture camera_frame_cost
fi
