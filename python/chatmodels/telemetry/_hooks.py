"""Hooks for the registry: an INTERNAL span per registry operation, and the registry metrics.

`_registry` and `_health` call these only once OpenTelemetry is loaded (before that nothing
could record them), so registry operations before any telemetry setup stay cheap:

    with registry_operation("create", "openai", registry=registry, api="new_registry_provider"):
        model = ...   # a ChatModelError raised here gets error.type and its correlation_id

Resolutions are never hooked: the registry table counts them itself (its ``resolutions``
property, when the table has one) and the metric reads that count at collection time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ._container import Container, get_container
from ._correlation import (
    current_correlation_id,
    new_correlation_id,
    own_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)
from ._observer import _otel, error_type

__all__ = [
    "record_creation",
    "record_health",
    "record_resolution",
    "registry_operation",
    "watch_registry",
]


def _attributes(
    op: str, provider: object, registry: Any, extra: Mapping[str, Any]
) -> dict[str, Any]:
    attrs: dict[str, Any] = {"chatmodels.operation": op}
    if isinstance(provider, str):
        attrs["chatmodels.provider"] = provider
    backend = getattr(registry, "backend", None)
    if backend is not None:
        attrs["chatmodels.backend"] = backend
    for name, value in extra.items():
        if value is not None:
            attrs[f"chatmodels.{name}"] = value
    return attrs


@contextlib.contextmanager
def registry_operation(
    op: str,
    provider: object = None,
    *,
    registry: Any = None,
    container: Container | None = None,
    **attributes: Any,
) -> Iterator[None]:
    """Run a registry operation under an INTERNAL span ``chatmodels.registry.{op}``.

    Attributes: chatmodels.operation, chatmodels.provider, chatmodels.backend (from
    `registry`) and each keyword as ``chatmodels.{name}``. A failure marks the span ERROR with
    error.type and gives a ChatModelError its correlation_id. A ``create`` also records the
    creation metrics (outcome ``success`` or the error code, and its duration). Recorded in
    `container`, else the registry's own container, else the global one.
    """
    runtime = _container_of(registry, container).runtime()
    if runtime.off:
        yield
        return
    start = time.perf_counter()
    outcome = "success"
    token = None
    span: Any = None
    attached: Any = None
    if runtime.tracer is not None:
        otel = _otel()
        span = runtime.tracer.start_span(
            f"chatmodels.registry.{op}",
            kind=otel.INTERNAL,
            attributes=_attributes(op, provider, registry, attributes),
        )
        attached = otel.attach(otel.set_span_in_context(span))
        inherited = own_correlation_id()
        if span.is_recording():
            if inherited is not None:
                span.set_attribute("chatmodels.correlation_id", inherited)
        elif inherited is None:
            token = set_correlation_id(new_correlation_id())
    try:
        yield
    except BaseException as exc:
        outcome = error_type(exc)
        if getattr(exc, "correlation_id", "") is None:
            exc.correlation_id = current_correlation_id() or new_correlation_id()  # type: ignore[attr-defined]
        if span is not None and span.is_recording():
            span.set_attribute("error.type", outcome)
            span.record_exception(exc)
            span.set_status(_otel().Status(_otel().ERROR, str(exc)))
        raise
    finally:
        if op == "create" and isinstance(provider, str):
            runtime.metrics.creation(provider, outcome, time.perf_counter() - start)
        if token is not None:
            reset_correlation_id(token)
        if span is not None:
            with contextlib.suppress(Exception):  # never break the caller over telemetry
                _otel().detach(attached)
            span.end()


def _container_of(registry: Any, container: Container | None = None) -> Container:
    if container is None:
        container = getattr(registry, "container", None)
    return container if container is not None else get_container()


def record_resolution(provider: str, found: bool, *, container: Container | None = None) -> None:
    """Count a provider lookup by name (for lookups a table does not count itself)."""
    _container_of(None, container).runtime().metrics.resolution(provider, found)


def record_creation(
    provider: str, outcome: str, seconds: float, *, container: Container | None = None
) -> None:
    """Count a creation ("success" or the error code) and record how long it took."""
    _container_of(None, container).runtime().metrics.creation(provider, outcome, seconds)


def record_health(statuses: Mapping[str, Any], *, container: Container | None = None) -> None:
    """Report each provider's last health status (a HealthStatus or its status string)."""
    metrics = _container_of(None, container).runtime().metrics
    for provider, status in statuses.items():
        metrics.provider_health(provider, str(getattr(status, "status", status)))


def watch_registry(name: str, registry: Any) -> None:
    """Report this registry's size (chatmodels.registry.providers) and, when its table counts
    them, its resolutions, with the attribute ``chatmodels.registry=name``.

    The global registry is watched as ``global`` without this call. Reported through the
    registry's own container when it has one.
    """
    _container_of(registry).runtime().metrics.watch_registry(name, registry)
