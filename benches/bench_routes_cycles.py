"""What routing adds to an `invoke`, counted by callgrind: instructions per call, per backend.

    python benches/bench_routes_cycles.py [--calls N]

`bench_routes.py` times the routed call against the unrouted one on the loopback server; on a
shared machine CPU time swings from one minute to the next, so this bench counts the same
calls on callgrind's simulated CPU, whose counts repeat from run to run. Each row runs the
call N times in a child process under ``valgrind --tool=callgrind`` and once with 0 calls;
the difference over N is the per-call count. The server is bench_chat's canned responder in
its own process (not under valgrind), so only the client side is counted. "µs" converts the
added instructions at the instructions per µs this machine runs the unrouted call at
(measured in the same run, outside valgrind).

Needs valgrind (Debian's package); prints nothing else without it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_chat import MESSAGES, Servers

# argv: case, calls, url, benches dir
CHILD = r"""
import gc, sys
sys.path.insert(0, sys.argv[4])
from bench_routes import make_cases

case, calls, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fn = make_cases(url)[case]
for _ in range(200):
    fn()
gc.collect()
gc.disable()
for _ in range(calls):
    fn()
"""

CASES = ("unrouted", "routed (rust)", "routed (python)")


def _count(script: Path, case: str, calls: int, url: str, out: Path) -> int:
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         sys.executable, str(script), case, str(calls), url, str(Path(__file__).parent)],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=True,
        capture_output=True,
    )  # fmt: skip
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {out}")


def per_call(script: Path, tmp: Path, case: str, calls: int, url: str) -> float:
    """Instructions per call of `case`."""
    name = case.replace(" ", "_").strip("()")
    base = _count(script, case, 0, url, tmp / f"{name}.0")
    full = _count(script, case, calls, url, tmp / f"{name}.n")
    return (full - base) / calls


def unrouted_cpu_us(url: str, calls: int) -> float:
    """µs of CPU per unrouted call outside valgrind (median of 5 rounds)."""
    from bench_routes import make_cases

    fn = make_cases(url)["unrouted"]
    for _ in range(200):
        fn()
    rounds = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(calls):
            fn()
        rounds.append((time.process_time() - start) / calls * 1e6)
    return sorted(rounds)[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per measured run")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind not found (apt-get install valgrind): no callgrind table")
        return
    assert MESSAGES
    servers = Servers(1)
    try:
        url = servers.base_url
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "child.py"
            script.write_text(CHILD)
            with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
                futures = {
                    c: pool.submit(per_call, script, Path(tmp), c, args.calls, url) for c in CASES
                }
                counts = {c: f.result() for c, f in futures.items()}
        cpu = unrouted_cpu_us(url, args.calls)
    finally:
        servers.close()
    rate = counts["unrouted"] / cpu  # instructions per µs of this machine's CPU
    print("routed invoke against the same provider unrouted, loopback server (callgrind)")
    print(f"  {'case':<18}{'instructions':>14}{'added':>10}{'≈ µs added':>12}  goal")
    for case in CASES:
        ir = counts[case]
        added = ir - counts["unrouted"]
        goal = ""
        if case == "routed (rust)":
            goal = "<= 2 µs: " + ("met" if added / rate <= 2 else "MISSED")
        elif case == "routed (python)":
            goal = "(the twin)"
        row = f"  {case:<18}{ir:>14,.0f}"
        if case != "unrouted":
            row += f"{added:>10,.0f}{added / rate:>12.2f}  {goal}"
        print(row)
    print(f"  (unrouted: {cpu:.1f} µs of CPU per call here, {rate:,.0f} instructions per µs)")


if __name__ == "__main__":
    main()
