#!/usr/bin/env bash
# The registry suite on free-threaded CPython 3.13t with the GIL disabled. The interpreter is
# built from Debian's source by the shared tool (a few minutes the first time, cached after).
set -euo pipefail
cd "$(dirname "$0")/.."
tool=../shared/tools/build-free-threaded-cpython
python=$("$tool" | tail -n 1)
unset PYTHON_GIL
rm -rf dist-ft
.venv/bin/maturin build --release -q -o dist-ft -i "$python"
"$python" -m venv --clear .venv-ft
.venv-ft/bin/python -m pip install -q --upgrade pip
.venv-ft/bin/python -m pip install -q --only-binary=:all: --group test-free-threaded dist-ft/chatmodels-*.whl
.venv-ft/bin/python -m pytest \
    tests/free_threaded tests/test_registry.py tests/test_global_registry.py \
    tests/test_bad_input.py tests/test_parity_stateful.py tests/test_thread_stress.py \
    tests/routes
