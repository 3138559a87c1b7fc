"""How resolution scales from one thread to two, for each backend, beside independent work.

    python3.13t benches/bench_scaling.py [--quick]

Meant for a free-threaded interpreter (with the GIL, threads take turns and nothing scales).
For each workload: ns per operation on one thread, and the throughput of two threads over one
(2.0 is perfect). "independent work" (each thread looks up its own private dict) is the
machine's own ceiling, measured in the same run; the target for the Rust backend is at least
0.9 of it. A last table gives the p99 of a resolution while a writer replaces the provider
1,000 times a second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import sysconfig
import threading
import time
from collections.abc import Callable

import chatmodels
from _harness import contention
from chatmodels import ChatModel, ProviderMetadata, ProviderOptions, ProviderRegistry
from chatmodels._global import _swap_global_registry

Op = Callable[[str], object]

_META = ProviderMetadata(name="openai", capabilities=["chat", "streaming"])


class _Trivial(ChatModel):
    pass


def _creator(options: ProviderOptions) -> ChatModel:
    return _Trivial(_META, options)


def _install(backend: str) -> ProviderRegistry:
    registry = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    registry.register("openai", _creator, metadata=_META)
    for i in range(9):
        registry.register(f"provider-{i}", _creator)
    _swap_global_registry(registry)
    return registry


def _run(make_op: Callable[[], Op], threads: int, n: int) -> float:
    """Wall seconds for `threads` threads each doing `n` operations (each its own `make_op()`)."""
    barrier = threading.Barrier(threads + 1)
    ops = [make_op() for _ in range(threads)]

    def work(op: Op) -> None:
        name = "openai"
        barrier.wait()
        for _ in range(n):
            op(name)

    workers = [threading.Thread(target=work, args=(op,)) for op in ops]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    return time.perf_counter() - start


def _private_dict() -> Op:
    mine = {"openai": object()}
    return mine.__contains__


def scaling(make_op: Callable[[], Op], n: int, repeat: int) -> tuple[float, float, float]:
    """(ns per op on one thread, throughput of two threads over one, that over the ceiling).

    Each round measures the workload and the ceiling (independent work) back to back, so a
    neighbour that steals a core hits both; the figures are medians over `repeat` rounds.
    """
    per_op, ratios, of_ceiling = [], [], []
    for _ in range(repeat):
        one, two = _run(make_op, 1, n), _run(make_op, 2, n)
        base_one, base_two = _run(_private_dict, 1, n), _run(_private_dict, 2, n)
        ratio = 2 * one / two
        per_op.append(one / n * 1e9)
        ratios.append(ratio)
        of_ceiling.append(ratio / (2 * base_one / base_two))
    return statistics.median(per_op), statistics.median(ratios), statistics.median(of_ceiling)


def p99_with_writer(backend: str, seconds: float) -> tuple[float, float]:
    """p50 and p99 ns per resolution on two threads while a writer replaces 1,000 times/s."""
    _install(backend)

    def swap() -> None:
        chatmodels.register_global("openai", _creator, metadata=_META, replace=True)

    return contention(chatmodels.is_provider_registered, swap, threads=2, seconds=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, repeat, seconds = (100_000, 5, 0.5) if args.quick else (300_000, 15, 2.0)

    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(
        f"Python {sys.version.split()[0]}, free-threaded build: {free_threaded}, GIL enabled: {gil}"
    )

    shared = {"openai": object()}
    lock = threading.Lock()

    def locked(name: str) -> bool:
        with lock:
            return name in shared

    rows: list[tuple[str, float, float, float]] = []
    rows.append(("independent work (private dicts)", *scaling(_private_dict, n, repeat)))
    rows.append(("one shared dict", *scaling(lambda: shared.__contains__, n, repeat)))
    rows.append(("one shared dict behind a Lock (baseline)", *scaling(lambda: locked, n, repeat)))
    for backend in ("rust", "python"):
        _install(backend)
        rows.append(
            (
                f"{backend}: is_provider_registered",
                *scaling(lambda: chatmodels.is_provider_registered, n, repeat),
            )
        )
        rows.append(
            (
                f"{backend}: get_provider_metadata",
                *scaling(lambda: chatmodels.get_provider_metadata, n, repeat),
            )
        )
        rows.append(
            (
                f"{backend}: new_registry_provider",
                *scaling(lambda: chatmodels.new_registry_provider, n // 20, repeat),
            )
        )

    print(f"\n{'workload':<44} {'ns/op (1 thread)':>17} {'2 threads vs 1':>15} {'of ceiling':>11}")
    for label, ns, ratio, of_ceiling in rows:
        print(f"{label:<44} {ns:>17.0f} {ratio:>14.2f}x {of_ceiling:>11.2f}")

    print(f"\n{'resolution with a writer at 1,000/s, 2 threads':<48} {'p50 ns':>8} {'p99 ns':>8}")
    for backend in ("rust", "python"):
        p50, p99 = p99_with_writer(backend, seconds)
        print(f"{backend:<48} {p50:>8.0f} {p99:>8.0f}")


if __name__ == "__main__":
    main()
