#!/usr/bin/env bash
# The project's private Python: a venv under the cache holding the pinned packages of the given
# requirements files. Nothing is ever installed into the system Python, and the system Python
# needs only its standard library (3.11+) and the venv module.
#
#   py=$(bash models/python-env.sh models/requirements.txt)      # prints the venv's python
#   bash models/python-env.sh models/requirements.txt tests/requirements.txt
#
# Venv: ${ENFORCEMENT_VENV:-$HOME/.cache/enforcement-gateway/venv}. Idempotent and quick when
# done: a stamp per requirements file, named by the sha256 of its contents, skips pip; changed
# pins make a new stamp (pip then moves the venv to them). Concurrent callers wait on a lock.
# Packages come from PyPI only, through the venv's own pip; pip's progress goes to stderr.
set -euo pipefail
venv="${ENFORCEMENT_VENV:-$HOME/.cache/enforcement-gateway/venv}"

fail() {
    echo "python-env: $*" >&2
    exit 1
}

[ $# -gt 0 ] || fail "usage: python-env.sh REQUIREMENTS..."
for req in "$@"; do
    [ -f "$req" ] || fail "no requirements file $req"
done

command -v python3 >/dev/null 2>&1 \
    || fail "python3 is missing: install the Debian package python3 (sudo apt-get install python3 python3-venv)"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || fail "python3 $(python3 -c 'import platform; print(platform.python_version())') is too old: 3.11+ is needed (Debian 12's python3)"
# Debian splits ensurepip (which gives a venv its pip) into python3-venv.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 \
    || fail "python3 cannot make a venv (no ensurepip): install the Debian package python3-venv (sudo apt-get install python3-venv)"

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

# A venv whose interpreter went away (python upgraded or removed) is rebuilt from scratch.
if [ -d "$venv" ] && ! "$venv/bin/python" -c 'import pip' >/dev/null 2>&1; then
    echo "python-env: $venv is broken (its python or pip is gone): rebuilding it" >&2
    rm -rf "$venv"
fi
if [ ! -d "$venv" ]; then
    echo "python-env: creating the venv $venv" >&2
    python3 -m venv "$venv" >&2 || fail "python3 -m venv $venv failed (Debian: sudo apt-get install python3-venv)"
fi

# One stamp per requirements file, named by the sha256 of its contents.
args=()
stamps=()
for req in "$@"; do
    stamp="$venv/.installed-$(sha256sum <"$req" | cut -c1-16)"
    if [ ! -e "$stamp" ]; then
        args+=(-r "$req")
        stamps+=("$stamp")
    fi
done
if [ ${#args[@]} -gt 0 ]; then
    echo "python-env: installing ${args[*]} into $venv (PyPI)" >&2
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar on \
        "${args[@]}" >&2 || fail "pip install ${args[*]} into $venv failed"
    touch "${stamps[@]}"
fi
echo "$venv/bin/python"
