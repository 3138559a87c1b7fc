"""`RoutedModel`: a `ChatModel` whose calls go to a route's deployments, with failover.

Every call follows the route its name holds (so a model held since startup follows
replacements), counts itself on that route (so a replaced route drains before closing its
models), then loops: one `choose` of the route's chooser picks an eligible deployment and
admits the call (strategy, circuit, limits, capacity), the deployment's model is called with
what is left of the deadline, and one `finish` records the outcome; on a failover code the
call moves to the next deployment not yet tried. Every decision and outcome is a method of
`_Call`, the one call's state; two attempt loops drive it (`_answer`, `_aanswer`: they
differ only in how they wait and call), each given how to send one attempt (invoke, ainvoke,
stream, astream).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

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
from .._types import (
    ChatChunk,
    ChatResponse,
    HealthStatus,
    ImagePart,
    Message,
    MessagesLike,
    to_messages,
)
from . import _telemetry
from ._route import Route
from ._state import Outcome, Reason, Transition
from ._telemetry import NOOP_ROUTE_SCOPE
from ._types import DeploymentStatus

if TYPE_CHECKING:
    from .._registry import ProviderRegistry
    from ._state import Admission
    from ._telemetry import RouteScope

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

_MIN_ATTEMPT = 0.001  # an attempt left less than this of the deadline is not started

_MESSAGE_CHARS = 4 * CHARS_PER_TOKEN  # a message's own overhead, in characters

_SUCCESS = int(Outcome.SUCCESS)
_FAILURE = int(Outcome.FAILURE)
_NOT_COUNTED = int(Outcome.NOT_COUNTED)
_CLOSED = int(Transition.CLOSED)
_OPENED = int(Transition.OPENED)
_RATE = (int(Reason.RPM), int(Reason.TPM))
_TOOLS = Capability.TOOL_CALLING.bit
_JSON = Capability.JSON_MODE.bit
_SCHEMA = Capability.STRUCTURED_OUTPUT.bit
_STREAMING = Capability.STREAMING.bit
_VISION = Capability.VISION.bit
_CONTEXT = ErrorCode.CONTEXT_LENGTH_EXCEEDED
_RETRY_AFTER_CODES = (ErrorCode.RATE_LIMITED, ErrorCode.PROVIDER_UNAVAILABLE)
# The roles of a ``{"role", "content": str}`` dict that `to_messages` always accepts.
_PLAIN_ROLES = frozenset(("system", "developer", "user", "assistant"))


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


def _plain_chars(messages: object) -> int:
    """The characters `_scan` counts in `messages` when they are plain text that every
    deployment's own check accepts as it is (a str; a list of ``{"role", "content"}`` dicts
    with str content, or of `Message` objects with str content); else -1.

    Such messages go to the deployment unconverted: converting them here too cost a routed
    call 12k instructions (callgrind, one dict message, CPython 3.11)."""
    if type(messages) is str:
        return len(messages) + _MESSAGE_CHARS
    if type(messages) is not list or not messages:
        return -1
    chars = _MESSAGE_CHARS * len(messages)
    for msg in messages:
        if type(msg) is dict:
            content = msg.get("content")
            if type(content) is str and len(msg) == 2 and msg.get("role") in _PLAIN_ROLES:
                chars += len(content)
                continue
        elif type(msg) is Message:
            content = msg.content
            if type(content) is str:
                chars += len(content)
                continue
        return -1
    return chars


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


# -- one routed call: its decisions and outcomes, written once for the four drivers ------------


class _Call:
    """One routed call: what it sends and needs, its route, deadline and telemetry scope,
    and its failover state (the deployments tried, each attempt's error, the declared window
    a deployment must exceed, the time waited).

    Every decision is a method here; the drivers (`_answer` and `_aanswer`, and the four
    calls around them) only wait, call the deployment and relay its reply. `pick` chooses
    and admits; after the attempt, `failed` says whether to choose again, or `succeeded`
    (or `abandoned`) records the outcome. A first attempt that succeeds builds no list.
    """

    __slots__ = (
        "admission",
        "attempts",
        "by_deadline",
        "deadline",
        "est",
        "given",
        "kw",
        "latency",
        "min_window",
        "msgs",
        "needs",
        "params",
        "route",
        "scope",
        "tried",
        "wait",
        "waited",
    )

    route: Route
    admission: Admission
    kw: dict[str, Any]
    latency: float

    def __init__(
        self,
        messages: MessagesLike,
        params: dict[str, Any],
        defaults: Mapping[str, Any],
        stream: bool,
        op: str,
    ) -> None:
        """Check the call before anything is sent: the messages to send, the parameters
        (`defaults` under them), the capability bits it needs, its estimated tokens and its
        own ``timeout=``."""
        chars = _plain_chars(messages)
        if chars >= 0:
            tokens_in, needs = -(-chars // CHARS_PER_TOKEN), 0
        else:
            # A list of Message objects: the deployment's own check of it is the cheapest.
            messages = list(to_messages(messages, op))
            tokens_in, needs = _scan(messages)
        if defaults:
            params = {**defaults, **params}
        given = None
        max_tokens = None
        if params:
            needs |= _param_needs(params)
            max_tokens = params.get("max_tokens")
            given = params.pop("timeout", None)
        if stream:
            needs |= _STREAMING
        out = max_tokens if type(max_tokens) is int and max_tokens > 0 else DEFAULT_OUTPUT_TOKENS
        self.msgs: Any = messages
        self.params = params
        self.needs = needs
        self.est = tokens_in + out
        self.given: float | None = given
        self.scope: RouteScope = NOOP_ROUTE_SCOPE
        self.deadline: float | None = None
        self.tried: tuple[int, ...] = ()
        self.attempts: tuple[ChatModelError, ...] = ()
        self.min_window: int | None = None
        self.waited = 0.0
        self.wait = 0.0  # the wait `pick` allowed last
        self.by_deadline = False  # whether the attempt was given all the deadline left

    def begin(self, route: Route, op: str) -> None:
        """Start the call's telemetry on `route` and its deadline (its own ``timeout=``,
        else the route's)."""
        self.route = route
        self.scope = _telemetry.start(route, op)
        limit = self.given
        if limit is None:
            limit = route.timeout
        if limit is not None:
            self.deadline = time.monotonic() + limit

    def pick(self) -> ChatModel | None:
        """One decision: the admitted deployment's model (`kw` the parameters to send it),
        or None when the call is to sleep `wait` seconds and choose again; raises when no
        deployment may take the call and it may not wait."""
        route = self.route
        admission = route.choose(route.clock(), self.est, self.needs, self.tried, self.min_window)
        self.admission = admission
        if admission.reason:
            self._refused(admission)
            return None
        index = admission.index
        deadline = self.deadline
        if deadline is None:
            self.kw = self.params
            return route.models[index]
        left = deadline - time.monotonic()
        if left < _MIN_ATTEMPT:
            raise self._timeout()
        # Each attempt gets what is left of the deadline when that is less than the
        # deployment's own request timeout.
        own = route.attempt_limits[index]
        self.by_deadline = own is None or own > left
        self.kw = {**self.params, "timeout": left} if self.by_deadline else self.params
        return route.models[index]

    def _refused(self, admission: Admission) -> None:
        route = self.route
        wait = admission.wait
        if admission.reason in _RATE and wait is not None:
            deadline = self.deadline
            left = deadline - time.monotonic() if deadline is not None else math.inf
            if self.waited + wait <= route.max_wait and wait < left:
                self.waited += wait
                self.wait = wait
                self.scope.delayed(route.deployments[admission.index], wait)
                return
            self.scope.rejected(route.deployments[admission.index])
            raise self._rate_limited(wait)
        raise self._unavailable()

    @property
    def number(self) -> int:
        """The attempt's number, from 1."""
        return len(self.attempts) + 1

    def failed(self, error: ChatModelError, may_move: bool = True) -> bool:
        """Record the attempt's failure: True to choose again, False when the call fails
        with `error` (`may_move` False: a stream's first chunk reached the caller)."""
        route, admission, scope = self.route, self.admission, self.scope
        index = admission.index
        code = error.code
        moves = code in route.failover_on
        counts = moves and code is not _CONTEXT
        retry_after = None
        if counts and code in _RETRY_AFTER_CODES:
            retry_after = getattr(error, "retry_after", None)
        tokens = 0 if code is ErrorCode.RATE_LIMITED else None
        now = route.clock()
        change = route.finish(
            admission, now, _FAILURE if counts else _NOT_COUNTED, tokens, None, retry_after
        )
        self.tried += (index,)
        self.attempts += (error,)
        scope.attempt_failed(index, len(self.attempts), error)
        if change == _OPENED:
            cooldown = route.state.snapshot(index, now).seconds_until_close
            _telemetry.circuit_opened(route, index, error, cooldown, scope)
        if code is _CONTEXT:
            window = route.windows[index]
            self.min_window = max(window or 0, self.min_window or 0)
        if code is ErrorCode.TIMEOUT and self.by_deadline:
            raise self._timeout()  # the call's own deadline ran out, not the deployment
        if moves and may_move:
            scope.failover(index, error)
            return True
        return False

    def succeeded(self, usage: Any, end: bool = True) -> None:
        """Record the success of the admitted attempt, `latency` seconds to its answer
        (`usage`: the reply's, to correct the token estimate); with `end`, the call's
        telemetry ends well."""
        route = self.route
        tokens = usage.total_tokens or (usage.input_tokens + usage.output_tokens) if usage else None
        if route.finish(self.admission, route.clock(), _SUCCESS, tokens or None, self.latency) == (
            _CLOSED
        ):
            _telemetry.circuit_closed(route, self.admission.index, self.scope)
        if end and self.scope is not NOOP_ROUTE_SCOPE:
            self.scope.end(None)

    def abandoned(self) -> None:
        """Release an attempt that ended neither way (cancelled, closed early)."""
        route = self.route
        route.finish(self.admission, route.clock(), _NOT_COUNTED)

    def _unavailable(self) -> ChatModelError:
        route, attempts = self.route, self.attempts
        if attempts:
            tried = "; ".join(
                f"{route.deployments[i].label}: {e.code.value}"
                for i, e in zip(self.tried, attempts, strict=True)
            )
            detail = f"route {route.name!r}: every eligible deployment failed ({tried})"
        else:
            why = _why(route, self.needs, self.est)
            detail = f"route {route.name!r}: no deployment may take the call ({why})"
        error = ProviderUnavailableError(detail, op="route", provider=route.name)
        error.attempts = attempts
        if attempts:
            error.__cause__ = attempts[-1]
        return error

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
        error.attempts = self.attempts
        return error

    def _timeout(self) -> ChatModelError:
        route = self.route
        error = TimeoutError(
            f"route {route.name!r}: the call's deadline ran out after"
            f" {len(self.attempts)} attempt(s)",
            op="route",
            provider=route.name,
        )
        error.attempts = self.attempts
        if self.attempts:
            error.__cause__ = self.attempts[-1]
        return error


_T = TypeVar("_T")


def _answer(call: _Call, send: Callable[[_Call, ChatModel], _T]) -> _T:
    """Attempts until a deployment answers: what `send` returned (`call.latency` the
    seconds it took); raises the error the call fails with."""
    while True:
        model = call.pick()
        if model is None:
            time.sleep(call.wait)
            continue
        start = time.perf_counter()
        try:
            answer = send(call, model)
        except ChatModelError as error:
            if call.failed(error):
                continue
            raise
        except BaseException:
            call.abandoned()
            raise
        call.latency = time.perf_counter() - start
        return answer


async def _aanswer(call: _Call, send: Callable[[_Call, ChatModel], Awaitable[_T]]) -> _T:
    """Async `_answer`."""
    import asyncio

    while True:
        model = call.pick()
        if model is None:
            await asyncio.sleep(call.wait)
            continue
        start = time.perf_counter()
        try:
            answer = await send(call, model)
        except ChatModelError as error:
            if call.failed(error):
                continue
            raise
        except BaseException:
            call.abandoned()
            raise
        call.latency = time.perf_counter() - start
        return answer


def _send_invoke(call: _Call, model: ChatModel) -> ChatResponse:
    scope, kw = call.scope, call.kw
    if scope is NOOP_ROUTE_SCOPE:  # no telemetry: no context to enter
        # No parameters: a plain call (`**{}` cost 0.95k instructions).
        return model.invoke(call.msgs, **kw) if kw else model.invoke(call.msgs)
    with scope.attempt(call.admission.index, call.number):
        return model.invoke(call.msgs, **kw)


async def _send_ainvoke(call: _Call, model: ChatModel) -> ChatResponse:
    with call.scope.attempt(call.admission.index, call.number):
        return await model.ainvoke(call.msgs, **call.kw)


def _send_stream(call: _Call, model: ChatModel) -> tuple[ChatStream, ChatChunk | None]:
    """The deployment's stream and its first chunk (None: it ended without one)."""
    with call.scope.attempt(call.admission.index, call.number):
        stream = model.stream(call.msgs, **call.kw)
        return stream, next(stream, None)


async def _send_astream(call: _Call, model: ChatModel) -> tuple[AsyncChatStream, ChatChunk | None]:
    with call.scope.attempt(call.admission.index, call.number):
        stream = model.astream(call.msgs, **call.kw)
        return stream, await anext(stream, None)


def _why(route: Route, needs: int, est: int) -> str:
    """Why each deployment may not take a call needing `needs` and `est` tokens."""
    now = route.clock()
    parts = []
    for i, d in enumerate(route.deployments):
        if route.masks[i] & needs != needs:
            parts.append(f"{d.label}: lacks a capability the call needs")
            continue
        window = route.windows[i]
        if window is not None and window < est:
            parts.append(f"{d.label}: context window {window} < {est} tokens")
            continue
        snap = route.state.snapshot(i, now)
        parts.append(f"{d.label}: circuit {snap.circuit}")
    return "; ".join(parts)


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
        self._table = registry._table
        self._route: Route | None = None  # the route the name held at the last call

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
        """The current route, with this call counted on it.

        The route of the last call is kept while the registry's version is the one its
        models were checked at: no write since, so the name still holds it (a lookup cost a
        routed call 1.9k instructions, the version check 0.4k: callgrind, CPython 3.11)."""
        if self._closed:
            raise InvalidConfigError("the model is closed", op=op, provider=self._name)
        route = self._route
        while True:
            if route is None or route.version != self._table.version:
                route = self._route = self._current(op)
            if route.enter():
                return route
            route = self._route = None  # retired since: look the name up again

    # -- invoke -----------------------------------------------------------------------------

    def invoke(self, messages: MessagesLike, **params: Any) -> ChatResponse:
        """Send `messages` to the route's chosen deployment, failing over on failure codes."""
        call = _Call(messages, params, self._defaults, False, "invoke")
        route = self._enter("invoke")
        try:
            call.begin(route, "invoke")
            response = _answer(call, _send_invoke)
            call.succeeded(response.usage)
            return response
        except BaseException as exc:
            call.scope.end(exc)
            raise
        finally:
            if route.leave():
                route.drained()

    async def ainvoke(self, messages: MessagesLike, **params: Any) -> ChatResponse:
        """Async `invoke`."""
        call = _Call(messages, params, self._defaults, False, "ainvoke")
        route = self._enter("ainvoke")
        try:
            call.begin(route, "invoke")
            response = await _aanswer(call, _send_ainvoke)
            call.succeeded(response.usage)
            return response
        except BaseException as exc:
            call.scope.end(exc)
            raise
        finally:
            if route.leave():
                route.drained()

    # -- streams ----------------------------------------------------------------------------

    def stream(self, messages: MessagesLike, **params: Any) -> ChatStream:
        """Stream from the chosen deployment; failover happens only before the first chunk
        reaches the caller (text shown cannot be taken back)."""
        call = _Call(messages, params, self._defaults, True, "stream")
        return ChatStream(self._stream_batches_of(call), NOOP_SCOPE, self, "stream")

    def astream(self, messages: MessagesLike, **params: Any) -> AsyncChatStream:
        """Async `stream`."""
        call = _Call(messages, params, self._defaults, True, "astream")
        return AsyncChatStream(self._astream_batches_of(call), NOOP_SCOPE, self, "astream")

    def _stream_batches_of(self, call: _Call) -> Iterator[Sequence[ChatChunk]]:
        route = self._enter("stream")
        try:
            call.begin(route, "stream")
            stream, first = _answer(call, _send_stream)
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
                call.failed(error, False)
                raise
            except BaseException:  # closed early or cancelled: the deployment is fine
                call.succeeded(usage, False)
                stream.close()
                raise
            call.succeeded(usage)
        except BaseException as exc:
            call.scope.end(exc)
            raise
        finally:
            if route.leave():
                route.drained()

    async def _astream_batches_of(self, call: _Call) -> AsyncIterator[Sequence[ChatChunk]]:
        route = self._enter("astream")
        try:
            call.begin(route, "stream")
            stream, first = await _aanswer(call, _send_astream)
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
                call.failed(error, False)
                raise
            except BaseException:
                call.succeeded(usage, False)
                await stream.aclose()
                raise
            call.succeeded(usage)
        except BaseException as exc:
            call.scope.end(exc)
            raise
        finally:
            if route.leave():
                route.drained()

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
