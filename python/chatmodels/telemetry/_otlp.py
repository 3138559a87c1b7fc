"""`setup_otlp`: the OpenTelemetry SDK wired to an OTLP endpoint, safe when it is down.

The SDK's defaults wait up to 30 s per export and per flush, so a dead collector can hold
process exit for that long. Here every queue is bounded, every export gives up after
`export_timeout` seconds, and failed exports are counted and logged once (not per call); a
chat call never waits for an export.

Shutting down, the SDK exports what is queued one batch after another (a few thousand spans
are several batches, each allowed the whole export timeout) and retries with backoff. So
`OTLPSetup.shutdown` runs the SDK's shutdowns on their own threads and waits for them until
one `export_timeout` has passed, whatever the collector does: batches that would start after
that are dropped (counted), and the exporters are then stopped, which ends their retries. The
providers' own exit handlers are replaced by that bounded shutdown, so process exit is
bounded by the same time.

Needs ``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-http`` (or ``-grpc``).
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from ._container import Container, configure
from ._logging import get_logger

__all__ = ["OTLPSetup", "setup_otlp"]


class _ExportFailures:
    """Counts failed exports of every signal; logs the first failure only. Also holds the
    shutdown's deadline (a `time.monotonic()` value, None before shutdown): an export that
    would start after it is dropped."""

    def __init__(self, logger: logging.Logger) -> None:
        self.count = 0
        self.items = 0
        self.deadline: float | None = None
        self._logged = False
        self._lock = threading.Lock()
        self._logger = logger

    def too_late(self) -> bool:
        """Whether the shutdown's time is up: no export may start now."""
        deadline = self.deadline
        return deadline is not None and time.monotonic() >= deadline

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
        def __init__(self) -> None:
            self._stopped = threading.Lock()  # held once the inner exporter is shut down

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            if failures.too_late():
                result = SpanExportResult.FAILURE
            else:
                try:
                    result = inner.export(spans)
                except Exception:  # an exporter must never raise into the SDK's worker
                    result = SpanExportResult.FAILURE
            if result is not SpanExportResult.SUCCESS:
                failures.failed("traces", len(spans), endpoint)
            return result

        def shutdown(self) -> None:
            if self._stopped.acquire(blocking=False):  # once, from whichever thread is first
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
            self._stopped = threading.Lock()  # held once the inner exporter is shut down

        def export(
            self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            if failures.too_late():
                result = MetricExportResult.FAILURE
            else:
                try:
                    result = inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
                except Exception:  # never raise into the reader's thread
                    result = MetricExportResult.FAILURE
            if result is not MetricExportResult.SUCCESS:
                failures.failed("metrics", 1, endpoint)
            return result

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return bool(inner.force_flush(timeout_millis=timeout_millis))

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            if self._stopped.acquire(blocking=False):  # once, from whichever thread is first
                inner.shutdown(timeout_millis=timeout_millis)

    return CountingMetricExporter()


@dataclasses.dataclass
class OTLPSetup:
    """What `setup_otlp` built. `shutdown()` flushes and stops within the export timeout; it
    also runs at process exit when it has not been called."""

    tracer_provider: Any
    meter_provider: Any
    container: Container
    export_timeout: float
    _failures: _ExportFailures
    _exporters: tuple[Any, ...] = ()
    _stoppers: list[threading.Thread] = dataclasses.field(default_factory=list, repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    @property
    def failed_exports(self) -> int:
        """How many exports failed (the collector down, slow or refusing) or were dropped at
        shutdown."""
        return self._failures.count

    def shutdown(self) -> None:
        """Export what is queued and stop the exporters, returning within `export_timeout`
        seconds whatever the collector does; what is not sent by then is dropped (and
        counted in `failed_exports`). Safe to call twice: a second call waits for what is
        left of the first one's time."""
        with self._lock:
            if not self._stoppers:
                atexit.unregister(self.shutdown)
                self._failures.deadline = time.monotonic() + self.export_timeout
                millis = self.export_timeout * 1000
                for name, stop in (
                    ("traces", self.tracer_provider.shutdown),
                    ("metrics", lambda: self.meter_provider.shutdown(timeout_millis=millis)),
                ):
                    # Daemon threads: one stuck in a socket read never holds process exit.
                    thread = threading.Thread(
                        target=_quietly, args=(stop,), name=f"chatmodels-otlp-{name}", daemon=True
                    )
                    thread.start()
                    self._stoppers.append(thread)
        deadline = self._failures.deadline
        assert deadline is not None
        for thread in self._stoppers:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._stoppers):
            # Time is up: stop the exporters now, which ends their retries and backoff; an
            # export still in its socket read ends within its own timeout, on its thread.
            for exporter in self._exporters:
                _quietly(exporter.shutdown)


def _quietly(stop: Any) -> None:
    try:
        stop()
    except Exception as exc:  # on a shutdown thread: nothing to raise it to
        get_logger("chatmodels.telemetry").warning(
            "telemetry shutdown failed: %s: %s",
            type(exc).__qualname__,
            exc,
            extra={"op": "telemetry", "code": "shutdown_failed"},
        )


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
    span_exporter = _counting_span_exporter(span_inner, failures, endpoint)
    metric_exporter = _counting_metric_exporter(metric_inner, failures, endpoint)
    # The providers' own exit handlers would wait up to 30 s; OTLPSetup.shutdown runs instead.
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            span_exporter,
            max_queue_size=max_queue_size,
            schedule_delay_millis=schedule_delay * 1000,
            max_export_batch_size=min(512, max_queue_size),
            export_timeout_millis=millis,
        )
    )
    reader = PeriodicExportingMetricReader(
        metric_exporter,
        export_interval_millis=metric_interval * 1000,
        export_timeout_millis=millis,
    )
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[reader], shutdown_on_exit=False
    )
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    container = configure(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        level=level,
        capture_content=capture_content,
    )
    setup = OTLPSetup(
        tracer_provider,
        meter_provider,
        container,
        export_timeout,
        failures,
        (span_exporter, metric_exporter),
    )
    atexit.register(setup.shutdown)
    return setup
