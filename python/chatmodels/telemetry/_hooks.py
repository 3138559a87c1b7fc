"""Hooks for the registry: an INTERNAL span per registry operation, and the registry metrics.

with registry_operation("create", provider="openai") as op:
    model = ...            # a ChatModelError raised here gets error.type and correlation_id
# creation metrics: record_creation(provider, outcome, seconds) / record_resolution(...)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ._container import get_container
from ._correlation import current_correlation_id, new_correlation_id
from ._observer import error_type

__all__ = ["record_creation", "record_resolution", "registry_operation", "watch_registry"]


@contextlib.contextmanager
def registry_operation(op: str, provider: str | None = None, **attributes: Any) -> Iterator[None]:
    """Run a registry operation under an INTERNAL span ``chatmodels.registry.{op}``.

    Extra keyword attributes become ``chatmodels.{name}`` span attributes. A failure inside
    marks the span ERROR with error.type, and a ChatModelError gets its correlation_id.
    """
    runtime = get_container().runtime()
    tracer = runtime.tracer
    if tracer is None:
        try:
            yield
        except BaseException as exc:
            if getattr(exc, "correlation_id", "") is None:
                exc.correlation_id = current_correlation_id() or new_correlation_id()  # type: ignore[attr-defined]
            raise
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    attrs: dict[str, Any] = {"chatmodels.operation": op}
    if provider is not None:
        attrs["chatmodels.provider"] = provider
    for name, value in attributes.items():
        if value is not None:
            attrs[f"chatmodels.{name}"] = value
    with tracer.start_as_current_span(
        f"chatmodels.registry.{op}",
        kind=trace.SpanKind.INTERNAL,
        attributes=attrs,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except BaseException as exc:
            if span.is_recording():
                span.set_attribute("error.type", error_type(exc))
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
            if getattr(exc, "correlation_id", "") is None:
                ctx = span.get_span_context()
                exc.correlation_id = (  # type: ignore[attr-defined]
                    format(ctx.trace_id, "032x") if ctx.is_valid else new_correlation_id()
                )
            raise


def record_resolution(provider: str, found: bool) -> None:
    """Count a provider lookup by name."""
    get_container().runtime().metrics.resolution(provider, found)


def record_creation(provider: str, outcome: str, seconds: float) -> None:
    """Count a creation ("success" or the error code) and record how long it took."""
    get_container().runtime().metrics.creation(provider, outcome, seconds)


def watch_registry(name: str, registry: Any) -> None:
    """Report ``len(registry)`` as chatmodels.registry.providers{chatmodels.registry=name}."""
    get_container().runtime().metrics.watch_registry(name, registry.__len__)
