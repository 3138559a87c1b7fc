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

from .._observe import telemetry_failed
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
    `container`, else the registry's own container, else the global one. What telemetry
    raises (the SDK, a processor, a meter) is reported on the ``chatmodels.telemetry``
    logger, never raised: the operation goes on as if unobserved.
    """
    operation = _Operation()
    try:
        runtime = _container_of(registry, container).runtime()
        if not runtime.off:
            operation.begin(runtime, op, provider, registry, attributes)
    except Exception as exc:
        operation.abandon(exc, f"registry.{op}")
    try:
        yield
    except BaseException as exc:
        operation.fail(exc)
        raise
    finally:
        operation.end()


class _Operation:
    """One registry operation's span, correlation id and creation metrics."""

    __slots__ = ("attached", "done", "op", "outcome", "provider", "runtime", "span", "start",
                 "token")  # fmt: skip

    def __init__(self) -> None:
        self.done = True  # until `begin` has run: nothing to record
        self.runtime: Any = None
        self.op = ""
        self.provider: object = None
        self.start = 0.0
        self.outcome = "success"
        self.token: Any = None
        self.span: Any = None
        self.attached: Any = None

    def begin(
        self, runtime: Any, op: str, provider: object, registry: Any, attributes: Any
    ) -> None:
        self.runtime = runtime
        self.done = False
        self.op = op
        self.provider = provider
        self.start = time.perf_counter()
        if runtime.tracer is not None:
            otel = _otel()
            span = self.span = runtime.tracer.start_span(
                f"chatmodels.registry.{op}",
                kind=otel.INTERNAL,
                attributes=_attributes(op, provider, registry, attributes),
            )
            self.attached = otel.attach(otel.set_span_in_context(span))
            inherited = own_correlation_id()
            if span.is_recording():
                if inherited is not None:
                    span.set_attribute("chatmodels.correlation_id", inherited)
            elif inherited is None:
                self.token = set_correlation_id(new_correlation_id())

    def fail(self, exc: BaseException) -> None:
        """The operation raised `exc`: its span and `exc` say so."""
        if self.runtime is None:  # level off
            return
        try:
            outcome = self.outcome = error_type(exc)
            if getattr(exc, "correlation_id", "") is None:
                exc.correlation_id = current_correlation_id() or new_correlation_id()  # type: ignore[attr-defined]
            span = self.span
            if not self.done and span is not None and span.is_recording():
                otel = _otel()
                span.set_attribute("error.type", outcome)
                span.record_exception(exc)
                span.set_status(otel.Status(otel.ERROR, str(exc)))
        except Exception as failure:
            self.abandon(failure, f"registry.{self.op}")

    def end(self) -> None:
        """The operation is over: the metrics recorded, the context restored, the span ended."""
        if self.done:
            return
        self.done = True
        try:
            provider = self.provider
            if self.op == "create" and isinstance(provider, str):
                duration = time.perf_counter() - self.start
                self.runtime.metrics.creation(provider, self.outcome, duration)
            token = self.token
            if token is not None:
                self.token = None
                reset_correlation_id(token)
            span = self.span
            if span is not None:
                attached = self.attached
                self.attached = None
                with contextlib.suppress(Exception):  # a token from another context
                    _otel().detach(attached)
                span.end()
        except Exception as exc:
            self.abandon(exc, f"registry.{self.op}")

    def abandon(self, exc: Exception, where: str) -> None:
        """Telemetry raised `exc`: report it, and undo what this operation holds."""
        self.done = True
        telemetry_failed(exc, where)
        token = self.token
        if token is not None:
            self.token = None
            reset_correlation_id(token)
        attached = self.attached
        if attached is not None:
            self.attached = None
            with contextlib.suppress(Exception):
                _otel().detach(attached)
        span = self.span
        if span is not None:
            with contextlib.suppress(Exception):
                if span.is_recording():  # false once ended, even by an `end` that raised
                    span.end()


def _container_of(registry: Any, container: Container | None = None) -> Container:
    if container is None:
        container = getattr(registry, "container", None)
    return container if container is not None else get_container()


def record_resolution(provider: str, found: bool, *, container: Container | None = None) -> None:
    """Count a provider lookup by name (for lookups a table does not count itself)."""
    try:
        _container_of(None, container).runtime().metrics.resolution(provider, found)
    except Exception as exc:  # telemetry never breaks the registry
        telemetry_failed(exc, "registry.resolution")


def record_creation(
    provider: str, outcome: str, seconds: float, *, container: Container | None = None
) -> None:
    """Count a creation ("success" or the error code) and record how long it took."""
    try:
        _container_of(None, container).runtime().metrics.creation(provider, outcome, seconds)
    except Exception as exc:  # telemetry never breaks the registry
        telemetry_failed(exc, "registry.create")


def record_health(statuses: Mapping[str, Any], *, container: Container | None = None) -> None:
    """Report each provider's last health status (a HealthStatus or its status string)."""
    try:
        metrics = _container_of(None, container).runtime().metrics
        for provider, status in statuses.items():
            metrics.provider_health(provider, str(getattr(status, "status", status)))
    except Exception as exc:  # telemetry never breaks a health check
        telemetry_failed(exc, "registry.health")


def watch_registry(name: str, registry: Any) -> None:
    """Report this registry's size (chatmodels.registry.providers) and, when its table counts
    them, its resolutions, with the attribute ``chatmodels.registry=name``.

    The global registry is watched as ``global`` without this call. Reported through the
    registry's own container when it has one.
    """
    try:
        _container_of(registry).runtime().metrics.watch_registry(name, registry)
    except Exception as exc:  # telemetry never breaks the registry
        telemetry_failed(exc, "registry.watch")
