"""The routes benchmarks: what routing adds to a call, what a failover costs, how choosing
scales with threads. Ratios and differences are against baselines measured in the same run.

    python benches/bench_routes.py [--quick]

1. A routed `invoke` (a route of one deployment, the Rust core and the Python twin) against the
   same provider unrouted, on bench_chat's canned loopback server (its own process): CPU time
   of this process per call, medians of interleaved rounds. Goal: routing adds at most 2 µs
   of CPU per call on the Rust backend.
2. Failover: a call whose first deployment refuses the connection (a closed loopback port)
   against a call sent straight to the second. Goal: at most 1 ms more (wall time).
3. Choosing a deployment (one `choose` + `finish`, a routed call's decision and outcome, on
   a route state of 3 deployments with a priority plan) from 1 and from 8 threads, per
   backend, beside the same threads each doing a dict lookup behind its own lock (the
   machine's ceiling). Meaningful on free-threaded 3.13t; with the GIL, threads take turns.

Nothing asserts a time: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chatmodels
from bench_chat import MESSAGES, Servers
from chatmodels import Deployment, ProviderRegistry
from chatmodels._providers._builtins import register_builtins
from chatmodels._routes._state import Limits, Outcome, Plan, new_route_state
from chatmodels._routes._types import Breaker


def cpu_rounds(
    cases: dict[str, Callable[[], object]], number: int, repeat: int
) -> dict[str, list[float]]:
    """µs of this process's CPU per call of each case, `repeat` interleaved rounds."""
    for fn in cases.values():
        for _ in range(min(100, number)):
            fn()
    out: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            start = time.process_time()
            for _ in range(number):
                fn()
            out[name].append((time.process_time() - start) / number * 1e6)
    return out


def wall_rounds(
    cases: dict[str, Callable[[], object]], number: int, repeat: int
) -> dict[str, list[float]]:
    """µs of wall time per call of each case, `repeat` interleaved rounds."""
    for fn in cases.values():
        for _ in range(min(20, number)):
            fn()
    out: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            out[name].append((time.perf_counter() - start) / number * 1e6)
    return out


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def options(url: str) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "api_key": "sk-bench", "base_url": url}


def make_cases(url: str) -> dict[str, Callable[[], object]]:
    """The three calls of benchmark 1: unrouted, routed on the Rust core, routed on the twin
    (telemetry off, so the calls' own telemetry is the same on every side)."""
    chatmodels.configure(level="off")
    cases: dict[str, Callable[[], object]] = {}
    direct = None
    for backend in ("rust", "python"):
        reg = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
        register_builtins(reg)
        reg.register_route("chat", [Deployment("openai", options(url))])
        routed = reg.create("chat")
        cases[f"routed ({backend})"] = lambda m=routed: m.invoke(MESSAGES)
        if direct is None:
            direct = reg.create("openai", {**options(url), "max_retries": 0})
    assert direct is not None
    cases["unrouted"] = lambda: direct.invoke(MESSAGES)
    return cases


def routing_overhead(url: str, number: int, repeat: int) -> None:
    cases = make_cases(url)
    times = cpu_rounds(cases, number, repeat)
    base = times["unrouted"]
    print("\n1. routed invoke against the same provider unrouted (CPU µs per call)")
    print(f"  {'case':<18} {'median':>9} {'added':>9}  goal")
    print(f"  {'unrouted':<18} {statistics.median(base):9.1f}")
    for name in ("routed (rust)", "routed (python)"):
        added = statistics.median(a - b for a, b in zip(times[name], base, strict=True))
        goal = "<= 2 µs: " + ("met" if added <= 2 else "MISSED") if "rust" in name else "(twin)"
        print(f"  {name:<18} {statistics.median(times[name]):9.1f} {added:9.2f}  {goal}")


def failover_cost(url: str, number: int, repeat: int) -> None:
    reg = ProviderRegistry(backend="rust")
    register_builtins(reg)
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    reg.register_route(
        "failover",
        [Deployment("openai", options(dead)), Deployment("openai", options(url))],
        breaker=None,  # every call pays the refused connection: the cost under test
    )
    reg.register_route("straight", [Deployment("openai", options(url))], breaker=None)
    failover, straight = reg.create("failover"), reg.create("straight")
    times = wall_rounds(
        {
            "straight": lambda: straight.invoke(MESSAGES),
            "failover": lambda: failover.invoke(MESSAGES),
        },
        number,
        repeat,
    )
    added = statistics.median(
        a - b for a, b in zip(times["failover"], times["straight"], strict=True)
    )
    print("\n2. failover from a refused connection (wall µs per call)")
    print(f"  straight to the second deployment  {statistics.median(times['straight']):9.1f}")
    print(f"  first refuses, then the second     {statistics.median(times['failover']):9.1f}")
    verdict = "met" if added <= 1000 else "MISSED"
    print(f"  added by the failover              {added:9.1f}  goal <= 1000 µs: {verdict}")
    reg.clear()


def choosing_scaling(ops: int) -> None:
    print("\n3. choosing a deployment: choose + finish on 3 deployments (ns per op)")
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    build = "free-threaded, GIL off" if not gil else "GIL on: threads take turns"
    print(f"  Python {sysconfig.get_python_version()} ({build})")
    print(f"  {'backend':<10} {'1 thread':>10} {'8 threads':>10} {'8 / 1 throughput':>17}")

    def run(make_op: Callable[[], Callable[[], object]], threads: int) -> float:
        barrier = threading.Barrier(threads + 1)
        per = ops // threads

        def work() -> None:
            op = make_op()
            barrier.wait()
            for _ in range(per):
                op()

        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        barrier.wait()
        start = time.perf_counter()
        for t in pool:
            t.join()
        return (time.perf_counter() - start) / (per * threads) * 1e9

    success = int(Outcome.SUCCESS)
    plan = Plan("priority", [1.0] * 3, [-1 & (2**64 - 1)] * 3, [None] * 3)
    for backend in ("rust", "python"):
        state = new_route_state([Limits()] * 3, Breaker(), backend=backend, plan=plan)  # type: ignore[arg-type]

        def make_op(state: object = state) -> Callable[[], object]:
            clock = time.monotonic
            choose, finish = state.choose, state.finish  # type: ignore[attr-defined]

            def op() -> None:
                adm = choose(clock(), 100)
                finish(adm, clock(), success, 90, 0.01)

            return op

        one, eight = run(make_op, 1), run(make_op, 8)
        print(f"  {backend:<10} {one:10.0f} {eight:10.0f} {one / eight:17.2f}")

    def make_dict_op() -> Callable[[], object]:
        lock, table = threading.Lock(), {"openai": 1}

        def op() -> None:
            with lock:
                table.get("openai")

        return op

    one, eight = run(make_dict_op, 1), run(make_dict_op, 8)
    print(f"  {'own dict':<10} {one:10.0f} {eight:10.0f} {one / eight:17.2f}  (the ceiling)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    number, repeat = (200, 5) if args.quick else (1000, 9)
    servers = Servers(1)
    try:
        routing_overhead(servers.base_url, number, repeat)
        failover_cost(servers.base_url, number // 4, repeat)
    finally:
        servers.close()
    choosing_scaling(100_000 if args.quick else 400_000)


if __name__ == "__main__":
    main()
