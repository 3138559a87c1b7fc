#!/usr/bin/env bash
# Install the sdist in dist/ into a fresh virtual environment, building the extension from it
# as pip does for a platform without a wheel (maturin from PyPI, the Rust toolchain on PATH),
# then run the smoke test there: import, both backends, a loopback call. Cargo's target
# directory is the repository's, so only the crate itself is compiled again.
#   usage: scripts/test-sdist.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
sdists=(dist/chatmodels-*.tar.gz)
[[ -f ${sdists[0]} ]] || { echo "no sdist in dist/: run make wheels" >&2; exit 1; }
"$python" -m venv --clear .venv-sdist
.venv-sdist/bin/python -m pip install -q --upgrade pip
CARGO_TARGET_DIR=$PWD/target .venv-sdist/bin/python -m pip install -q --no-binary=chatmodels "${sdists[0]}"
.venv-sdist/bin/python scripts/smoke.py
.venv-sdist/bin/chatmodels --version
