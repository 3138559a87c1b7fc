#!/usr/bin/env bash
# Build a release wheel, install it into a fresh virtual environment with the test tools, and
# run the test suite against the installed wheel, so that a packaging mistake fails the tests.
# The source tree lives under python/, so from the repository root only the wheel is importable.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
rm -rf dist
.venv/bin/maturin build --release -q -o dist -i "$python"
"$python" -m venv --clear .venv-test
.venv-test/bin/python -m pip install -q --upgrade pip
.venv-test/bin/python -m pip install -q --group test dist/chatmodels-*.whl
.venv-test/bin/python -m pytest
