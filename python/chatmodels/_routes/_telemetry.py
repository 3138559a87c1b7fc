"""What routes report: a span per routed call, events, metrics, and circuit log records.

`start` returns the call's `RouteScope`. Until OpenTelemetry is loaded nothing could record
a span or a metric, so the scope is the no-op one and a routed call pays nothing for it.

Once it is loaded, a routed call is one logical operation: an INTERNAL span ``route {name}``
(``chatmodels.route.name``, ``chatmodels.route.strategy``), made current around each attempt
so that the deployment's CLIENT chat span is its child; the chat span also gets the attempt's
``chatmodels.route.deployment`` (``provider/model``), ``chatmodels.route.deployment.index``
and ``chatmodels.route.attempt`` (through `ROUTE_ATTEMPT`, which the chat observer reads).
A failover is a ``chatmodels.route.failover`` event; a waiting or refused call a
``chatmodels.route.rate_limited`` event; a failed call marks the span ERROR with error.type.
The call's correlation id (the route span's trace id, or the enclosing operation's id, or a
new one) is shared by its attempts, their errors and the circuit log records.

Metrics, on the container's meter: ``chatmodels.route.attempts`` (by deployment and
outcome), ``chatmodels.route.failovers``, ``chatmodels.route.rate_limited`` (decision delayed
or rejected) and the ``chatmodels.route.circuit_state`` gauge (0 closed, 1 half_open, 2 open;
a route is on it from its registration, `watch`, or else from its first call); with a
`RedisState`, ``chatmodels.route.state.outages`` and ``chatmodels.route.state.fallbacks``.

Circuit openings (WARNING) and closings (INFO) are log records on ``chatmodels.routes``
whether or not OpenTelemetry is loaded. Telemetry never raises into a call.
"""

from __future__ import annotations

import contextlib
import sys
from contextlib import AbstractContextManager as ContextManager
from typing import TYPE_CHECKING, Any, Protocol

from ..telemetry import _container as container_module
from ..telemetry._correlation import (
    _CORRELATION,
    current_correlation_id,
    new_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)
from ..telemetry._logging import get_logger
from ..telemetry._observer import ROUTE_ATTEMPT, _otel, error_type

if TYPE_CHECKING:
    from types import TracebackType

    from .._errors import ChatModelError
    from ..telemetry._metrics import Metrics
    from ._deployment import Deployment
    from ._route import Route

__all__ = [
    "NOOP_ROUTE_SCOPE",
    "RouteScope",
    "circuit_closed",
    "circuit_opened",
    "start",
    "watch",
]

logger = get_logger("chatmodels.routes")


class RouteScope(Protocol):
    """One routed call's telemetry."""

    @property
    def correlation_id(self) -> str | None:
        """The routed call's correlation id (None when nothing records it)."""

    def attempt(self, index: int, number: int) -> ContextManager[None]:
        """Around one attempt on deployment `index` (its chat span is made inside)."""

    def attempt_failed(self, index: int, number: int, error: ChatModelError) -> None:
        """Attempt `number` on `index` failed with `error`."""

    def failover(self, index: int, error: ChatModelError) -> None:
        """The call moves on from `index` after `error`."""

    def delayed(self, deployment: Deployment, wait: float) -> None:
        """The call waits `wait` seconds for rate-limit capacity."""

    def rejected(self, deployment: Deployment) -> None:
        """The call is refused locally: every eligible deployment is at a rate limit."""

    def end(self, error: BaseException | None) -> None:
        """The routed call ended (once), with the error the caller sees, if any."""

    def log_ids(self) -> tuple[str | None, str | None]:
        """The (trace_id, span_id) a log record about this call carries (None, None: none)."""


class _NoopScope:
    __slots__ = ()
    _null = contextlib.nullcontext()
    correlation_id = None

    def attempt(self, index: int, number: int) -> ContextManager[None]:
        return self._null

    def attempt_failed(self, index: int, number: int, error: ChatModelError) -> None:
        pass

    def failover(self, index: int, error: ChatModelError) -> None:
        pass

    def delayed(self, deployment: Deployment, wait: float) -> None:
        pass

    def rejected(self, deployment: Deployment) -> None:
        pass

    def end(self, error: BaseException | None) -> None:
        pass

    def log_ids(self) -> tuple[str | None, str | None]:
        return None, None


NOOP_ROUTE_SCOPE: RouteScope = _NoopScope()


def start(route: Route, op: str) -> RouteScope:
    """The telemetry scope of one routed call (`op`: ``invoke`` or ``stream``)."""
    if "opentelemetry" not in sys.modules:  # nothing could record a span or a metric yet
        return NOOP_ROUTE_SCOPE
    try:
        return _start(route, op)
    except Exception:  # never break the caller over telemetry
        return NOOP_ROUTE_SCOPE


def watch(route: Route) -> None:
    """Show a newly registered `route`'s deployments on the circuit gauge (as closed until
    its first call says otherwise), when its container records metrics."""
    if "opentelemetry" not in sys.modules:  # no SDK: the first call watches it
        return
    try:
        container = route.registry.container or container_module._global
        if container is None:
            container = container_module.get_container()
        runtime = container._runtime or container.runtime()
        if runtime.off:
            return
        metrics = runtime.call_metrics
        if runtime.proxied:
            metrics = runtime.live()[1]
        if metrics is not None:
            metrics.watch_route(route)
    except Exception:  # never break a registration over telemetry
        return


def _start(route: Route, op: str) -> RouteScope:
    container = route.registry.container or container_module._global
    if container is None:
        container = container_module.get_container()
    runtime = container._runtime or container.runtime()
    if runtime.off:
        return NOOP_ROUTE_SCOPE
    tracer = runtime.tracer
    metrics = runtime.call_metrics
    if runtime.proxied:
        tracer, metrics = runtime.live()
        if tracer is None and metrics is None:
            # Idle API proxies (no SDK installed): nothing to record but the shared id.
            return _QuietScope() if runtime.tracing else NOOP_ROUTE_SCOPE
    scope = _Scope(route, metrics)
    if metrics is not None:
        metrics.watch_route(route)
    inherited = _CORRELATION.get()
    recording = False
    if tracer is not None:
        otel = _otel()
        attrs = {
            "chatmodels.route.name": route.name,
            "chatmodels.route.strategy": route.strategy,
            "chatmodels.route.operation": op,
        }
        span = scope._span = tracer.start_span(
            f"route {route.name}", kind=otel.INTERNAL, attributes=attrs
        )
        recording = scope._recording = span.is_recording()
        if recording and inherited is not None:
            span.set_attribute("chatmodels.correlation_id", inherited)
    if inherited is not None:
        scope._cid = inherited
    elif not recording:
        # No recording span whose trace id the attempts share: one id for them all.
        scope._cid = new_correlation_id()
        scope._cid_token = set_correlation_id(scope._cid)
    return scope


class _QuietScope:
    """While no SDK is installed: only the correlation id that the attempts, their errors,
    the routed call's error and the circuit log records share. (The attempts' own scopes
    then inherit it instead of making one each, so it costs the call next to nothing.)"""

    __slots__ = ("_token", "correlation_id")
    _null = _NoopScope._null

    def __init__(self) -> None:
        cid = _CORRELATION.get()
        self._token: Any = None
        if cid is None:
            cid = new_correlation_id()
            self._token = set_correlation_id(cid)
        self.correlation_id: str | None = cid

    def attempt(self, index: int, number: int) -> ContextManager[None]:
        return self._null

    def attempt_failed(self, index: int, number: int, error: ChatModelError) -> None:
        pass

    def failover(self, index: int, error: ChatModelError) -> None:
        pass

    def delayed(self, deployment: Deployment, wait: float) -> None:
        pass

    def rejected(self, deployment: Deployment) -> None:
        pass

    def log_ids(self) -> tuple[str | None, str | None]:
        return None, None

    def end(self, error: BaseException | None) -> None:
        token, self._token = self._token, None
        if token is not None:
            reset_correlation_id(token)
        if error is not None and getattr(error, "correlation_id", "") is None:
            error.correlation_id = self.correlation_id  # type: ignore[attr-defined]


class _Scope:
    """A routed call's scope; also the context manager of its attempts (one at a time)."""

    __slots__ = (
        "_attached",
        "_cid",
        "_cid_token",
        "_done",
        "_index",
        "_metrics",
        "_number",
        "_pending",
        "_recording",
        "_route",
        "_span",
        "_var_token",
    )

    def __init__(self, route: Route, metrics: Metrics | None) -> None:
        self._route = route
        self._metrics = metrics
        self._span: Any = None
        self._recording = False
        self._cid: str | None = None
        self._cid_token: Any = None
        self._attached: Any = None
        self._var_token: Any = None
        self._index = -1
        self._number = 0
        self._pending = False  # an attempt entered that has not failed (yet)
        self._done = False

    @property
    def correlation_id(self) -> str | None:
        """The id the route span and its attempts share."""
        cid = self._cid
        if cid is None and self._span is not None:
            cid = self._cid = "%032x" % self._span.get_span_context().trace_id  # noqa: UP031
        return cid

    def log_ids(self) -> tuple[str | None, str | None]:
        span = self._span
        if span is None:
            return None, None
        ctx = span.get_span_context()
        if not ctx.is_valid:
            return None, None
        return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")

    # -- attempts --------------------------------------------------------------------------

    def attempt(self, index: int, number: int) -> ContextManager[None]:
        self._index = index
        self._number = number
        return self

    def __enter__(self) -> None:
        self._pending = True
        span = self._span
        if span is None:
            return
        try:
            index = self._index
            self._var_token = ROUTE_ATTEMPT.set(
                {
                    "chatmodels.route.name": self._route.name,
                    "chatmodels.route.deployment": self._route.deployments[index].label,
                    "chatmodels.route.deployment.index": index,
                    "chatmodels.route.attempt": self._number,
                }
            )
            otel = _otel()
            self._attached = otel.attach(otel.set_span_in_context(span, otel.current()))
        except Exception:  # never break the caller over telemetry
            pass

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        attached, self._attached = self._attached, None
        token, self._var_token = self._var_token, None
        try:
            if attached is not None:
                _otel().detach(attached)
            if token is not None:
                ROUTE_ATTEMPT.reset(token)
        except Exception:  # a detach in another context: nothing to undo here
            pass

    def attempt_failed(self, index: int, number: int, error: ChatModelError) -> None:
        self._pending = False
        metrics = self._metrics
        if metrics is None:
            return
        try:
            route = self._route
            label = route.deployments[index].label
            metrics.route_attempt(route.name, index, label, error.code.value)
        except Exception:
            pass

    def failover(self, index: int, error: ChatModelError) -> None:
        try:
            route = self._route
            label = route.deployments[index].label
            code = error.code.value
            if self._recording:
                self._span.add_event(
                    "chatmodels.route.failover",
                    {
                        "chatmodels.route.deployment": label,
                        "chatmodels.route.deployment.index": index,
                        "chatmodels.route.attempt": self._number,
                        "error.type": code,
                    },
                )
            if self._metrics is not None:
                self._metrics.route_failover(route.name, index, label, code)
        except Exception:
            pass

    # -- rate limits -----------------------------------------------------------------------

    def delayed(self, deployment: Deployment, wait: float) -> None:
        self._rate_limited(deployment, "delayed", wait)

    def rejected(self, deployment: Deployment) -> None:
        self._rate_limited(deployment, "rejected", None)

    def _rate_limited(self, deployment: Deployment, decision: str, wait: float | None) -> None:
        try:
            route = self._route
            index = next(i for i, d in enumerate(route.deployments) if d is deployment)
            label = deployment.label
            if self._recording:
                attrs: dict[str, Any] = {
                    "chatmodels.route.deployment": label,
                    "chatmodels.route.deployment.index": index,
                    "chatmodels.route.decision": decision,
                }
                if wait is not None:
                    attrs["chatmodels.route.wait"] = wait
                self._span.add_event("chatmodels.route.rate_limited", attrs)
            if self._metrics is not None:
                self._metrics.route_rate_limited(route.name, index, label, decision)
        except Exception:
            pass

    # -- the end, once ---------------------------------------------------------------------

    def end(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._end(error)
        except Exception:  # never break the caller over telemetry
            pass
        finally:
            token, self._cid_token = self._cid_token, None
            if token is not None:
                reset_correlation_id(token)

    def _end(self, error: BaseException | None) -> None:
        route = self._route
        index = self._index
        # A stream closed early by its caller ended well as far as the route is concerned.
        closed_early = isinstance(error, GeneratorExit)
        ok = error is None or closed_early
        if self._pending:
            self._pending = False
            if self._metrics is not None and index >= 0:
                outcome = "success" if ok else _outcome(error)
                label = route.deployments[index].label
                self._metrics.route_attempt(route.name, index, label, outcome)
        if error is not None and not closed_early and getattr(error, "correlation_id", "") is None:
            error.correlation_id = self.correlation_id  # type: ignore[attr-defined]
        span = self._span
        if span is None:
            return
        if self._recording:
            attrs: dict[str, Any] = {"chatmodels.route.attempts": self._number}
            if ok and index >= 0:
                attrs["chatmodels.route.deployment"] = route.deployments[index].label
                attrs["chatmodels.route.deployment.index"] = index
            if closed_early:
                attrs["chatmodels.stream.closed_early"] = True
            elif error is not None:
                otel = _otel()
                attrs["error.type"] = error_type(error)
                span.record_exception(error)
                span.set_status(otel.Status(otel.ERROR, str(error)))
            span.set_attributes(attrs)
        span.end()


def _outcome(error: BaseException | None) -> str:
    if error is None:
        return "success"
    name = type(error).__name__
    if name == "CancelledError":
        return "cancelled"
    return error_type(error)


# -- circuit log records --------------------------------------------------------------------


def _ids(scope: RouteScope | None, fallback: str | None) -> tuple[str | None, Any, Any]:
    if scope is None:
        return fallback or current_correlation_id(), None, None
    trace_id, span_id = scope.log_ids()
    return scope.correlation_id or fallback, trace_id, span_id


def circuit_opened(
    route: Route,
    index: int,
    error: ChatModelError,
    cooldown: float,
    scope: RouteScope | None = None,
) -> None:
    """A WARNING record: deployment `index` of `route` stops taking calls for `cooldown` s,
    with the correlation id of the call (`scope`) whose failure opened it."""
    try:
        d = route.deployments[index]
        cid, trace_id, span_id = _ids(scope, error.correlation_id)
        logger.warning(
            "route %r: circuit of deployment %d (%s) opened after %s; cooldown %.3g s",
            route.name,
            index,
            d.label,
            error.code.value,
            cooldown,
            extra={
                "op": "route",
                "provider": d.provider,
                "model": d.model,
                "code": error.code.value,
                "correlation_id": cid,
                "trace_id": trace_id,
                "span_id": span_id,
                "chatmodels.route": route.name,
                "chatmodels.deployment": d.label,
                "chatmodels.deployment_index": index,
                "chatmodels.reason": error.code.value,
                "chatmodels.cooldown": cooldown,
                "chatmodels.correlation_id": cid,
            },
        )
    except Exception:  # never break the caller over telemetry
        pass


def circuit_closed(route: Route, index: int, scope: RouteScope | None) -> None:
    """An INFO record: deployment `index` of `route` takes calls again, with the correlation
    id of the call (`scope`) whose success closed it (None: a health probe's, or the
    context's)."""
    try:
        d = route.deployments[index]
        cid, trace_id, span_id = _ids(scope, None)
        logger.info(
            "route %r: circuit of deployment %d (%s) closed",
            route.name,
            index,
            d.label,
            extra={
                "op": "route",
                "provider": d.provider,
                "model": d.model,
                "code": None,
                "correlation_id": cid,
                "trace_id": trace_id,
                "span_id": span_id,
                "chatmodels.route": route.name,
                "chatmodels.deployment": d.label,
                "chatmodels.deployment_index": index,
                "chatmodels.correlation_id": cid,
            },
        )
    except Exception:  # never break the caller over telemetry
        pass
