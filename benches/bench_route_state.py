"""Route-state micro benchmark: one decision and its release (try_acquire + release) on the Rust
core and the pure-Python twin, against a dict lookup behind a threading.Lock, in one run.

    python benches/bench_route_state.py [--quick]

Prints medians in ns per call and the ratios to the baseline, from one thread and from 8
threads (wall time over all calls, one deployment shared by every thread, so the 8-thread row
measures contention on its critical section). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import timeit
from collections.abc import Callable

from chatmodels._routes._state import Limits, Outcome, RouteState, new_route_state
from chatmodels._routes._types import Breaker

THREADS = 8
SUCCESS = int(Outcome.SUCCESS)


def route_call(state: RouteState) -> Callable[[], None]:
    """One decision with every limit and the breaker on, then its release."""
    acquire, release = state.try_acquire, state.release

    def call() -> None:
        a = acquire(0, 0.0, 100)
        release(0, a.ticket, 0.0, SUCCESS, 80, 0.01)

    return call


def baseline_call() -> Callable[[], None]:
    """The baseline: a dict lookup behind a threading.Lock, twice (decision and release)."""
    lock = threading.Lock()
    table = {"openai": 1}

    def call() -> None:
        with lock:
            table["openai"]
        with lock:
            table["openai"]

    return call


def new_state(backend: str) -> RouteState:
    # Limits far above what the run can spend: every decision is admitted and logged in the
    # window (which holds the whole run, as a real route's holds its last minute).
    limits = [Limits(rpm=10**9, tpm=10**15, max_concurrency=1000)]
    return new_route_state(limits, Breaker(), backend=backend)  # type: ignore[arg-type]


def one_thread(call: Callable[[], None], number: int, repeat: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e9


def threaded(call: Callable[[], None], number: int, repeat: int) -> float:
    results = []
    for _ in range(repeat):
        start = threading.Barrier(THREADS + 1)

        def work(start: threading.Barrier = start) -> None:
            start.wait()
            for _ in range(number):
                call()

        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        for t in threads:
            t.start()
        start.wait()
        began = time.perf_counter()
        for t in threads:
            t.join()
        results.append((time.perf_counter() - began) / (number * THREADS) * 1e9)
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    number, repeat = (20_000, 3) if args.quick else (100_000, 7)
    rows: list[tuple[str, float, float]] = []
    for name, make in [
        ("baseline: dict behind a Lock", baseline_call),
        ("rust", lambda: route_call(new_state("rust"))),
        ("python twin", lambda: route_call(new_state("python"))),
    ]:
        rows.append(
            (name, one_thread(make(), number, repeat), threaded(make(), number // 4, repeat))
        )
    base1, base8 = rows[0][1], rows[0][2]
    print(f"route state: try_acquire + release, ns per call ({THREADS} threads: wall / calls)")
    print(f"{'':32} {'1 thread':>10} {'ratio':>7} {f'{THREADS} threads':>10} {'ratio':>7}")
    for name, one, eight in rows:
        print(f"{name:32} {one:10.0f} {one / base1:7.2f} {eight:10.0f} {eight / base8:7.2f}")


if __name__ == "__main__":
    main()
