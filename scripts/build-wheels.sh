#!/usr/bin/env bash
# The release artifacts for this platform, into dist/: manylinux_2_17 (manylinux2014) x86_64
# wheels for CPython $1 (default python3) and for the free-threaded CPython 3.13t, linked by
# zig (the ziglang package) against glibc 2.17's symbols, and the sdist. The wheels workflow
# builds the same tags, plus the other platforms.
#   usage: scripts/build-wheels.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
# The interpreters' own paths, before PATH changes below.
python=$("${1:-python3}" -c 'import sys; print(sys.executable)')
free_threaded=$(../shared/tools/build-free-threaded-cpython | tail -n 1)
# maturin finds zig as `python3 -m ziglang`, with the ziglang of .venv's python3.
export PATH=$PWD/.venv/bin:$PATH
rm -rf dist
for interpreter in "$python" "$free_threaded"; do
    maturin build --release --zig --compatibility manylinux2014 -q -o dist -i "$interpreter"
done
maturin sdist -o dist
ls -1 dist
