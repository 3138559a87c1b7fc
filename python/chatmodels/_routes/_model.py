"""`RoutedModel`: a `ChatModel` whose calls go to a route's deployments, with failover.

Every call resolves the route's name (so a model held since startup follows replacements),
counts itself on that route (so a replaced route drains before closing its models), then
loops: choose an eligible deployment through the route state (circuit, limits, capacity),
call its model with what is left of the deadline, record the outcome, and on a failover
code move to the next deployment not yet tried. Sync, async and the two streams share the
choosing (`_Call`); they differ only in how they wait and call.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import (
    ChatModelError,
    ErrorCode,
    InvalidConfigError,
    ProviderNotFoundError,
    ProviderUnavailableError,
    RateLimitError,
    TimeoutError,
)
from .._metadata import Capability, ProviderMetadata, ProviderOptions
from .._model import ChatModel
from .._observe import NOOP_SCOPE
from .._request import ChatRequest
from .._stream import AsyncChatStream, ChatStream
from .._types import ChatChunk, ChatResponse, HealthStatus, ImagePart, MessagesLike, to_messages
from . import _telemetry
from ._route import Route
from ._state import Outcome, Reason
from ._telemetry import NOOP_ROUTE_SCOPE
from ._types import DeploymentStatus

if TYPE_CHECKING:
    from .._registry import ProviderRegistry
    from ._state import Admission

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_OUTPUT_TOKENS",
    "RouteHealth",
    "RoutedModel",
    "estimate_tokens",
]

CHARS_PER_TOKEN = 4
"""The input-token estimate's rate: one token per four characters of message text."""

DEFAULT_OUTPUT_TOKENS = 256
"""The output tokens a call is assumed to take when it gives no ``max_tokens``."""

LATENCY_EXPLORE = 0.05
"""The share of ``latency``-strategy calls sent to a random deployment first, so that every
deployment's estimate stays fresh."""

_MIN_ATTEMPT = 0.001  # an attempt left less than this of the deadline is not started

_MESSAGE_CHARS = 4 * CHARS_PER_TOKEN  # a message's own overhead, in characters

_SUCCESS = int(Outcome.SUCCESS)
_FAILURE = int(Outcome.FAILURE)
_NOT_COUNTED = int(Outcome.NOT_COUNTED)
_RATE = (int(Reason.RPM), int(Reason.TPM))
_TOOLS = Capability.TOOL_CALLING.bit
_JSON = Capability.JSON_MODE.bit
_SCHEMA = Capability.STRUCTURED_OUTPUT.bit
_STREAMING = Capability.STREAMING.bit
_VISION = Capability.VISION.bit
_CONTEXT = ErrorCode.CONTEXT_LENGTH_EXCEEDED
_RETRY_AFTER_CODES = (ErrorCode.RATE_LIMITED, ErrorCode.PROVIDER_UNAVAILABLE)


def estimate_tokens(messages: Sequence[Any], max_tokens: object) -> tuple[int, int]:
    """(input tokens, input plus output tokens) a call is estimated to take.

    Input: the messages' text at `CHARS_PER_TOKEN` characters a token (4 tokens of overhead
    a message); output: ``max_tokens``, else `DEFAULT_OUTPUT_TOKENS`.
    """
    tokens_in, _ = _scan(messages)
    out = max_tokens if type(max_tokens) is int and max_tokens > 0 else DEFAULT_OUTPUT_TOKENS
    return tokens_in, tokens_in + out


def _scan(messages: Sequence[Any]) -> tuple[int, int]:
    """The estimated input tokens of `messages`, and the capability bits their content needs
    (images: vision), in one pass."""
    chars = 0
    needs = 0
    for msg in messages:
        content = msg.content
        if type(content) is str:
            chars += len(content) + _MESSAGE_CHARS
        else:
            chars += len(msg.text) + _MESSAGE_CHARS
            if any(isinstance(p, ImagePart) for p in content):
                needs |= _VISION
    return -(-chars // CHARS_PER_TOKEN), needs


def _param_needs(params: Mapping[str, Any]) -> int:
    """The capability bits a call's parameters need of a deployment."""
    needs = 0
    if params.get("tools"):
        needs |= _TOOLS
    fmt = params.get("response_format")
    if fmt is not None:
        kind = fmt if isinstance(fmt, str) else getattr(fmt, "get", lambda _k: None)("type")
        if kind == "json_object":
            needs |= _JSON
        elif (kind is not None and kind != "text") or isinstance(fmt, type):
            needs |= _SCHEMA
    return needs


@dataclasses.dataclass(frozen=True)
class RouteHealth(HealthStatus):
    """A route's health: the overall status (healthy when every probed deployment answered,
    degraded when some did, unhealthy when none did) and each deployment's own status, keyed
    ``"index:provider/model"`` in declaration order."""

    deployments: tuple[tuple[str, HealthStatus], ...] = ()


class _Call:
    """One routed call's choosing: what it needs, what it tried, what it has left."""

    __slots__ = (
        "attempts",
        "by_deadline",
        "deadline",
        "est",
        "min_window",
        "needs",
        "route",
        "scope",
        "tokens_in",
        "tried",
        "waited",
    )

    def __init__(
        self, route: Route, messages: Sequence[Any], params: dict[str, Any], stream: bool
    ) -> None:
        self.route = route
        tokens_in, needs = _scan(messages)
        max_tokens = None
        limit = route.timeout
        if params:
            needs |= _param_needs(params)
            max_tokens = params.get("max_tokens")
            given = params.pop("timeout", None)
            if given is not None:
                limit = given
        self.needs = needs | _STREAMING if stream else needs
        self.tokens_in = tokens_in
        out = max_tokens if type(max_tokens) is int and max_tokens > 0 else DEFAULT_OUTPUT_TOKENS
        self.est = tokens_in + out
        self.deadline = None if limit is None else time.monotonic() + limit
        self.by_deadline = False  # whether the last attempt was given all the deadline left
        self.tried: list[int] = []
        self.attempts: list[ChatModelError] = []
        self.min_window: int | None = None
        self.waited = 0.0
        self.scope = _telemetry.start(route, "stream" if stream else "invoke")

    def remaining(self, index: int) -> float | None:
        """The timeout of an attempt on deployment `index`: what is left of the call's
        deadline, at most the deployment's own; raises once the deadline ran out."""
        own = self.route.attempt_limits[index]
        deadline = self.deadline
        if deadline is None:
            return own
        left: float = deadline - time.monotonic()
        if left < _MIN_ATTEMPT:
            raise self._timeout()
        self.by_deadline = own is None or own > left
        return left if self.by_deadline else own

    def order(self) -> list[int]:
        """The eligible deployments not yet tried, in the strategy's order."""
        route = self.route
        tried, needs = self.tried, self.needs
        if not tried and route.plain and needs & route.common_mask == needs:
            # Nothing tried, no windows declared, every deployment has what the call needs.
            if route.strategy == "priority":
                return route.indices  # type: ignore[return-value]
            out = list(route.indices)
        else:
            out = self._eligible()
        return self._sorted(out)

    def _eligible(self) -> list[int]:
        route = self.route
        tried, needs, masks, windows = self.tried, self.needs, route.masks, route.windows
        want = self.est
        floor = self.min_window
        out = []
        for i in route.indices:
            if i in tried or masks[i] & needs != needs:
                continue
            window = windows[i]
            if window is not None and window < want:
                continue
            if floor is not None and (window is None or window <= floor):
                continue
            out.append(i)
        return out

    def _sorted(self, out: list[int]) -> list[int]:
        route = self.route
        strategy = route.strategy
        if strategy == "priority" or len(out) < 2:
            return out
        state = route.state
        if strategy == "least_busy":
            out.sort(key=state.in_flight)
        elif strategy == "weighted":
            weights = route.weights
            rand = random.random
            # Weighted sampling without replacement (Efraimidis-Spirakis keys).
            out.sort(key=lambda i: rand() ** (1.0 / weights[i]), reverse=True)
        else:  # latency: no sample yet first, then the lowest average
            out.sort(key=lambda i: (lat := state.latency(i)) is not None and lat)
            if random.random() < LATENCY_EXPLORE:
                out.insert(0, out.pop(random.randrange(len(out))))
        return out

    def choose(self) -> Admission | float:
        """An admission, or the seconds to wait for rate-limit capacity; raises when no
        deployment may take the call."""
        order = self.order()
        if not order:
            raise self._unavailable()
        route = self.route
        admission = route.state.acquire_first(order, route.clock(), self.est)
        if admission.admitted:
            return admission
        wait = admission.wait
        if admission.reason in _RATE and wait is not None:
            left = self.deadline - time.monotonic() if self.deadline is not None else math.inf
            if self.waited + wait <= route.max_wait and wait < left:
                self.waited += wait
                self.scope.delayed(route.deployments[admission.index], wait)
                return wait
            self.scope.rejected(route.deployments[admission.index])
            raise self._rate_limited(wait)
        raise self._unavailable()

    def succeeded(self, admission: Admission, latency: float, usage: Any) -> None:
        """Record a success (`usage`: the reply's, to correct the token estimate)."""
        route = self.route
        tokens = usage.total_tokens or (usage.input_tokens + usage.output_tokens) if usage else None
        route.state.release(
            admission.index, admission.ticket, route.clock(), _SUCCESS, tokens or None, latency
        )
        if admission.trial:
            _telemetry.circuit_closed(route, admission.index, self.scope)

    def failed(self, admission: Admission, error: ChatModelError, *, may_move: bool = True) -> bool:
        """Record a failed attempt; whether the call moves on to another deployment."""
        route = self.route
        index = admission.index
        code = error.code
        moves = code in route.failover_on
        counts = moves and code is not _CONTEXT
        retry_after = getattr(error, "retry_after", None) if code in _RETRY_AFTER_CODES else None
        tokens = 0 if code is ErrorCode.RATE_LIMITED else None
        state = route.state
        now = route.clock()
        was_open = counts and state.snapshot(index, now).circuit == "open"
        state.release(
            index,
            admission.ticket,
            now,
            _FAILURE if counts else _NOT_COUNTED,
            tokens,
            None,
            retry_after if counts else None,
        )
        self.tried.append(index)
        self.attempts.append(error)
        self.scope.attempt_failed(index, len(self.attempts), error)
        if counts and not was_open:
            snap = state.snapshot(index, now)
            if snap.circuit == "open":
                _telemetry.circuit_opened(route, index, error, snap.seconds_until_close, self.scope)
        if code is _CONTEXT:
            window = route.windows[index]
            self.min_window = max(window or 0, self.min_window or 0)
        if code is ErrorCode.TIMEOUT and self.by_deadline:
            raise self._timeout()  # the call's own deadline ran out, not the deployment
        moves = moves and may_move
        if moves:
            self.scope.failover(index, error)
        return moves

    def abandoned(self, admission: Admission) -> None:
        """Release an attempt that ended neither way (cancelled, closed early)."""
        route = self.route
        route.state.release(admission.index, admission.ticket, route.clock(), _NOT_COUNTED)

    def _unavailable(self) -> ChatModelError:
        route = self.route
        attempts = self.attempts
        if attempts:
            tried = "; ".join(
                f"{route.deployments[i].label}: {e.code.value}"
                for i, e in zip(self.tried, attempts, strict=True)
            )
            detail = f"route {route.name!r}: every eligible deployment failed ({tried})"
        else:
            detail = f"route {route.name!r}: no deployment may take the call ({self._why()})"
        error = ProviderUnavailableError(detail, op="route", provider=route.name)
        error.attempts = tuple(attempts)
        if attempts:
            error.__cause__ = attempts[-1]
        return error

    def _why(self) -> str:
        route = self.route
        now = route.clock()
        parts = []
        for i, d in enumerate(route.deployments):
            if route.masks[i] & self.needs != self.needs:
                parts.append(f"{d.label}: lacks a capability the call needs")
                continue
            window = route.windows[i]
            if window is not None and window < self.est:
                parts.append(f"{d.label}: context window {window} < {self.est} tokens")
                continue
            snap = route.state.snapshot(i, now)
            parts.append(f"{d.label}: circuit {snap.circuit}")
        return "; ".join(parts)

    def _rate_limited(self, wait: float) -> ChatModelError:
        route = self.route
        when = "unknown" if not math.isfinite(wait) else f"{wait:.3g} s"
        error = RateLimitError(
            f"route {route.name!r}: every eligible deployment is at its rate limit"
            f" (capacity returns in {when}); nothing was sent",
            op="route",
            provider=route.name,
        )
        error.retry_after = wait if math.isfinite(wait) else None
        error.attempts = tuple(self.attempts)
        return error

    def _timeout(self) -> ChatModelError:
        route = self.route
        error = TimeoutError(
            f"route {route.name!r}: the call's deadline ran out after"
            f" {len(self.attempts)} attempt(s)",
            op="route",
            provider=route.name,
        )
        error.attempts = tuple(self.attempts)
        if self.attempts:
            error.__cause__ = self.attempts[-1]
        return error


class RoutedModel(ChatModel):
    """What `new_registry_provider(route_name)` returns: a `ChatModel` over a route.

    Each call goes to the route the name holds at that moment (replacements are picked up),
    fails over between its deployments, and is bounded as a whole by the route's `timeout`
    (or a call's own ``timeout=``). Closing a `RoutedModel` releases nothing shared: the
    route owns its deployments' models.
    """

    def __init__(
        self,
        registry: ProviderRegistry,
        name: str,
        metadata: ProviderMetadata,
        options: ProviderOptions | None = None,
    ) -> None:
        super().__init__(metadata, options)
        self._registry = registry
        self._name = name

    @property
    def name(self) -> str:
        """The route's registered name."""
        return self._name

    @property
    def route(self) -> Route:
        """The route the name holds now."""
        return self._current("route")

    def _current(self, op: str) -> Route:
        registry = self._registry
        try:
            entry = registry._table.get(self._name, op)
        except ProviderNotFoundError:
            raise ProviderNotFoundError(
                f"route {self._name!r} is no longer registered", op=op, provider=self._name
            ) from None
        route = entry.make
        if type(route) is not Route:
            raise ProviderNotFoundError(
                f"{self._name!r} is no longer a route", op=op, provider=self._name
            )
        if registry.version != route.version:
            route = route.refreshed()
        return route

    def _enter(self, op: str) -> Route:
        """The current route, with this call counted on it (`Route.enter`, inlined: a routed
        call's resolution and count cost 9.6k instructions as two calls, 6.4k inlined)."""
        if self._closed:
            raise InvalidConfigError("the model is closed", op=op, provider=self._name)
        while True:
            route = self._current(op)
            lock = route._lock
            lock.acquire()
            if not route._retired:
                route._active += 1
                lock.release()
                return route
            lock.release()

    def _start(
        self, messages: MessagesLike, params: dict[str, Any], stream: bool, op: str
    ) -> tuple[list[Any], dict[str, Any]]:
        # A list of Message objects: the deployment's own check of it is the cheapest.
        msgs = list(to_messages(messages, op))
        if self._defaults:
            params = {**self._defaults, **params}
        return msgs, params

    # -- invoke -----------------------------------------------------------------------------

    def invoke(self, messages: MessagesLike, **params: Any) -> ChatResponse:
        """Send `messages` to the route's chosen deployment, failing over on failure codes."""
        msgs, params = self._start(messages, params, False, "invoke")
        route = self._enter("invoke")
        call = None
        try:
            call = _Call(route, msgs, params, False)
            while True:
                admission = call.choose()
                if isinstance(admission, float):
                    time.sleep(admission)
                    continue
                model = route.models[admission.index]
                try:
                    left = call.remaining(admission.index)
                    start = time.perf_counter()
                    if call.scope is NOOP_ROUTE_SCOPE:  # no telemetry: no context to enter
                        response = model.invoke(msgs, timeout=left, **params)
                    else:
                        with call.scope.attempt(admission.index, len(call.attempts) + 1):
                            response = model.invoke(msgs, timeout=left, **params)
                except ChatModelError as error:
                    if not call.failed(admission, error):
                        raise
                    continue
                except BaseException:
                    call.abandoned(admission)
                    raise
                call.succeeded(admission, time.perf_counter() - start, response.usage)
                call.scope.end(None)
                return response
        except BaseException as exc:
            if call is not None:
                call.scope.end(exc)
            raise
        finally:
            route.exit()

    async def ainvoke(self, messages: MessagesLike, **params: Any) -> ChatResponse:
        """Async `invoke`."""
        import asyncio

        msgs, params = self._start(messages, params, False, "ainvoke")
        route = self._enter("ainvoke")
        call = None
        try:
            call = _Call(route, msgs, params, False)
            while True:
                admission = call.choose()
                if isinstance(admission, float):
                    await asyncio.sleep(admission)
                    continue
                model = route.models[admission.index]
                try:
                    left = call.remaining(admission.index)
                    start = time.perf_counter()
                    if call.scope is NOOP_ROUTE_SCOPE:  # no telemetry: no context to enter
                        response = await model.ainvoke(msgs, timeout=left, **params)
                    else:
                        with call.scope.attempt(admission.index, len(call.attempts) + 1):
                            response = await model.ainvoke(msgs, timeout=left, **params)
                except ChatModelError as error:
                    if not call.failed(admission, error):
                        raise
                    continue
                except BaseException:
                    call.abandoned(admission)
                    raise
                call.succeeded(admission, time.perf_counter() - start, response.usage)
                call.scope.end(None)
                return response
        except BaseException as exc:
            if call is not None:
                call.scope.end(exc)
            raise
        finally:
            route.exit()

    # -- streams ----------------------------------------------------------------------------

    def stream(self, messages: MessagesLike, **params: Any) -> ChatStream:
        """Stream from the chosen deployment; failover happens only before the first chunk
        reaches the caller (text shown cannot be taken back)."""
        msgs, params = self._start(messages, params, True, "stream")
        return ChatStream(self._stream_batches_of(msgs, params), NOOP_SCOPE, self, "stream")

    def astream(self, messages: MessagesLike, **params: Any) -> AsyncChatStream:
        """Async `stream`."""
        msgs, params = self._start(messages, params, True, "astream")
        return AsyncChatStream(self._astream_batches_of(msgs, params), NOOP_SCOPE, self, "astream")

    def _stream_batches_of(
        self, msgs: list[Any], params: dict[str, Any]
    ) -> Iterator[Sequence[ChatChunk]]:
        route = self._enter("stream")
        call = None
        try:
            call = _Call(route, msgs, params, True)
            while True:
                admission = call.choose()
                if isinstance(admission, float):
                    time.sleep(admission)
                    continue
                model = route.models[admission.index]
                number = len(call.attempts) + 1
                try:
                    left = call.remaining(admission.index)
                    start = time.perf_counter()
                    with call.scope.attempt(admission.index, number):
                        stream = model.stream(msgs, timeout=left, **params)
                        first = next(stream, None)
                except ChatModelError as error:
                    if not call.failed(admission, error):
                        raise
                    continue
                except BaseException:
                    call.abandoned(admission)
                    raise
                latency = time.perf_counter() - start
                usage = None
                try:
                    if first is not None:
                        usage = first.usage
                        yield (first,)
                        for chunk in stream:
                            if chunk.usage is not None:
                                usage = chunk.usage
                            yield (chunk,)
                except ChatModelError as error:
                    # After the first chunk: the error reaches the caller as it is.
                    call.failed(admission, error, may_move=False)
                    raise
                except BaseException:  # closed early or cancelled: the deployment is fine
                    call.succeeded(admission, latency, usage)
                    stream.close()
                    raise
                call.succeeded(admission, latency, usage)
                call.scope.end(None)
                return
        except BaseException as exc:
            if call is not None:
                call.scope.end(exc)
            raise
        finally:
            route.exit()

    async def _astream_batches_of(
        self, msgs: list[Any], params: dict[str, Any]
    ) -> AsyncIterator[Sequence[ChatChunk]]:
        import asyncio

        route = self._enter("astream")
        call = None
        try:
            call = _Call(route, msgs, params, True)
            while True:
                admission = call.choose()
                if isinstance(admission, float):
                    await asyncio.sleep(admission)
                    continue
                model = route.models[admission.index]
                number = len(call.attempts) + 1
                try:
                    left = call.remaining(admission.index)
                    start = time.perf_counter()
                    with call.scope.attempt(admission.index, number):
                        stream = model.astream(msgs, timeout=left, **params)
                        first = await anext(stream, None)
                except ChatModelError as error:
                    if not call.failed(admission, error):
                        raise
                    continue
                except BaseException:
                    call.abandoned(admission)
                    raise
                latency = time.perf_counter() - start
                usage = None
                try:
                    if first is not None:
                        usage = first.usage
                        yield (first,)
                        async for chunk in stream:
                            if chunk.usage is not None:
                                usage = chunk.usage
                            yield (chunk,)
                except ChatModelError as error:
                    call.failed(admission, error, may_move=False)
                    raise
                except BaseException:
                    call.succeeded(admission, latency, usage)
                    await stream.aclose()
                    raise
                call.succeeded(admission, latency, usage)
                call.scope.end(None)
                return
        except BaseException as exc:
            if call is not None:
                call.scope.end(exc)
            raise
        finally:
            route.exit()

    # -- validation for batch ---------------------------------------------------------------

    def _prepare(
        self, messages: MessagesLike, params: Mapping[str, Any], stream: bool, op: str
    ) -> ChatRequest:
        # `batch` refuses bad input before any call; the deployments check the rest.
        msgs = to_messages(messages, op)
        return ChatRequest(msgs, self._name, {}, stream=stream)

    # -- status and health ------------------------------------------------------------------

    def status(self) -> list[DeploymentStatus]:
        """One `DeploymentStatus` per deployment, in declaration order."""
        route = self._current("status")
        now = route.clock()
        out = []
        for i, d in enumerate(route.deployments):
            snap = route.state.snapshot(i, now)
            out.append(
                DeploymentStatus(
                    provider=d.provider,
                    model=route.models[i].model,
                    circuit=snap.circuit,
                    seconds_until_close=snap.seconds_until_close,
                    in_flight=snap.in_flight,
                    rpm_left=snap.rpm_left,
                    tpm_left=snap.tpm_left,
                    latency=snap.latency,
                )
            )
        return out

    def health_check(self, *, timeout: float = 5.0) -> HealthStatus:
        """Probe every deployment that has a probe; a successful probe of a half-open
        deployment closes its circuit. Never raises."""
        start = time.perf_counter()
        try:
            route = self._current("health_check")
        except ChatModelError as exc:
            return HealthStatus("unhealthy", 0.0, exc.detail, exc.code.value)
        results = []
        for i, model in enumerate(route.models):
            trial = self._trial(route, i)
            status = model.health_check(timeout=timeout)
            self._probed(route, i, trial, status)
            results.append(status)
        return self._report(route, results, start)

    async def ahealth_check(self, *, timeout: float = 5.0) -> HealthStatus:
        """Async `health_check`: the deployments are probed concurrently."""
        import asyncio

        start = time.perf_counter()
        try:
            route = self._current("ahealth_check")
        except ChatModelError as exc:
            return HealthStatus("unhealthy", 0.0, exc.detail, exc.code.value)

        async def probe(i: int, model: ChatModel) -> HealthStatus:
            trial = self._trial(route, i)
            status = await model.ahealth_check(timeout=timeout)
            self._probed(route, i, trial, status)
            return status

        results = await asyncio.gather(*(probe(i, m) for i, m in enumerate(route.models)))
        return self._report(route, list(results), start)

    @staticmethod
    def _trial(route: Route, index: int) -> Admission | None:
        """The half-open circuit's trial, taken by the probe (None when not half open)."""
        if route.state.snapshot(index, route.clock()).circuit != "half_open":
            return None
        admission = route.state.try_acquire(index, route.clock(), 0)
        return admission if admission.admitted and admission.trial else None

    @staticmethod
    def _probed(route: Route, index: int, trial: Admission | None, status: HealthStatus) -> None:
        if trial is None:
            return
        outcome = _SUCCESS if status.status == "healthy" else _NOT_COUNTED
        if status.status == "unhealthy":
            outcome = _FAILURE
        route.state.release(index, trial.ticket, route.clock(), outcome, 0)
        if outcome == _SUCCESS:
            _telemetry.circuit_closed(route, index, None)

    @staticmethod
    def _report(route: Route, results: list[HealthStatus], start: float) -> HealthStatus:
        labels = [f"{i}:{d.label}" for i, d in enumerate(route.deployments)]
        ok = [s for s in results if s.ok]
        known = [s for s in results if s.status != "unknown"]
        if not known:
            overall = "unknown"
        elif len(ok) == len(known):
            overall = "healthy"
        elif ok:
            overall = "degraded"
        else:
            overall = "unhealthy"
        detail = "; ".join(f"{label}: {s.status}" for label, s in zip(labels, results, strict=True))
        return RouteHealth(
            overall,  # type: ignore[arg-type]
            time.perf_counter() - start,
            detail,
            None if ok or not known else ErrorCode.PROVIDER_UNAVAILABLE.value,
            deployments=tuple(zip(labels, results, strict=True)),
        )
