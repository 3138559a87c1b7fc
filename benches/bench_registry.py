"""Registry benchmarks: the Rust core, the pure-Python twin and a dict behind a Lock, in one run.

    python benches/bench_registry.py [--quick]

Prints one table of medians (ns per operation) and the ratios against the baseline measured in
the same run. Nothing here asserts a time: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import chatmodels
from _harness import contention
from chatmodels import ChatModel, ProviderMetadata, ProviderRegistry
from chatmodels._global import _swap_global_registry

BACKENDS = ("rust", "python")
# The registry's overhead per creation, at most this many Lock+dict lookups (issue 11).
CREATION_TARGET = 25


class _Trivial(ChatModel):
    pass


_META = ProviderMetadata(name="openai", capabilities=["chat", "streaming", "tool_calling"])


def _trivial_creator(options: chatmodels.ProviderOptions) -> ChatModel:
    return _Trivial(_META, options)


@contextmanager
def global_registry(backend: str, providers: int = 10) -> Iterator[ProviderRegistry]:
    """Install a global registry of `backend` holding `providers` providers, openai among them."""
    registry = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    registry.register("openai", _trivial_creator, metadata=_META)
    for i in range(providers - 1):
        caps = ["chat", "streaming"] if i % 2 else ["chat"]
        registry.register(f"provider-{i:04d}", _trivial_creator, metadata={"capabilities": caps})
    previous = _swap_global_registry(registry)
    try:
        yield registry
    finally:
        _swap_global_registry(previous)


class LockedDict:
    """The baseline: a plain dict behind a threading.Lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Any] = {}

    def register(self, name: str, value: Any) -> None:
        with self._lock:
            self._entries[name] = value

    def contains(self, name: str) -> bool:
        with self._lock:
            return name in self._entries


def per_op_ns(func: Callable[[], object], number: int, repeat: int) -> float:
    """Median ns per call of `func` over `repeat` runs of `number` calls."""
    runs = timeit.repeat(func, number=number, repeat=repeat)
    return statistics.median(runs) / number * 1e9


def loop_ns(stmt: str, namespace: dict[str, Any], number: int, repeat: int) -> float:
    """Median ns per execution of `stmt` (timeit's own loop, no extra call layer)."""
    runs = timeit.repeat(stmt, globals=namespace, number=number, repeat=repeat)
    return statistics.median(runs) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    number, repeat, seconds = (50_000, 5, 0.4) if args.quick else (200_000, 9, 1.5)

    rows: list[tuple[str, dict[str, float], str]] = []  # (label, {column: ns}, unit)

    # Resolution, one thread.
    plain = {"openai": object()}
    locked = LockedDict()
    locked.register("openai", object())
    res: dict[str, float] = {}
    meta: dict[str, float] = {}
    for backend in BACKENDS:
        with global_registry(backend):
            ns = {"f": chatmodels.is_provider_registered, "g": chatmodels.get_provider_metadata}
            res[backend] = loop_ns("f('openai')", ns, number, repeat)
            meta[backend] = loop_ns("g('openai')", ns, number, repeat)
    res["baseline"] = loop_ns("f('openai')", {"f": locked.contains}, number, repeat)
    bare = loop_ns("'openai' in d", {"d": plain}, number, repeat)
    rows.append(("resolve: is_provider_registered", res, "ns"))
    meta["baseline"] = res["baseline"]
    rows.append(("resolve: get_provider_metadata", meta, "ns"))

    # Resolution under contention: 8 threads, a writer replacing 1,000 times a second.
    p50: dict[str, float] = {}
    p99: dict[str, float] = {}
    for backend in BACKENDS:
        with global_registry(backend):

            def swap() -> None:
                chatmodels.register_global("openai", _trivial_creator, metadata=_META, replace=True)

            p50[backend], p99[backend] = contention(
                chatmodels.is_provider_registered, swap, seconds=seconds
            )
    p50["baseline"], p99["baseline"] = contention(
        locked.contains, lambda: locked.register("openai", object()), seconds=seconds
    )
    rows.append(("contended resolve, 8 threads: p50", p50, "ns"))
    rows.append(("contended resolve, 8 threads: p99", p99, "ns"))

    # Creation overhead beyond the creator's own work: the creator is timed with options made
    # beforehand, so the overhead includes building and validating them.
    options = chatmodels.ProviderOptions()
    direct = per_op_ns(lambda: _trivial_creator(options), number // 5, repeat)
    create: dict[str, float] = {}
    for backend in BACKENDS:
        with global_registry(backend):
            full = per_op_ns(
                lambda: chatmodels.new_registry_provider("openai"), number // 5, repeat
            )
            create[backend] = full - direct
    create["baseline"] = direct
    rows.append(("new_registry_provider overhead (baseline: creator)", create, "ns"))
    creation_vs_lock = {k: v / res["baseline"] for k, v in create.items() if k != "baseline"}

    # Listing and capability queries.
    for size in (10, 100, 1000):
        listing: dict[str, float] = {}
        by_cap: dict[str, float] = {}
        n = max(200, number // size)
        for backend in BACKENDS:
            with global_registry(backend, providers=size):
                listing[backend] = per_op_ns(chatmodels.list_providers, n, repeat)
                by_cap[backend] = per_op_ns(
                    lambda: chatmodels.get_providers_by_capability("streaming"), n, repeat
                )
        snapshot = {f"p{i}": i for i in range(size)}
        listing["baseline"] = per_op_ns(lambda: sorted(snapshot), n, repeat)  # noqa: B023
        by_cap["baseline"] = listing["baseline"]
        rows.append((f"list_providers, {size} providers", listing, "ns"))
        rows.append((f"get_providers_by_capability, {size}", by_cap, "ns"))

    print_table(rows)
    print(f"for scale: a bare dict lookup takes {bare:.0f} ns here")
    print(
        f"creation overhead / Lock+dict lookup ({res['baseline']:.0f} ns): "
        f"rust {creation_vs_lock['rust']:.1f}x, python {creation_vs_lock['python']:.1f}x; "
        f"target <= {CREATION_TARGET}x on rust: "
        + ("met" if creation_vs_lock["rust"] <= CREATION_TARGET else "NOT met")
    )


def print_table(rows: list[tuple[str, dict[str, float], str]]) -> None:
    """One table: medians per backend and ratios against the baseline column."""
    print(f"chatmodels registry benchmarks (Python {sys.version.split()[0]}, medians, ns/op)")
    columns = ("rust", "python", "baseline", "rust/base", "py/base")
    header = f"{'benchmark':<52}" + "".join(f" {c:>9}" for c in columns)
    print(header)
    print("-" * len(header))
    for label, values, _unit in rows:
        base = values["baseline"]
        print(
            f"{label:<52} {values['rust']:>9.0f} {values['python']:>9.0f} {base:>9.0f}"
            f" {values['rust'] / base:>9.2f} {values['python'] / base:>9.2f}"
        )
    print(
        "baseline: a dict behind threading.Lock (resolution), calling the creator directly "
        "(creation), sorted(dict) (listing)"
    )


if __name__ == "__main__":
    main()
