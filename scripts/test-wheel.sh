#!/usr/bin/env bash
# Check the release artifacts `make wheels` left in dist/ (auditwheel: the manylinux_2_17 tag
# and no shared library beyond the policy; twine check --strict), install the manylinux wheel
# for PYTHON into a fresh virtual environment with the test and documentation tools, run the
# test suite against the installed wheel, so that a packaging mistake fails the tests, and
# build the documentation site with --strict. The source tree lives under python/, so from the
# repository root only the wheel is importable.
#   usage: scripts/test-wheel.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
abi=$("$python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
wheels=(dist/chatmodels-*-"$abi"-"$abi"-*manylinux_2_17_x86_64*.whl)
[[ -f ${wheels[0]} ]] || { echo "no $abi manylinux_2_17 wheel in dist/: run make wheels" >&2; exit 1; }
.venv/bin/python scripts/check_dist.py dist
"$python" -m venv --clear .venv-test
.venv-test/bin/python -m pip install -q --upgrade pip
.venv-test/bin/python -m pip install -q --group test --group docs "${wheels[0]}"
.venv-test/bin/python -m pytest
NO_MKDOCS_2_WARNING=1 .venv-test/bin/python -m mkdocs build --strict --quiet
