#!/usr/bin/env bash
# The plate evaluation: our reader against hyperlpr 0.0.2 and agentclpr 1.1.0 on the real photos of
# groundtruth.tsv.
#
#   PLATES_HYPERLPR_GIT=/path/to/HyperLPR/.git bash tests/plates/eval.sh [--split judge|tune] [--runs N] [--details]
#   PLATES_EASYPR_GIT=/path/to/EasyPR/.git PLATES_LPRNET_GIT=/path/to/LPRNet_Pytorch/.git \
#       bash tests/plates/eval.sh --split judge2 [--runs N] [--repeat N]
#   PLATES_HYPERLPR_GIT=... PLATES_WZH_GIT=... PLATES_PLREC_GIT=/path/to/python_PlateRecogntion/.git \
#       bash tests/plates/eval.sh --split tune,tune3,tune4 --no-baseline   # the choosing splits
#
# Fetches what is missing (tests/plates/fetch.sh, models/fetch.sh), builds the plate_eval example
# in release mode, then prints the tables (tests/plates/eval.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
plates="${ENFORCEMENT_PLATES_DIR:-$HOME/.cache/enforcement-gateway/plates}"
bash "$root/models/fetch.sh"
bash "$root/tests/plates/fetch.sh"
(cd "$root" && cargo build --release -q -p gateway --example plate_eval)
target="${CARGO_TARGET_DIR:-$root/target}"
exec python3 "$root/tests/plates/eval.py" --ours "$target/release/examples/plate_eval" \
    --images "$plates/images" --baseline-python "$plates/venv/bin/python" \
    --agentclpr-python "$plates/venv-agentclpr/bin/python" "$@"
