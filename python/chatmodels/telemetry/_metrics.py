"""Metric instruments: the GenAI client metrics and the registry metrics.

The hot path never calls the OpenTelemetry SDK. A call's values go to the aggregator (the
Rust ``MetricAggregator`` or its Python twin): counters into fixed cells, histogram values into
a bounded buffer. When the application's metric reader collects (on its own thread), one
observable callback drains the buffer into the `Histogram` instruments and reports the
counters, so the SDK's per-record cost is paid off the caller's path.

`NoOpMetrics` has the same interface and records nothing.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import _pymetrics
from ._pymetrics import (
    DURATION,
    REGISTRY_CREATION,
    TIME_PER_OUTPUT_CHUNK,
    TIME_TO_FIRST_CHUNK,
    TOKENS_INPUT,
    TOKENS_OUTPUT,
)

__all__ = [
    "DURATION_BUCKETS",
    "TOKEN_BUCKETS",
    "Metrics",
    "NoOpMetrics",
    "OTelMetrics",
    "new_aggregator",
]

# The advised explicit bucket boundaries of the GenAI semantic conventions.
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip

CREATION_BUCKETS = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)
HEALTH_VALUES = {"healthy": 1.0, "degraded": 0.5, "unhealthy": 0.0}

_RESOLUTIONS = 0
_CREATIONS = 1
_ROUTE_ATTEMPTS = 2
_ROUTE_FAILOVERS = 3
_ROUTE_RATE_LIMITED = 4
_COUNTERS = 5
CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}
_MAX_KEYS = 1024
_OVERFLOW = {"otel.metric.overflow": True}

CallKey = tuple[str, str, str | None, str | None, int | None, str | None, str | None]


class Metrics:
    """The interface every metrics implementation offers (this base records nothing)."""

    enabled = False

    def call_key(
        self,
        provider: str,
        request_model: str | None,
        server_address: str | None,
        server_port: int | None,
        response_model: str | None,
        error_type: str | None,
        operation: str = "chat",
    ) -> int:
        """The key of a chat call's attribute set."""
        return 0

    def record_call(self, key: int, duration: float, input_tokens: int, output_tokens: int) -> None:
        """A finished call: duration in s; token counts, or -1 when not reported."""

    def record_stream(self, key: int, first_chunk: float | None, gaps: list[float]) -> None:
        """A stream's time to first chunk and the time between later chunks, in s."""

    def resolution(self, provider: str, found: bool) -> None:
        """A provider name was looked up in the registry."""

    def creation(self, provider: str, outcome: str, duration: float) -> None:
        """A provider instance was created (outcome "success" or an error code)."""

    def provider_health(self, provider: str, status: str) -> None:
        """The last health status of a provider: healthy, degraded or unhealthy."""

    def watch_registry(self, name: str, registry: Any) -> None:
        """Report the size of `registry` (and its table's resolution count) as `name`."""

    def watch_route(self, route: Any) -> None:
        """Report the circuit state of each deployment of `route` (held by a weak reference:
        a dropped or retired route stops being reported)."""

    def route_attempt(self, route: str, index: int, deployment: str, outcome: str) -> None:
        """A routed attempt on deployment `index` ended ("success" or the error code)."""

    def route_failover(self, route: str, index: int, deployment: str, error_type: str) -> None:
        """A routed call moved on from deployment `index` after `error_type`."""

    def route_rate_limited(self, route: str, index: int, deployment: str, decision: str) -> None:
        """A routed call was "delayed" or "rejected" by the rate limits of `index`."""


class NoOpMetrics(Metrics):
    """Metrics that record nothing, for tests and development."""


def new_aggregator(backend: str | None = None) -> Any:
    """The Rust aggregator when the extension has it and `backend` (default: the process's
    backend, CHATMODELS_BACKEND) allows, else the twin."""
    if backend is None:
        from .._backend import backend as chosen

        backend = chosen()
    if backend != "python":
        try:
            from .._core import MetricAggregator  # type: ignore[attr-defined,import-not-found,unused-ignore]
        except ImportError:
            pass
        else:
            return MetricAggregator(_COUNTERS, _MAX_KEYS, 65536)
    return _pymetrics.MetricAggregator(_COUNTERS, _MAX_KEYS, 65536)


class OTelMetrics(Metrics):
    """Metrics reported through an OpenTelemetry `Meter`.

    Args:
        meter: the meter to create the instruments on.
        aggregator: the hot-path aggregator (default: `new_aggregator()`).
        on_drop: called with the number of newly dropped values, when some were dropped.
    """

    enabled = True

    def __init__(
        self,
        meter: Any,
        aggregator: Any | None = None,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation

        self._Observation = Observation
        self._agg = aggregator if aggregator is not None else new_aggregator()
        # The per-call path calls the aggregator's own method: no Python frame in between.
        self.record_call = self._agg.record_call  # type: ignore[method-assign]
        self._keys: dict[tuple[Any, ...], int] = {}
        self._attrs: list[Mapping[str, Any]] = []
        self._lock = threading.Lock()
        self._on_drop = on_drop
        self._dropped_seen = 0
        self._health: dict[str, float] = {}
        self._registries: dict[str, weakref.ref[Any]] = {}
        self._drain_lock = threading.Lock()
        self._meter = meter
        self._routes: dict[int, weakref.ref[Any]] | None = None  # instruments made at first

        seconds = list(DURATION_BUCKETS)
        self._histograms = {
            DURATION: meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=seconds,
            ),
            TOKENS_INPUT: meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
            ),
            TIME_TO_FIRST_CHUNK: meter.create_histogram(
                "gen_ai.client.operation.time_to_first_chunk",
                unit="s",
                description="Time to receive the first chunk, measured from when the client "
                "issues the generation request to when the first chunk is received in the "
                "response stream.",
                explicit_bucket_boundaries_advisory=seconds,
            ),
            TIME_PER_OUTPUT_CHUNK: meter.create_histogram(
                "gen_ai.client.operation.time_per_output_chunk",
                unit="s",
                description="Time per output chunk, recorded for each chunk received after "
                "the first one.",
                explicit_bucket_boundaries_advisory=seconds,
            ),
            REGISTRY_CREATION: meter.create_histogram(
                "chatmodels.registry.creation.duration",
                unit="s",
                description="Time to create a provider instance through the registry.",
                explicit_bucket_boundaries_advisory=list(CREATION_BUCKETS),
            ),
        }
        self._histograms[TOKENS_OUTPUT] = self._histograms[TOKENS_INPUT]
        self._token_type = {TOKENS_INPUT: "input", TOKENS_OUTPUT: "output"}
        self._token_attrs: dict[tuple[int, int], Mapping[str, Any]] = {}

        def counter_callback(counter: int) -> Callable[[CallbackOptions], Iterable[Any]]:
            def observe(options: CallbackOptions) -> Iterable[Any]:
                self.flush()
                return [
                    Observation(total, self._attrs_of(key))
                    for key, total in self._agg.counter_values(counter)
                ]

            return observe

        meter.create_observable_counter(
            "chatmodels.registry.resolutions",
            callbacks=[self._observe_resolutions],
            unit="{resolution}",
            description="Provider lookups by name, as counted by the registry table.",
        )
        meter.create_observable_counter(
            "chatmodels.registry.creations",
            callbacks=[counter_callback(_CREATIONS)],
            unit="{creation}",
            description="Provider instances created through the registry, by outcome.",
        )
        meter.create_observable_up_down_counter(
            "chatmodels.registry.providers",
            callbacks=[self._observe_registries],
            unit="{provider}",
            description="Providers registered in the registry.",
        )
        meter.create_observable_gauge(
            "chatmodels.provider.health",
            callbacks=[self._observe_health],
            unit="1",
            description="Last health check: 1 healthy, 0.5 degraded, 0 unhealthy.",
        )
        meter.create_observable_counter(
            "chatmodels.telemetry.dropped",
            callbacks=[self._observe_dropped],
            unit="{measurement}",
            description="Measurements dropped because the buffer was full between collections.",
        )

    # -- keys ----------------------------------------------------------------------------

    def _intern(self, key: tuple[Any, ...], attrs: Callable[[], Mapping[str, Any]]) -> int:
        found = self._keys.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._keys.get(key)
            if found is not None:
                return found
            if len(self._attrs) >= _MAX_KEYS - 1:
                return _MAX_KEYS - 1
            index = len(self._attrs)
            self._attrs.append(attrs())
            self._keys[key] = index
            return index

    def _attrs_of(self, key: int) -> Mapping[str, Any]:
        return self._attrs[key] if key < len(self._attrs) else _OVERFLOW

    def call_key(
        self,
        provider: str,
        request_model: str | None,
        server_address: str | None,
        server_port: int | None,
        response_model: str | None,
        error_type: str | None,
        operation: str = "chat",
    ) -> int:
        key = (operation, provider, request_model, server_address, server_port,
               response_model, error_type)  # fmt: skip

        def attrs() -> Mapping[str, Any]:
            out: dict[str, Any] = {
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": provider,
            }
            if request_model is not None:
                out["gen_ai.request.model"] = request_model
            if server_address is not None:
                out["server.address"] = server_address
                if server_port is not None:
                    out["server.port"] = server_port
            if response_model is not None:
                out["gen_ai.response.model"] = response_model
            if error_type is not None:
                out["error.type"] = error_type
            return out

        return self._intern(key, attrs)

    # -- hot path ------------------------------------------------------------------------

    # record_call: the aggregator's own method, bound in __init__.

    def record_stream(self, key: int, first_chunk: float | None, gaps: list[float]) -> None:
        if first_chunk is not None:
            self._agg.record(TIME_TO_FIRST_CHUNK, key, first_chunk)
        if gaps:
            self._agg.record_many(TIME_PER_OUTPUT_CHUNK, key, gaps)

    def resolution(self, provider: str, found: bool) -> None:
        outcome = "found" if found else "not_found"
        key = self._intern(
            ("resolution", provider, outcome),
            lambda: {"chatmodels.provider": provider, "chatmodels.outcome": outcome},
        )
        self._agg.add(_RESOLUTIONS, key, 1)

    def creation(self, provider: str, outcome: str, duration: float) -> None:
        key = self._intern(
            ("creation", provider, outcome),
            lambda: {"chatmodels.provider": provider, "chatmodels.outcome": outcome},
        )
        self._agg.add(_CREATIONS, key, 1)
        self._agg.record(REGISTRY_CREATION, key, duration)

    def provider_health(self, provider: str, status: str) -> None:
        self._health[provider] = HEALTH_VALUES.get(status, 0.0)

    def watch_registry(self, name: str, registry: Any) -> None:
        self._registries[name] = weakref.ref(registry)

    # -- routes --------------------------------------------------------------------------

    def watch_route(self, route: Any) -> None:
        routes = self._routes
        if routes is None:
            routes = self._route_instruments()
        key = id(route)
        if key in routes:
            return

        def forget(_: Any, key: int = key) -> None:
            routes.pop(key, None)

        routes[key] = weakref.ref(route, forget)

    def _route_instruments(self) -> dict[int, weakref.ref[Any]]:
        """Create the route instruments on the meter, once (at the first routed call)."""
        with self._lock:
            if self._routes is not None:
                return self._routes
            meter = self._meter
            for name, counter, unit, description in (
                ("chatmodels.route.attempts", _ROUTE_ATTEMPTS, "{attempt}",
                 "Routed attempts by deployment and outcome (success or the error code)."),
                ("chatmodels.route.failovers", _ROUTE_FAILOVERS, "{failover}",
                 "Routed calls moved on from a deployment, by deployment and error.type."),
                ("chatmodels.route.rate_limited", _ROUTE_RATE_LIMITED, "{call}",
                 "Routed calls delayed or rejected by their deployments' rate limits."),
            ):  # fmt: skip
                meter.create_observable_counter(
                    name,
                    callbacks=[self._counter_callback(counter)],
                    unit=unit,
                    description=description,
                )
            meter.create_observable_gauge(
                "chatmodels.route.circuit_state",
                callbacks=[self._observe_circuits],
                unit="1",
                description="Circuit state per route deployment: 0 closed, 1 half_open, 2 open.",
            )
            for name, attr, unit, description in (
                ("chatmodels.route.state.outages", "outages", "{outage}",
                 "Outages of a route's shared state (Redis unreachable or slow)."),
                ("chatmodels.route.state.fallbacks", "fallbacks", "{decision}",
                 "Routing decisions made on in-process state during a shared-state outage."),
            ):  # fmt: skip
                meter.create_observable_counter(
                    name,
                    callbacks=[self._state_callback(attr)],
                    unit=unit,
                    description=description,
                )
            self._routes = {}
            return self._routes

    def _state_callback(self, attr: str) -> Callable[[Any], Iterable[Any]]:
        """Report `attr` of each watched route's shared state (in-process states have none)."""

        def observe(options: Any) -> Iterable[Any]:
            out = []
            for ref in list((self._routes or {}).values()):
                route = ref()
                if route is None or route.retired:
                    continue  # a replaced route's successor keeps its state
                value = getattr(route.state, attr, None)
                if isinstance(value, int):
                    out.append(self._Observation(value, {"chatmodels.route.name": route.name}))
            return out

        return observe

    def _counter_callback(self, counter: int) -> Callable[[Any], Iterable[Any]]:
        def observe(options: Any) -> Iterable[Any]:
            return [
                self._Observation(total, self._attrs_of(key))
                for key, total in self._agg.counter_values(counter)
            ]

        return observe

    def _route_key(self, kind: str, route: str, index: int, deployment: str, extra: str,
                   value: str) -> int:  # fmt: skip
        return self._intern(
            (kind, route, index, deployment, value),
            lambda: {
                "chatmodels.route.name": route,
                "chatmodels.route.deployment": deployment,
                "chatmodels.route.deployment.index": index,
                extra: value,
            },
        )

    def route_attempt(self, route: str, index: int, deployment: str, outcome: str) -> None:
        key = self._route_key(
            "route.attempt", route, index, deployment, "chatmodels.outcome", outcome
        )
        self._agg.add(_ROUTE_ATTEMPTS, key, 1)

    def route_failover(self, route: str, index: int, deployment: str, error_type: str) -> None:
        key = self._route_key("route.failover", route, index, deployment, "error.type", error_type)
        self._agg.add(_ROUTE_FAILOVERS, key, 1)

    def route_rate_limited(self, route: str, index: int, deployment: str, decision: str) -> None:
        key = self._route_key(
            "route.rate_limited", route, index, deployment, "chatmodels.route.decision", decision
        )
        self._agg.add(_ROUTE_RATE_LIMITED, key, 1)

    def _observe_circuits(self, options: Any) -> Iterable[Any]:
        out = []
        for ref in list((self._routes or {}).values()):
            route = ref()
            if route is None or route.retired:
                continue  # a replaced route's successor reports the same deployments
            try:
                now = route.clock()
                for index, deployment in enumerate(route.deployments):
                    circuit = route.state.snapshot(index, now).circuit
                    attrs = {
                        "chatmodels.route.name": route.name,
                        "chatmodels.route.deployment": deployment.label,
                        "chatmodels.route.deployment.index": index,
                    }
                    out.append(self._Observation(CIRCUIT_VALUES.get(circuit, 2), attrs))
            except Exception:  # a broken clock must not stop the collection
                continue
        return out

    # -- collection (the exporter's thread) ----------------------------------------------

    def flush(self) -> int:
        """Move the buffered values into the histograms now; returns how many moved."""
        with self._drain_lock:
            taken = self._agg.drain()
            histograms = self._histograms
            for histogram, key, value in taken:
                if histogram in self._token_type:
                    attrs = self._token_attrs.get((histogram, key))
                    if attrs is None:
                        attrs = {
                            **self._attrs_of(key),
                            "gen_ai.token.type": self._token_type[histogram],
                        }
                        self._token_attrs[(histogram, key)] = attrs
                    histograms[histogram].record(int(value), attrs)
                else:
                    histograms[histogram].record(value, self._attrs_of(key))
        return len(taken)

    def _observe_dropped(self, options: Any) -> Iterable[Any]:
        self.flush()
        dropped = int(self._agg.dropped())
        if dropped > self._dropped_seen and self._on_drop is not None:
            self._on_drop(dropped - self._dropped_seen)
        self._dropped_seen = dropped
        return [self._Observation(dropped, {})]

    def _observe_health(self, options: Any) -> Iterable[Any]:
        return [
            self._Observation(value, {"chatmodels.provider": provider})
            for provider, value in list(self._health.items())
        ]

    def _watched(self) -> list[tuple[str, Any]]:
        found = [(name, ref()) for name, ref in list(self._registries.items())]
        module = sys.modules.get("chatmodels._registry")
        default = getattr(module, "_global", None)
        if default is not None and "global" not in self._registries:
            found.append(("global", default))
        return [(name, registry) for name, registry in found if registry is not None]

    def _observe_registries(self, options: Any) -> Iterable[Any]:
        return [
            self._Observation(len(registry), {"chatmodels.registry": name})
            for name, registry in self._watched()
        ]

    def _observe_resolutions(self, options: Any) -> Iterable[Any]:
        out = [
            self._Observation(total, self._attrs_of(key))
            for key, total in self._agg.counter_values(_RESOLUTIONS)
        ]
        for name, registry in self._watched():
            table = getattr(registry, "_table", None)
            total = getattr(table, "resolutions", None)
            if total is None:
                continue
            misses = getattr(table, "resolution_misses", None)
            if misses is None:
                out.append(self._Observation(total, {"chatmodels.registry": name}))
                continue
            for outcome, value in (("found", total - misses), ("not_found", misses)):
                attrs = {"chatmodels.registry": name, "chatmodels.outcome": outcome}
                out.append(self._Observation(value, attrs))
        return out
