"""Telemetry through the API's global providers: idle until the application installs an SDK.

Until `trace.set_tracer_provider` / `metrics.set_meter_provider` are called, the API's
global providers are proxies whose spans and metrics go nowhere, so calls build none; the
correlation id and the failure log records still work. Once an SDK provider is installed
behind a proxy, the next call is observed through it. The API lets a process set each
global provider once, so each scenario runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

_PRELUDE = """
import asyncio, json, logging
import chatmodels
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
logging.getLogger("chatmodels").addHandler(Keep())

model = chatmodels.new_registry_provider("fake", {"provider_specific": {"responses": [
    "one two three", {"error": "rate_limited", "message": "slow down"},
    "four five", "six seven", "eight",
]}})
exporter = InMemorySpanExporter()
reader = InMemoryMetricReader()

def install_tracer():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

def install_meter():
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

def durations():
    data = reader.get_metrics_data()
    if data is None:
        return 0
    return sum(
        point.count
        for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        if m.name == "gen_ai.client.operation.duration" for point in m.data.data_points
    )

def spans():
    return [s.name for s in exporter.get_finished_spans()]

async def astream_text():
    return "".join([c.text async for c in model.astream("hi")])

out = {}
"""


# Where the metrics go: the Rust core's aggregator or the pure-Python twin's.
_AGGREGATOR = """
out["aggregator"] = type(chatmodels.telemetry.get_container().runtime().metrics._agg).__module__
"""


@pytest.fixture(params=["rust", "python"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _run(body: str, backend: str) -> dict[str, Any]:
    code = _PRELUDE + textwrap.dedent(body) + _AGGREGATOR + "\nprint(json.dumps(out))\n"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "CHATMODELS_BACKEND": backend},
    )
    assert done.returncode == 0, done.stderr
    out = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    expected = "chatmodels._core" if backend == "rust" else "chatmodels.telemetry._pymetrics"
    assert out["aggregator"] == expected
    return out


def test_idle_providers_cost_nothing_but_keep_the_correlation_id_and_logs(backend: str) -> None:
    out = _run(
        """
        from chatmodels.telemetry import current_correlation_id
        stream = model.stream("hi")
        seen = [current_correlation_id() for _ in stream]
        out["stream_ids"] = sorted(set(seen))
        out["after_stream"] = current_correlation_id()
        try:
            model.invoke("hi")
        except chatmodels.ChatModelError as exc:
            out["code"] = exc.code.value
            out["error_id"] = exc.correlation_id
        out["log_ids"] = [getattr(r, "correlation_id", None) for r in records]
        out["log_codes"] = [getattr(r, "code", None) for r in records]
        out["async_text"] = asyncio.run(astream_text())
        install_meter()
        out["durations"] = durations()
        out["spans"] = spans()
        """,
        backend,
    )
    # The stream ran under one generated id, set for its consumer and removed at its end.
    assert len(out["stream_ids"]) == 1
    assert len(out["stream_ids"][0]) == 32
    assert out["after_stream"] is None
    assert out["code"] == "rate_limited"
    assert len(out["error_id"]) == 32
    assert out["error_id"] != out["stream_ids"][0]
    # The failure is logged under the error's id.
    assert out["log_ids"] == [out["error_id"]]
    assert out["log_codes"] == ["rate_limited"]
    assert out["async_text"] == "four five"
    # Nothing was recorded for later: the calls before the SDK left no metric points.
    assert out["durations"] == 0
    assert out["spans"] == []


@pytest.mark.parametrize("order", ["tracer_first", "meter_first"])
def test_each_global_provider_is_used_from_the_call_after_it_is_installed(
    order: str, backend: str
) -> None:
    first, second = ("install_tracer", "install_meter")[:: 1 if order == "tracer_first" else -1]
    out = _run(
        f"""
        model.invoke("hi")                      # both idle: recorded nowhere
        {first}()
        out["after_first"] = [durations(), spans()]
        runtime = chatmodels.telemetry.get_container().runtime()
        try:
            model.invoke("hi")
        except chatmodels.ChatModelError as exc:
            out["error_id"] = exc.correlation_id
        out["stream"] = "".join(c.text for c in model.stream("hi"))
        out["one_live"] = [durations(), spans()]
        out["proxied_one_live"] = runtime.proxied
        {second}()
        out["text"] = asyncio.run(astream_text())
        out["proxied_both_live"] = runtime.proxied
        out["both_live"] = [durations(), spans()]
        out["last_tokens"] = exporter.get_finished_spans()[-1].attributes.get(
            "gen_ai.usage.output_tokens")
        """,
        backend,
    )
    assert out["after_first"] == [0, []]
    assert len(out["error_id"]) == 32
    assert out["stream"] == "four five"
    # One provider live: its signal for the two calls made since (the failure, the stream).
    if order == "tracer_first":
        assert out["one_live"] == [0, ["chat fake-1", "chat fake-1"]]
    else:
        assert out["one_live"] == [2, []]
    # Calls check the proxies only while one may still be idle: never again once both live.
    assert out["proxied_one_live"] is True
    assert out["proxied_both_live"] is False
    # Both live: the call after the second install is in both.
    assert out["text"] == "six seven"
    if order == "tracer_first":
        assert out["both_live"] == [1, ["chat fake-1"] * 3]
    else:
        assert out["both_live"] == [3, ["chat fake-1"]]
    assert out["last_tokens"] == 2
