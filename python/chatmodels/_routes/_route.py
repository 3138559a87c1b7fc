"""`Route`: a registered name over deployments, and `register_route`, which validates it.

A route is stored in the registry as an ordinary entry whose creator is the `Route` object
itself: resolving the name gives the current route, and `register(..., replace=True)` swaps
it atomically. Each `Route` owns its deployments' models (created once, through the
registry, with their own retries off) and counts the calls running on it, so that a route
replaced or unregistered closes its models once its calls have drained.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from .._errors import (
    ChatModelError,
    ErrorCode,
    InvalidConfigError,
    ProviderNotFoundError,
    suggest,
)
from .._metadata import Capability, ProviderMetadata, ProviderOptions, capability_mask
from . import _telemetry
from ._deployment import Deployment
from ._state import (
    STRATEGIES,
    Chooser,
    Limits,
    OrderedChooser,
    Plan,
    RouteState,
    Strategy,
    new_call_gate,
    new_route_state,
)
from ._types import DEFAULT_BREAKER, Breaker

if TYPE_CHECKING:
    from .._model import ChatModel
    from .._registry import ProviderRegistry
    from ._model import RoutedModel
    from ._redis import RedisState

logger = logging.getLogger("chatmodels.routes")

__all__ = [
    "DEFAULT_FAILOVER",
    "STRATEGIES",
    "Route",
    "Strategy",
    "build_route",
    "register_route",
    "retire_entry",
]


DEFAULT_FAILOVER = frozenset(
    {
        ErrorCode.RATE_LIMITED,
        ErrorCode.PROVIDER_UNAVAILABLE,
        ErrorCode.TIMEOUT,
        ErrorCode.NETWORK,
        ErrorCode.INVALID_RESPONSE,
        ErrorCode.INTERNAL,
        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
    }
)
"""The codes that move a call to the next deployment (context_length_exceeded only to a
larger declared context window)."""


class Route:
    """One route: its settings, its deployments' models and their shared state.

    Built by `register_route`; callable as the registry entry's creator (it returns a
    `RoutedModel` bound to the route's name, which follows whatever route the name holds at
    each call).
    """

    state_source: RedisState | None = None
    """The shared state's store the route was registered with (None: in-process)."""

    def __init__(
        self,
        registry: ProviderRegistry,
        name: str,
        deployments: tuple[Deployment, ...],
        *,
        strategy: Strategy,
        timeout: float | None,
        failover_on: frozenset[ErrorCode],
        breaker: Breaker | None,
        max_wait: float,
        clock: Callable[[], float],
        state: RouteState,
        chooser: Chooser,
        models: tuple[ChatModel, ...],
        entries: tuple[object, ...],
        metadata: ProviderMetadata,
    ) -> None:
        self.registry = registry
        self.name = name
        self.deployments = deployments
        self.strategy = strategy
        self.timeout = timeout
        self.failover_on = failover_on
        self.breaker = breaker
        self.max_wait = max_wait
        self.clock = clock
        self.state = state
        self.chooser = chooser
        # A routed call's decision and outcome: one call each into the state (bound once).
        self.choose = chooser.choose
        self.finish = chooser.finish
        self.models = models
        self.metadata = metadata
        self._entries = entries
        self.masks = tuple(capability_mask(m.metadata.capabilities) for m in models)
        self.windows = tuple(d.context_window for d in deployments)
        # Each attempt gets what is left of the call's deadline, and at most the deployment's
        # own request timeout (its `timeout` option), so a hanging deployment leaves time to
        # fail over.
        self.attempt_limits = tuple(m.options.timeout for m in models)
        # The registry's version when the models were checked against its entries (a
        # replaced provider entry is picked up at the next call after a write).
        self.version = registry.version
        self._lock = threading.Lock()
        self._gate = new_call_gate(registry.backend)
        # A routed call counts itself in and out (bound once: one call each into the gate).
        self.enter = self._gate.enter
        self.leave = self._gate.exit
        self._successor: Route | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<Route {self.name!r} strategy={self.strategy!r} deployments={self.deployments!r}>"

    # -- the registry entry -----------------------------------------------------------------

    def __call__(self, options: ProviderOptions) -> RoutedModel:
        from ._model import RoutedModel

        return RoutedModel(self.registry, self.name, self.metadata, options)

    # -- calls in flight, and draining ------------------------------------------------------

    enter: Callable[[], bool]
    """Count a call starting on this route; False once it is retired (look it up again)."""

    leave: Callable[[], bool]
    """Count a call ending; True for the last call of a retired route (call `drained`)."""

    def exit(self) -> None:
        """Count a call ending; the last call of a retired route closes its models."""
        if self.leave():
            self._close_models()

    def drained(self) -> None:
        """The last call of this retired route ended: close its models."""
        self._close_models()

    def retire(self, successor: Route | None = None) -> None:
        """Stop taking calls; close the models `successor` does not reuse once drained."""
        with self._lock:
            if self._gate.retired:
                return
            self._successor = successor
            idle = self._gate.retire()
        if idle:
            self._close_models()

    @property
    def retired(self) -> bool:
        """Whether the route was replaced or unregistered."""
        return self._gate.retired

    @property
    def in_flight(self) -> int:
        """Calls running on this route."""
        return self._gate.active

    def _close_models(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            keep = set(map(id, self._successor.models)) if self._successor is not None else set()
        for model in self.models:
            if id(model) not in keep:
                # a model that fails to close must not stop the others
                with contextlib.suppress(Exception):
                    model.close()

    # -- picking up replaced provider entries ------------------------------------------------

    def refreshed(self) -> Route:
        """This route, or its successor when a deployment's provider entry was replaced.

        Called when the registry's version moved since the models were checked. The
        successor keeps the state and the models whose entries did not change; it is swapped
        into the registry atomically and this route drains.
        """
        registry = self.registry
        with _routes_lock(registry):
            if self._gate.retired:
                return self
            version = registry.version
            changed = []
            for i, d in enumerate(self.deployments):
                try:
                    entry = registry._table.get(d.provider, "route")
                except ProviderNotFoundError:
                    continue  # unregistered since: the model made before keeps serving
                if entry is not self._entries[i]:
                    changed.append((i, entry))
            if not changed:
                self.version = version
                return self
            models = list(self.models)
            entries = list(self._entries)
            made: list[ChatModel] = []
            try:
                for i, entry in changed:
                    models[i] = _create(registry, self.name, i, self.deployments[i])
                    made.append(models[i])
                    entries[i] = entry
            except ChatModelError as exc:
                for model in made:
                    model.close()
                logger.warning(
                    "route %r keeps its models: a replaced provider entry could not create one: %s",
                    self.name,
                    exc,
                )
                self.version = version  # keep serving with the models it has
                return self
            plan = _plan(self.strategy, self.deployments, models)
            chooser = _chooser(self.state, plan, shared=self.state_source is not None)
            # The capabilities every deployment shares may change with a replaced entry.
            metadata = _route_metadata(self.name, models, self.strategy)
            successor = Route(
                registry,
                self.name,
                self.deployments,
                strategy=self.strategy,
                timeout=self.timeout,
                failover_on=self.failover_on,
                breaker=self.breaker,
                max_wait=self.max_wait,
                clock=self.clock,
                state=self.state,
                chooser=chooser,
                models=tuple(models),
                entries=tuple(entries),
                metadata=metadata,
            )
            successor.state_source = self.state_source
            registry._table.insert(
                self.name, _entry(successor), metadata.capability_mask, True, "route"
            )
            successor.version = registry.version
            self.retire(successor)
            _telemetry.watch(successor)
            return successor

    def route_names(self) -> set[str]:
        """The names of the routes this route reaches, itself included (for cycle checks)."""
        seen = {self.name}
        for d in self.deployments:
            inner = _route_of(self.registry, d.provider)
            if inner is not None and d.provider not in seen:
                seen |= inner.route_names()
        return seen


# -- registration ---------------------------------------------------------------------------


_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _routes_lock(registry: ProviderRegistry) -> threading.Lock:
    """One lock per registry for route writes (register, replace, refresh)."""
    key = id(registry)
    lock = _LOCKS.get(key)
    if lock is None:
        with _LOCKS_GUARD:
            lock = _LOCKS.setdefault(key, threading.Lock())
    return lock


def _route_of(registry: ProviderRegistry, name: str) -> Route | None:
    try:
        entry = registry._table.get(name, "route")
    except ProviderNotFoundError:
        return None
    creator = entry.make
    return creator if isinstance(creator, Route) else None


def _plan(
    strategy: Strategy, deployments: Sequence[Deployment], models: Sequence[ChatModel]
) -> Plan:
    return Plan(
        strategy,
        [float(d.weight) for d in deployments],
        [capability_mask(m.metadata.capabilities) for m in models],
        [d.context_window for d in deployments],
    )


def _chooser(state: RouteState, plan: Plan, *, shared: bool) -> Chooser:
    """The in-process `state` itself, given `plan`; `OrderedChooser` over a shared store's."""
    if shared:
        return OrderedChooser(state, plan)
    state.set_plan(plan.row())  # type: ignore[attr-defined]
    return cast("Chooser", state)


def _entry(route: Route) -> Any:
    from .._registry import _Entry

    return _Entry(route, route.metadata, False)


def _create(registry: ProviderRegistry, name: str, index: int, d: Deployment) -> ChatModel:
    """The deployment's model, created through the registry with its own retries off."""
    options = d.options
    if isinstance(options, ProviderOptions):
        import dataclasses

        opts: Any = dataclasses.replace(options, max_retries=0)
    else:
        opts = dict(options or {})
        opts["max_retries"] = 0
    where = f"route {name!r}: deployments[{index}]"
    try:
        return registry.create(d.provider, opts)
    except ProviderNotFoundError:
        raise _unknown_provider(registry, name, index, d) from None
    except InvalidConfigError as exc:
        raise InvalidConfigError(
            f"{where}.options: {exc.detail}", op="register_route", provider=name
        ) from exc


def _unknown_provider(
    registry: ProviderRegistry, name: str, index: int, d: Deployment
) -> InvalidConfigError:
    hint = suggest(d.provider, registry.names())
    return InvalidConfigError(
        f"route {name!r}: deployments[{index}].provider: no provider named {d.provider!r}"
        + (f"; did you mean {hint!r}?" if hint else ""),
        op="register_route",
        provider=name,
    )


def _entry_of(registry: ProviderRegistry, name: str, index: int, d: Deployment) -> object:
    try:
        return registry._table.get(d.provider, "register_route")
    except ProviderNotFoundError:
        raise _unknown_provider(registry, name, index, d) from None


def _check_strategy(value: object) -> Strategy:
    if value in STRATEGIES:
        return value
    hint = suggest(str(value), STRATEGIES) if isinstance(value, str) else None
    raise InvalidConfigError(
        f"strategy must be one of {', '.join(STRATEGIES)}, got {value!r}"
        + (f"; did you mean {hint!r}?" if hint else ""),
        op="register_route",
    )


def _check_seconds(field: str, value: object, *, allow_zero: bool) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        kind = "a finite number >= 0" if allow_zero else "a positive finite number"
        raise InvalidConfigError(f"{field} must be {kind}, got {value!r}", op="register_route")
    return float(value)


def _check_failover(value: Iterable[object] | None) -> frozenset[ErrorCode]:
    if value is None:
        return DEFAULT_FAILOVER
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidConfigError(
            f"failover_on must be a collection of error codes, got {value!r}",
            op="register_route",
        )
    codes = set()
    known = [c.value for c in ErrorCode]
    for code in value:
        try:
            codes.add(ErrorCode(code))
        except ValueError:
            hint = suggest(str(code), known)
            raise InvalidConfigError(
                f"failover_on: unknown error code {code!r}"
                + (f"; did you mean {hint!r}?" if hint else ""),
                op="register_route",
            ) from None
    return frozenset(codes)


def _route_metadata(name: str, models: Sequence[ChatModel], strategy: str) -> ProviderMetadata:
    """The capabilities every deployment shares (a call needing one only some have goes to
    those); the route's own health probe probes each deployment."""
    shared: set[Capability] | None = None
    for model in models:
        caps = set(model.metadata.capabilities)
        shared = caps if shared is None else shared & caps
    return ProviderMetadata(
        name=name,
        description=f"route over {len(models)} deployments ({strategy})",
        capabilities=frozenset(shared or ()),
        gen_ai_provider_name="chatmodels.route",
        supports_health_check=True,
    )


def build_route(
    registry: ProviderRegistry,
    name: str,
    deployments: Sequence[Deployment],
    *,
    strategy: str = "priority",
    timeout: float | None = None,
    failover_on: Iterable[object] | None = None,
    breaker: Breaker | None = DEFAULT_BREAKER,
    max_wait: float = 0.0,
    clock: Callable[[], float] | None = None,
    replace: bool = False,
    state: RedisState | None = None,
) -> ProviderMetadata:
    """Validate a route, create its models and register it (see `register_route`)."""
    from .._pytable import check_name

    name = check_name(name, "register_route")
    if type(replace) is not bool:
        raise InvalidConfigError("replace must be a bool", op="register_route", provider=name)
    if isinstance(deployments, (str, bytes, Mapping)) or not isinstance(deployments, Sequence):
        raise InvalidConfigError(
            "deployments must be a list of Deployment", op="register_route", provider=name
        )
    if not deployments:
        raise InvalidConfigError(
            f"route {name!r} has no deployments", op="register_route", provider=name
        )
    for i, d in enumerate(deployments):
        if not isinstance(d, Deployment):
            raise InvalidConfigError(
                f"deployments[{i}] must be a Deployment, got {type(d).__name__}",
                op="register_route",
                provider=name,
            )
    chosen = _check_strategy(strategy)
    limit = _check_seconds("timeout", timeout, allow_zero=False)
    wait = _check_seconds("max_wait", max_wait, allow_zero=True) or 0.0
    codes = _check_failover(failover_on)
    if breaker is not None and not isinstance(breaker, Breaker):
        raise InvalidConfigError(
            f"breaker must be a Breaker or None, got {type(breaker).__name__}",
            op="register_route",
            provider=name,
        )
    if clock is None:
        clock = time.monotonic
    elif not callable(clock):
        raise InvalidConfigError(
            f"clock must be a callable returning seconds, got {clock!r}",
            op="register_route",
            provider=name,
        )
    if state is not None:
        from ._redis import RedisState

        if not isinstance(state, RedisState):
            raise InvalidConfigError(
                f"state must be a RedisState or None, got {type(state).__name__}",
                op="register_route",
                provider=name,
            )
    for i, d in enumerate(deployments):
        if d.provider == name:
            raise InvalidConfigError(
                f"route {name!r}: deployments[{i}].provider names the route itself",
                op="register_route",
                provider=name,
            )
        inner = _route_of(registry, d.provider)
        if inner is not None and name in inner.route_names():
            raise InvalidConfigError(
                f"route {name!r}: deployments[{i}].provider {d.provider!r} leads back to"
                f" {name!r} (a cycle of routes)",
                op="register_route",
                provider=name,
            )
    with _routes_lock(registry):
        if not replace and registry.is_registered(name):
            from .._errors import already_registered_error

            raise already_registered_error("register_route", name)
        models: list[ChatModel] = []
        entries: list[object] = []
        try:
            for i, d in enumerate(deployments):
                entries.append(_entry_of(registry, name, i, d))
                models.append(_create(registry, name, i, d))
        except BaseException:
            for model in models:
                model.close()
            raise
        metadata = _route_metadata(name, models, chosen)
        limits = [Limits(d.rpm, d.tpm, d.max_concurrency) for d in deployments]
        plan = _plan(chosen, deployments, models)
        if state is None:
            route_state = new_route_state(limits, breaker, backend=registry.backend, plan=plan)
            chooser = cast("Chooser", route_state)
        else:
            route_state = state.route_state(name, models, limits, breaker, backend=registry.backend)
            chooser = OrderedChooser(route_state, plan)
        route = Route(
            registry,
            name,
            tuple(deployments),
            strategy=chosen,
            timeout=limit,
            failover_on=codes,
            breaker=breaker,
            max_wait=wait,
            clock=clock,
            state=route_state,
            chooser=chooser,
            models=tuple(models),
            entries=tuple(entries),
            metadata=metadata,
        )
        route.state_source = state
        old = _route_of(registry, name)
        try:
            registry._table.insert(
                name, _entry(route), metadata.capability_mask, replace, "register_route"
            )
        except BaseException:
            route.retire()
            raise
        route.version = registry.version
        if old is not None:
            old.retire()
    _telemetry.watch(route)
    return metadata


def retire_entry(entry: object) -> None:
    """Retire the route behind a registry entry that was removed or replaced (if any)."""
    creator = getattr(entry, "make", None)
    if isinstance(creator, Route):
        creator.retire()


def register_route(
    name: str,
    deployments: Sequence[Deployment],
    *,
    strategy: str = "priority",
    timeout: float | None = None,
    failover_on: Iterable[str | ErrorCode] | None = None,
    breaker: Breaker | None = DEFAULT_BREAKER,
    max_wait: float = 0.0,
    clock: Callable[[], float] | None = None,
    replace: bool = False,
    state: RedisState | None = None,
) -> ProviderMetadata:
    """Register a route in the global registry: one name over several deployments.

    `new_registry_provider(name)` then gives a `RoutedModel`. Each call goes to an eligible
    deployment chosen by `strategy` (``priority``: the first in order; ``weighted``: at random
    by weight; ``least_busy``: the fewest calls in flight; ``latency``: the lowest recent
    latency) and fails over on the codes in `failover_on` (default: rate_limited,
    provider_unavailable, timeout, network, invalid_response, internal, and
    context_length_exceeded to a larger declared window). `timeout` bounds every attempt
    together. `breaker` opens a failing deployment's circuit (None: never). A call that finds
    every deployment at a rate limit waits up to `max_wait` seconds for capacity. `clock`
    (monotonic seconds; default `time.monotonic`) drives the breaker and the limits.
    `replace=True` swaps the route atomically: calls in flight finish on the old deployments,
    whose models close once drained. `state` (a `RedisState`; None: in-process) shares the
    limits and circuits with every process registering the route on the same store.

    Raises invalid_config naming the offending field, and registers nothing, for a bad
    route; provider_already_registered when the name is taken and `replace` is false.

    Example:
        >>> register_route("chat", [Deployment("openai", {"model": "gpt-4o-mini"}),
        ...                         Deployment("anthropic", {"model": "claude-haiku-4-5"})])
    """
    from .._global import get_global_registry

    return build_route(
        get_global_registry(),
        name,
        deployments,
        strategy=strategy,
        timeout=timeout,
        failover_on=failover_on,
        breaker=breaker,
        max_wait=max_wait,
        clock=clock,
        replace=replace,
        state=state,
    )
