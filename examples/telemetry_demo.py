"""The telemetry of a few calls, printed in the terminal: the span tree with its attributes and
the metrics, from the OpenTelemetry SDK's in-process exporters installed with
`chatmodels.configure`.

    python examples/telemetry_demo.py

The calls go through the registry to the fake provider (no network): a plain call, a stream,
a tool call and an error, under one application span.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import chatmodels
from chatmodels import telemetry

__all__ = ["show_telemetry"]

_SKIP_ATTRS = {"exception.stacktrace"}


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def _print_spans(spans: Sequence[Any]) -> None:
    children: dict[int | None, list[Any]] = {}
    ids = {s.context.span_id for s in spans}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in ids else None, []).append(span)

    def show(span: Any, depth: int) -> None:
        pad = "  " * depth
        ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        status = span.status.status_code.name
        print(f"{pad}{span.name}  [{span.kind.name}, {status}, {ms:.2f} ms]")
        for key, value in sorted((span.attributes or {}).items()):
            print(f"{pad}    {key} = {_value(value)}")
        for event in span.events:
            attrs = ", ".join(
                f"{k}={_value(v)}" for k, v in (event.attributes or {}).items()
                if k not in _SKIP_ATTRS
            )  # fmt: skip
            print(f"{pad}    event {event.name}: {attrs}")
        for child in children.get(span.context.span_id, []):
            show(child, depth + 1)

    for root in children.get(None, []):
        show(root, 0)


def _print_metrics(data: Any) -> None:
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                print(f"{metric.name} ({metric.unit})")
                for point in metric.data.data_points:
                    attrs = ", ".join(
                        f"{k}={_value(v)}"
                        for k, v in sorted(point.attributes.items())
                        if not k.startswith(("server.", "gen_ai.operation"))
                    )
                    if hasattr(point, "count"):
                        shown = f"count={point.count} sum={_value(float(point.sum))}"
                    else:
                        shown = f"value={_value(point.value)}"
                    print(f"    {shown}  {{{attrs}}}")


def show_telemetry() -> None:
    """Make a plain call, a stream, a tool call and a failing call through the registry with
    the SDK's in-memory exporters installed, then print the spans and the metrics."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    previous = telemetry.get_container()
    chatmodels.configure(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        tracer = tracer_provider.get_tracer("demo")
        with tracer.start_as_current_span("demo request"):
            script = [
                "Hello from the fake provider!",
                "A streamed reply, word by word.",
                {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
                {"error": "rate_limited", "message": "slow down"},
            ]
            model = chatmodels.new_registry_provider(
                "fake", {"provider_specific": {"responses": script}}
            )
            model.invoke("Say hello", temperature=0.2)
            for _ in model.stream("Stream something"):
                pass

            def get_weather(city: str) -> str:
                """The weather in a city."""
                return "rainy"

            model.invoke("Weather in Paris?", tools=[get_weather])
            try:
                model.invoke("One more?")
            except chatmodels.RateLimitError as exc:
                error = exc
        print("== spans")
        _print_spans(exporter.get_finished_spans())
        print(f"\n(the error's correlation_id {error.correlation_id} is its span's trace id)")
        print("\n== metrics")
        data = reader.get_metrics_data()
        if data is not None:
            _print_metrics(data)
    finally:
        telemetry.set_container(previous)
        meter_provider.shutdown()
        tracer_provider.shutdown()


if __name__ == "__main__":
    show_telemetry()
