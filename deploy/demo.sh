#!/usr/bin/env bash
# The embedded default in one command: an in-process MQTT broker, simulated restaurants,
# manholes and kitchen cameras (the firmware simulator), storage under ./data/demo, and the
# API/dashboard on http://127.0.0.1:8080 (sign in with the token in data/demo/admin.token).
# Nothing to install beyond Rust and npm (the dashboard's chart library, fetched once).
#
#   bash deploy/demo.sh                      # until Ctrl-C
#   bash deploy/demo.sh --duration-s 60      # any `gateway demo` option, see --help
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The dashboard's chart library (npm, once; served from web/node_modules, nothing at run time).
bash web/setup.sh

# Models (vision) are fetched into ~/.cache when a fetch script exists and they are missing.
if [ -f models/fetch.sh ]; then
    bash models/fetch.sh
fi

echo "building the gateway (release)..."
cargo build --release -p gateway
exec "${CARGO_TARGET_DIR:-target}/release/gateway" demo "$@"
