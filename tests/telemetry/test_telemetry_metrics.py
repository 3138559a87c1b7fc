"""Metrics: names, units, advised buckets, attributes; the aggregator and its Python twin."""

from __future__ import annotations

import threading

import pytest
from chatmodels import TimeoutError
from chatmodels.telemetry import DURATION_BUCKETS, TOKEN_BUCKETS
from chatmodels.telemetry._metrics import new_aggregator
from chatmodels.telemetry._pymetrics import DURATION, TOKENS_INPUT, MetricAggregator
from opentelemetry.sdk.metrics.export import Histogram
from telemetry_fakes import Telemetry, call, make_telemetry, sample_chunk, sample_response

BACKENDS = ["rust", "python"]

BASE = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "server.address": "api.openai.com",
    "server.port": 443,
}


def test_call_metrics_have_convention_names_units_buckets_and_attributes(tel: Telemetry) -> None:
    tel.observer.start(*call()).end(sample_response())
    tel.observer.start(*call()).fail(TimeoutError("t", op="invoke"))
    metrics = tel.metrics()
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    assert isinstance(duration.data, Histogram)
    points = {tuple(sorted(p.attributes.items())): p for p in duration.data.data_points}
    ok = points[tuple(sorted({**BASE, "gen_ai.response.model": "gpt-4o-mini-2024-07-18"}.items()))]
    failed = points[tuple(sorted({**BASE, "error.type": "timeout"}.items()))]
    assert ok.count == failed.count == 1
    assert tuple(ok.explicit_bounds) == DURATION_BUCKETS
    tokens = metrics["gen_ai.client.token.usage"]
    assert tokens.unit == "{token}"
    by_type = {p.attributes["gen_ai.token.type"]: p for p in tokens.data.data_points}
    assert (by_type["input"].sum, by_type["output"].sum) == (12, 7)
    assert tuple(by_type["input"].explicit_bounds) == TOKEN_BUCKETS
    assert "gen_ai.client.operation.time_to_first_chunk" not in metrics


def test_stream_metrics_are_reported_for_streams_only(tel: Telemetry) -> None:
    scope = tel.observer.start(*call(stream=True))
    for _ in range(4):
        scope.chunk(sample_chunk())
    scope.end(sample_response())
    metrics = tel.metrics()
    (first,) = metrics["gen_ai.client.operation.time_to_first_chunk"].data.data_points
    (gaps,) = metrics["gen_ai.client.operation.time_per_output_chunk"].data.data_points
    assert (first.count, gaps.count) == (1, 3)
    assert metrics["gen_ai.client.operation.time_to_first_chunk"].unit == "s"
    assert tuple(gaps.explicit_bounds) == DURATION_BUCKETS


def test_metrics_level_records_metrics_without_spans() -> None:
    for t in make_telemetry(level="metrics"):
        t.observer.start(*call()).end(sample_response())
        assert t.finished() == []
        assert t.metrics()["gen_ai.client.operation.duration"].data.data_points[0].count == 1


class Sized:
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


def test_registry_metrics() -> None:
    for t in make_telemetry():
        metrics = t.observer._container.runtime().metrics  # type: ignore[union-attr]
        metrics.resolution("openai", True)
        metrics.resolution("openai", True)
        metrics.resolution("nope", False)
        metrics.creation("openai", "success", 0.00002)
        metrics.provider_health("openai", "degraded")
        mine = Sized(11)
        metrics.watch_registry("mine", mine)
        got = t.metrics()
        res = {
            (p.attributes["chatmodels.provider"], p.attributes["chatmodels.outcome"]): p.value
            for p in got["chatmodels.registry.resolutions"].data.data_points
            if "chatmodels.provider" in p.attributes  # not the watched tables' own counts
        }
        assert res == {("openai", "found"): 2, ("nope", "not_found"): 1}
        (created,) = got["chatmodels.registry.creations"].data.data_points
        assert created.value == 1
        assert created.attributes["chatmodels.outcome"] == "success"
        assert got["chatmodels.registry.creation.duration"].data.data_points[0].count == 1
        sizes = {
            p.attributes["chatmodels.registry"]: p.value
            for p in got["chatmodels.registry.providers"].data.data_points
        }
        assert sizes["mine"] == 11
        assert got["chatmodels.provider.health"].data.data_points[0].value == 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_aggregator_counts_buffers_and_drops_past_capacity(backend: str) -> None:
    agg = new_aggregator(backend) if backend == "rust" else MetricAggregator(2, 8, 4)
    if backend == "rust" and isinstance(agg, MetricAggregator):
        pytest.fail("the Rust extension has no MetricAggregator (build it: maturin develop)")
    if backend == "rust":
        agg = type(agg)(2, 8, 4)
    agg.add(0, 3, 2)
    agg.add(0, 3, 5)
    agg.add(1, 99, 1)  # past max_keys: the last cell
    assert agg.counter_values(0) == [(3, 7)]
    assert agg.counter_values(1) == [(7, 1)]
    agg.record_call(1, 0.5, 10, -1)
    agg.record_many(DURATION, 2, [0.1, 0.2, 0.3])
    assert agg.drain() == [(DURATION, 1, 0.5), (TOKENS_INPUT, 1, 10.0), (DURATION, 2, 0.1),
                           (DURATION, 2, 0.2)]  # fmt: skip
    assert agg.dropped() == 1
    assert agg.drain() == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_aggregator_loses_nothing_under_threads(backend: str) -> None:
    agg = new_aggregator(backend)
    if backend == "rust" and isinstance(agg, MetricAggregator):
        pytest.fail("the Rust extension has no MetricAggregator (build it: maturin develop)")

    def work() -> None:
        for _ in range(2000):
            agg.add(0, 1, 1)
            agg.record(DURATION, 1, 1.0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert agg.counter_values(0) == [(1, 8000)]
    assert len(agg.drain()) == 8000
