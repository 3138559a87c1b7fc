"""What routes report: a span per routed call, events, metrics, and circuit log records.

`start` returns the call's `RouteScope`. Until OpenTelemetry is loaded nothing could record
a span or a metric, so the scope is the no-op one and a routed call pays nothing for it;
circuit openings and closings are log records on ``chatmodels.routes`` either way.
"""

from __future__ import annotations

import contextlib
import logging
from contextlib import AbstractContextManager as ContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .._errors import ChatModelError
    from ._deployment import Deployment
    from ._route import Route

__all__ = ["NOOP_ROUTE_SCOPE", "RouteScope", "circuit_closed", "circuit_opened", "start"]

logger = logging.getLogger("chatmodels.routes")


class RouteScope(Protocol):
    """One routed call's telemetry."""

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


class _NoopScope:
    __slots__ = ()
    _null = contextlib.nullcontext()

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


NOOP_ROUTE_SCOPE: RouteScope = _NoopScope()


def start(route: Route, op: str) -> RouteScope:
    """The telemetry scope of one routed call."""
    return NOOP_ROUTE_SCOPE


def _correlation_id(error: Any) -> str | None:
    return getattr(error, "correlation_id", None)


def circuit_opened(route: Route, index: int, error: ChatModelError, cooldown: float) -> None:
    """A WARNING record: deployment `index` of `route` stops taking calls for `cooldown` s."""
    d = route.deployments[index]
    logger.warning(
        "route %r: circuit of deployment %d (%s) opened after %s; cooldown %.3g s",
        route.name,
        index,
        d.label,
        error.code.value,
        cooldown,
        extra={
            "chatmodels.route": route.name,
            "chatmodels.deployment": d.label,
            "chatmodels.reason": error.code.value,
            "chatmodels.cooldown": cooldown,
            "chatmodels.correlation_id": _correlation_id(error),
        },
    )


def circuit_closed(route: Route, index: int, correlation_id: str | None) -> None:
    """An INFO record: deployment `index` of `route` takes calls again."""
    d = route.deployments[index]
    logger.info(
        "route %r: circuit of deployment %d (%s) closed",
        route.name,
        index,
        d.label,
        extra={
            "chatmodels.route": route.name,
            "chatmodels.deployment": d.label,
            "chatmodels.correlation_id": correlation_id,
        },
    )
