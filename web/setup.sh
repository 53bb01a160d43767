#!/usr/bin/env bash
# Installs the dashboard's npm packages (uPlot for the charts, playwright-core for the browser
# test) into web/node_modules from the committed package-lock.json, when they are missing or
# the lock file changed. Quiet and quick when already done. Used by deploy/demo.sh and
# tests/run-all.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
stamp=node_modules/.package-lock.json
if [ -d node_modules/uplot ] && [ -d node_modules/playwright-core ] && [ "$stamp" -nt package-lock.json ]; then
    echo "npm: web/node_modules up to date"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "npm is not installed: the dashboard needs it once to fetch its chart library (apt-get install npm)" >&2
    exit 1
fi
echo "npm: installing web/ packages (npm ci)"
npm ci --no-audit --no-fund --loglevel=error
