#!/usr/bin/env bash
# The registry suite on free-threaded CPython 3.13t with the GIL disabled, against the
# manylinux cp313t wheel `make wheels` left in dist/ (checked there by scripts/check_dist.py).
# The interpreter is built from Debian's source by the shared tool (a few minutes the first
# time, cached after).
set -euo pipefail
cd "$(dirname "$0")/.."
tool=../shared/tools/build-free-threaded-cpython
python=$("$tool" | tail -n 1)
unset PYTHON_GIL
wheels=(dist/chatmodels-*-cp313-cp313t-*manylinux_2_17_x86_64*.whl)
[[ -f ${wheels[0]} ]] || { echo "no cp313t manylinux_2_17 wheel in dist/: run make wheels" >&2; exit 1; }
"$python" -m venv --clear .venv-ft
.venv-ft/bin/python -m pip install -q --upgrade pip
.venv-ft/bin/python -m pip install -q --only-binary=:all: --group test-free-threaded "${wheels[0]}"
.venv-ft/bin/python -m pytest \
    tests/free_threaded tests/registry/test_registry.py tests/registry/test_global_registry.py \
    tests/registry/test_bad_input.py tests/registry/test_parity_stateful.py \
    tests/registry/test_thread_stress.py \
    tests/routes
