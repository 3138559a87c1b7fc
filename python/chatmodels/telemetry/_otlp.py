"""`setup_otlp`: the OpenTelemetry SDK wired to an OTLP endpoint, safe when it is down.

The SDK's defaults wait up to 30 s per export and per flush, so a dead collector can hold
process exit for that long. Here every queue is bounded, every export gives up after
`export_timeout` seconds, and failed exports are counted and logged once (not per call); a
chat call never waits for an export.

Needs ``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-http`` (or ``-grpc``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from typing import Any

from ._container import Container, configure
from ._logging import get_logger

__all__ = ["OTLPSetup", "setup_otlp"]


class _ExportFailures:
    """Counts failed exports of every signal; logs the first failure only."""

    def __init__(self, logger: logging.Logger) -> None:
        self.count = 0
        self.items = 0
        self._logged = False
        self._lock = threading.Lock()
        self._logger = logger

    def failed(self, signal: str, items: int, endpoint: str) -> None:
        with self._lock:
            self.count += 1
            self.items += items
            first = not self._logged
            self._logged = True
        if first:
            self._logger.warning(
                "telemetry export to %s failed (%s); dropping it and counting further failures "
                "without logging each",
                endpoint,
                signal,
                extra={"op": "telemetry", "code": "export_failed"},
            )


def _counting_span_exporter(inner: Any, failures: _ExportFailures, endpoint: str) -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class CountingSpanExporter(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            try:
                result = inner.export(spans)
            except Exception:  # an exporter must never raise into the SDK's worker
                result = SpanExportResult.FAILURE
            if result is not SpanExportResult.SUCCESS:
                failures.failed("traces", len(spans), endpoint)
            return result  # type: ignore[no-any-return]

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(inner.force_flush(timeout_millis))

    return CountingSpanExporter()


def _counting_metric_exporter(inner: Any, failures: _ExportFailures, endpoint: str) -> Any:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    class CountingMetricExporter(MetricExporter):
        def __init__(self) -> None:
            super().__init__(
                preferred_temporality=inner._preferred_temporality,
                preferred_aggregation=inner._preferred_aggregation,
            )

        def export(
            self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            try:
                result = inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            except Exception:  # never raise into the reader's thread
                result = MetricExportResult.FAILURE
            if result is not MetricExportResult.SUCCESS:
                failures.failed("metrics", 1, endpoint)
            return result  # type: ignore[no-any-return]

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return bool(inner.force_flush(timeout_millis=timeout_millis))

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    return CountingMetricExporter()


@dataclasses.dataclass
class OTLPSetup:
    """What `setup_otlp` built. `shutdown()` flushes within the export timeout and stops."""

    tracer_provider: Any
    meter_provider: Any
    container: Container
    export_timeout: float
    _failures: _ExportFailures

    @property
    def failed_exports(self) -> int:
        """How many exports failed (the collector down, slow or refusing)."""
        return self._failures.count

    def shutdown(self) -> None:
        """Flush what is queued (bounded by the export timeout), then stop the exporters."""
        millis = int(self.export_timeout * 1000)
        self.tracer_provider.force_flush(millis)
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown(timeout_millis=millis)


def setup_otlp(
    endpoint: str = "http://127.0.0.1:4318",
    *,
    protocol: str = "http/protobuf",
    service_name: str = "chatmodels-app",
    export_timeout: float = 2.0,
    max_queue_size: int = 2048,
    schedule_delay: float = 1.0,
    metric_interval: float = 10.0,
    level: str | None = None,
    capture_content: bool | None = None,
    set_global: bool = True,
) -> OTLPSetup:
    """Configure the SDK to send chatmodels' spans and metrics to an OTLP endpoint.

    Args:
        endpoint: the collector: ``http://host:4318`` for http/protobuf, ``host:4317`` for grpc.
        protocol: ``"http/protobuf"`` or ``"grpc"``.
        service_name: the ``service.name`` resource attribute.
        export_timeout: seconds one export (and the final flush) may take before it is dropped.
        max_queue_size: spans held while the collector is slow; more are dropped, not queued.
        schedule_delay: seconds between span batches.
        metric_interval: seconds between metric exports.
        level: as for `chatmodels.configure`.
        capture_content: as for `chatmodels.configure`.
        set_global: also install the providers as OpenTelemetry's global ones.

    Example:
        >>> otlp = chatmodels.telemetry.setup_otlp("http://127.0.0.1:4318")
        >>> ...  # chat calls
        >>> otlp.shutdown()
    """
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        span_inner: Any = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=export_timeout)
        metric_inner: Any = OTLPMetricExporter(
            endpoint=endpoint, insecure=True, timeout=export_timeout
        )
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HTTPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HTTPSpanExporter,
        )

        base = endpoint.rstrip("/")
        span_inner = HTTPSpanExporter(endpoint=f"{base}/v1/traces", timeout=export_timeout)
        metric_inner = HTTPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=export_timeout)
    else:
        raise ValueError(f"protocol must be 'http/protobuf' or 'grpc', not {protocol!r}")

    failures = _ExportFailures(get_logger("chatmodels.telemetry"))
    resource = Resource.create({"service.name": service_name})
    millis = int(export_timeout * 1000)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            _counting_span_exporter(span_inner, failures, endpoint),
            max_queue_size=max_queue_size,
            schedule_delay_millis=schedule_delay * 1000,
            max_export_batch_size=min(512, max_queue_size),
            export_timeout_millis=millis,
        )
    )
    reader = PeriodicExportingMetricReader(
        _counting_metric_exporter(metric_inner, failures, endpoint),
        export_interval_millis=metric_interval * 1000,
        export_timeout_millis=millis,
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    container = configure(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        level=level,
        capture_content=capture_content,
    )
    return OTLPSetup(tracer_provider, meter_provider, container, export_timeout, failures)
