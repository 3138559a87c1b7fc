"""The OpenTelemetry SDK's in-memory span exporter and metric reader, installed as chatmodels'
telemetry (the `sdk` fixture of tests/conftest.py builds one per test)."""

from __future__ import annotations

from typing import Any

import chatmodels
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class SDK:
    """In-memory exporters installed as chatmodels' telemetry (the global OTel ones untouched)."""

    def __init__(self, level: str = "standard", capture_content: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.container = chatmodels.configure(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            level=level,
            capture_content=capture_content,
        )

    def spans(self, prefix: str = "") -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]

    def metrics(self) -> dict[str, Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }

    def close(self) -> None:
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()
