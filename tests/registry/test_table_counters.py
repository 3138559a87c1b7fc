"""Resolution counts on both tables: `resolutions` counts every `contains` and `get` call,
found or not, and `resolution_misses` those that found nothing (invalid names included).

The Rust table counts in per-thread striped atomics and is exact under threads; the Python
twin's `+= 1` is exact with the GIL and may lose increments on free-threaded CPython.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any

import pytest
from chatmodels import ProviderRegistry, telemetry
from chatmodels._backend import table_class
from chatmodels._errors import InvalidProviderNameError, ProviderNotFoundError
from helpers import echo_creator
from sdk_helpers import SDK

GIL = getattr(sys, "_is_gil_enabled", lambda: True)()


class Sub(str):
    """A str subclass: resolved as its plain value."""


@pytest.fixture
def table(backend: str) -> Any:
    fresh = table_class(backend)()  # type: ignore[arg-type]
    fresh.insert("openai", object(), 0b1, False, "register")
    fresh.insert("anthropic", object(), 0b0, False, "register")
    return fresh


def counts(table: Any) -> tuple[int, int]:
    return table.resolutions, table.resolution_misses


def test_a_new_table_has_counted_nothing(backend: str) -> None:
    fresh = table_class(backend)()  # type: ignore[arg-type]
    assert counts(fresh) == (0, 0)
    assert type(fresh.resolutions) is int
    assert type(fresh.resolution_misses) is int


def test_hits_and_misses_of_contains_and_get(table: Any) -> None:
    assert table.contains("openai", "op") is True
    assert table.contains(Sub("anthropic"), "op") is True
    assert counts(table) == (2, 0)
    assert table.contains("missing", "op") is False
    assert table.contains(Sub("missing"), "op") is False
    assert counts(table) == (4, 2)
    table.get("openai", "op")
    table.get(Sub("openai"), "op")
    assert counts(table) == (6, 2)
    with pytest.raises(ProviderNotFoundError):
        table.get("opena", "op")
    assert counts(table) == (7, 3)


@pytest.mark.parametrize("bad", ["", " openai", "a\nb", "x" * 257, "\ud800", 42, None, b"openai"])
def test_invalid_names_count_as_missed_resolutions(table: Any, bad: Any) -> None:
    with pytest.raises(InvalidProviderNameError):
        table.contains(bad, "op")
    assert counts(table) == (1, 1)
    with pytest.raises(InvalidProviderNameError):
        table.get(bad, "op")
    assert counts(table) == (2, 2)


def test_other_methods_are_not_resolutions(table: Any) -> None:
    table.insert("mistral", object(), 0, False, "register")
    table.insert("mistral", object(), 0, True, "register")
    table.remove("mistral", "unregister")
    with pytest.raises(ProviderNotFoundError):
        table.remove("mistral", "unregister")
    table.names()
    table.names_with(0b1)
    table.entries()
    assert len(table) == 2
    assert table.version == 5
    table.clear()
    assert counts(table) == (0, 0)


def test_counts_survive_writes_and_belong_to_their_table(backend: str, table: Any) -> None:
    other = table_class(backend)()  # type: ignore[arg-type]
    table.contains("openai", "op")
    table.clear()
    table.contains("openai", "op")
    other.contains("openai", "op")
    assert counts(table) == (2, 1)
    assert counts(other) == (1, 1)


def test_counts_are_read_only(table: Any) -> None:
    with pytest.raises(AttributeError):
        table.resolutions = 0
    with pytest.raises(AttributeError):
        table.resolution_misses = 0


def test_registry_resolutions_are_counted(backend: str) -> None:
    registry = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    registry.register("echo", echo_creator)
    assert registry.is_registered("echo")
    assert not registry.is_registered("nope")
    assert "echo" in registry
    assert 42 not in registry
    registry.metadata("echo")
    with pytest.raises(ProviderNotFoundError):
        registry.metadata("nope")
    # `42 in registry` is refused before the table is asked.
    assert counts(registry._table) == (5, 2)


def test_the_resolution_metric_reads_the_real_table(backend: str, sdk: SDK) -> None:
    registry = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    registry.register("echo", echo_creator)
    for name in ("echo", "echo", "echo", "nope"):
        registry.is_registered(name)
    telemetry._hooks.watch_registry("counted", registry)
    points = sdk.metrics()["chatmodels.registry.resolutions"].data.data_points
    mine = [dict(p.attributes) | {"value": p.value} for p in points]
    got = {
        p["chatmodels.outcome"]: p["value"] for p in mine if p["chatmodels.registry"] == "counted"
    }
    assert got == {"found": 3, "not_found": 1}


THREADS = 4
ROUNDS = 5_000  # per thread, each round: one hit and one miss of each method


def _hammer(table: Any, start: threading.Barrier) -> None:
    start.wait()
    for _ in range(ROUNDS):
        table.contains("openai", "op")
        table.contains("missing", "op")
        table.get("anthropic", "op")
        with contextlib.suppress(ProviderNotFoundError):
            table.get("missing", "op")


def test_counts_under_threads(backend: str, table: Any) -> None:
    start = threading.Barrier(THREADS)
    workers = [threading.Thread(target=_hammer, args=(table, start)) for _ in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    resolutions, misses = counts(table)
    if backend == "rust" or GIL:
        assert (resolutions, misses) == (4 * THREADS * ROUNDS, 2 * THREADS * ROUNDS)
    else:
        # The twin's `+= 1` can lose increments without the GIL: never more, some counted.
        assert 0 < resolutions <= 4 * THREADS * ROUNDS
        assert 0 < misses <= 2 * THREADS * ROUNDS
