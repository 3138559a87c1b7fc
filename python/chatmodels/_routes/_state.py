"""The per-deployment route state behind one small interface.

A route's state holds, for each of its N deployments, the circuit (closed, open, half open,
its timers and the failure window), the 60-second sliding logs of requests and tokens, the
calls in flight and the latency average. The choosing and failover code sees only
`RouteState`; the in-process implementations are the Rust core's `chatmodels._core.RouteState`
and its pure-Python twin `chatmodels._routes._pystate.RouteState` (same API, same results,
chosen by `CHATMODELS_BACKEND`), and a shared store (Redis, one script per decision) can slot
in behind the same protocol.

One decision is one call: `try_acquire` (or `acquire_first` over candidates in order) reads
the circuit and takes a request, the estimated tokens and a concurrency slot at once, or
nothing. After the call, one `release` with the admission's ticket writes the outcome, the
actual tokens and the latency, and gives the slot back. Every admitted ticket must be
released exactly once.

A routed call asks through a `Chooser`: `choose` orders the eligible deployments by the
route's `Plan` (its strategy, weights, capability masks and context windows) and admits the
first that may take the call; `finish` releases an admission and says whether the circuit
opened or closed. The in-process states built with the plan (`new_route_state(...,
plan=...)`) are choosers themselves, one call into the Rust core each; `OrderedChooser` is
one over any other state (a shared store's), built from `acquire_first` and `release`.

Times are monotonic seconds passed in by the caller (the route's injected clock). A time
earlier than one already seen by a deployment counts as that later time, so callers on
several threads reading the clock just before a call cannot make a window run backwards.

Rules (exact, so that a plain model predicts them):
- rpm/tpm: an admission at time t counts in the window while `now < t + 60`. A request is
  admitted when fewer than rpm requests and at most `tpm - est_tokens` tokens are counted.
  `release` replaces the estimate by the actual tokens in place (the request keeps its time).
  An estimate larger than tpm never fits: refused with wait `inf`.
- Breaker: see `chatmodels._routes._types.Breaker`. Only outcomes of calls admitted in the
  current closed period (or the half-open trial) count; the failure window holds counted
  outcomes at time t while `now < t + window`; the rate rule is checked at each failure.
  Re-openings after a failed trial last `d * (1 - jitter * u)` with
  `d = min(cooldown * 2**n, max_cooldown)`, n the failed trials in a row and u uniform in
  [0, 1) from a splitmix64 generator seeded by `seed`, the same in both implementations.
- Latency: on a success with a latency, `avg += LATENCY_ALPHA * (latency - avg)` (the first
  sample sets it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, cast

from .._errors import InvalidConfigError

if TYPE_CHECKING:
    from .._backend import BackendName
    from ._types import Breaker, CircuitState

__all__ = [
    "LATENCY_ALPHA",
    "LATENCY_EXPLORE",
    "PICK_SALT",
    "SEEDS",
    "STRATEGIES",
    "WINDOW",
    "Admission",
    "CallGate",
    "Chooser",
    "Limits",
    "OrderedChooser",
    "Outcome",
    "Plan",
    "Reason",
    "RouteState",
    "StateSnapshot",
    "Strategy",
    "Transition",
    "breaker_tuple",
    "new_call_gate",
    "new_route_state",
    "pick_generator",
    "route_seed",
]

WINDOW = 60.0
"""The rate limits' sliding window, in seconds."""

LATENCY_ALPHA = 0.25
"""The weight of a new sample in the latency moving average."""

DEFAULT_JITTER = 0.1
"""The largest fraction by which jitter shortens a doubled cooldown."""

LATENCY_EXPLORE = 0.05
"""The share of ``latency``-strategy choices that put a random eligible deployment first, so
that every deployment's estimate stays fresh."""

PICK_SALT = 0x6A09_E667_F3BC_C909
"""XORed into a state's seed to seed its choosing draws apart from its jitter's (both
implementations)."""

SEEDS = random.Random()
"""Where a route state built without a `seed` draws one (`route_seed`). Tests replace it
(monkeypatch) with a seeded generator, so that the routes they register repeat their random
choices and jitter exactly, on either backend."""


def route_seed() -> int:
    """A new route state's seed in [0, 2**64), from `SEEDS`."""
    return SEEDS.getrandbits(64)


def pick_generator(seed: int) -> random.Random:
    """The generator of the choosing draws (weighted keys, latency exploration) of a state
    seeded by `seed`, in Python (the twin's and `OrderedChooser`'s)."""
    return random.Random(seed ^ PICK_SALT)


Strategy = Literal["priority", "weighted", "least_busy", "latency"]
STRATEGIES: tuple[Strategy, ...] = ("priority", "weighted", "least_busy", "latency")


class Reason(IntEnum):
    """Why `try_acquire` refused (`ADMITTED` when it did not)."""

    ADMITTED = 0
    CIRCUIT_OPEN = 1
    """The circuit is open; `wait` is the time until it turns half open."""
    TRIAL_TAKEN = 2
    """The circuit is half open and its one trial call is in flight; `wait` is None."""
    CONCURRENCY = 3
    """`max_concurrency` calls are in flight; `wait` is None (it ends with a call)."""
    RPM = 4
    """The request limit; `wait` is the time until the rate limits admit the request."""
    TPM = 5
    """The token limit; `wait` as for RPM (``inf`` when the estimate exceeds tpm)."""


class Outcome(IntEnum):
    """How an admitted call ended, for `release`."""

    SUCCESS = 0
    """Counts as a success (closes a half-open circuit, resets the failure streak)."""
    FAILURE = 1
    """A failure that fails over (rate_limited, timeout, ...): counts toward opening."""
    NOT_COUNTED = 2
    """A caller's error or a cancelled call: frees the slot, the breaker ignores it."""


class Transition(IntEnum):
    """What `Chooser.finish` did to the deployment's circuit."""

    NONE = 0
    CLOSED = 1
    """The half-open trial succeeded: the circuit closed."""
    OPENED = 2
    """The failure opened the circuit (or opened it again after a failed trial)."""


class Limits(NamedTuple):
    """A deployment's limits; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None


class Admission(Protocol):
    """The answer of `try_acquire` / `acquire_first`."""

    @property
    def reason(self) -> int:
        """A `Reason`: 0 (ADMITTED) when admitted."""

    @property
    def admitted(self) -> bool:
        """Whether the call may go to the deployment."""

    @property
    def index(self) -> int:
        """The deployment this answer is about (-1 when `acquire_first` had no candidate)."""

    @property
    def ticket(self) -> int:
        """What `release` needs; -1 when refused."""

    @property
    def wait(self) -> float | None:
        """Seconds until the refusing condition may lift (None: unknown, ends with a call)."""

    @property
    def trial(self) -> bool:
        """Whether this admission is the half-open circuit's trial call."""


class StateSnapshot(Protocol):
    """A read-only view of one deployment's state at a time."""

    @property
    def circuit(self) -> CircuitState:
        """``"closed"``, ``"open"`` or ``"half_open"``."""

    @property
    def seconds_until_close(self) -> float:
        """While open: seconds until half open; else 0.0."""

    @property
    def in_flight(self) -> int:
        """Admitted calls not yet released."""

    @property
    def rpm_left(self) -> int | None:
        """Requests left in the window (None: no rpm limit)."""

    @property
    def tpm_left(self) -> int | None:
        """Tokens left in the window (None: no tpm limit)."""

    @property
    def latency(self) -> float | None:
        """The latency moving average (None: no sample yet)."""


class RouteState(Protocol):
    """The state of one route's deployments, indexed 0..N-1 in declaration order."""

    def __len__(self) -> int:
        """N, the number of deployments."""

    def try_acquire(self, index: int, now: float, est_tokens: int) -> Admission:
        """Take a request, `est_tokens` tokens and a slot of deployment `index`, or nothing.

        Refused while the circuit is open, while a half-open trial is in flight, at the
        concurrency limit, or when the rate limits have no room. Raises IndexError for a bad
        index, ValueError for a negative estimate or a time that is not finite.
        """

    def acquire_first(self, order: Sequence[int], now: float, est_tokens: int) -> Admission:
        """`try_acquire` on each of `order` in turn; the first admission, or a refusal.

        When none admits, the refusal is the rate-limited one with the shortest wait if any
        deployment is only waiting for rate-limit capacity, else the first refusal (index -1
        and reason CIRCUIT_OPEN with wait None for an empty `order`).
        """

    def release(
        self,
        index: int,
        ticket: int,
        now: float,
        outcome: int,
        actual_tokens: int | None = None,
        latency: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        """End the admitted call `ticket` of deployment `index` with an `Outcome`.

        `actual_tokens` (None: keep the estimate) replaces the estimate in the token window;
        `latency` (seconds, successes only) feeds the average; `retry_after` (seconds, on a
        FAILURE) opens the circuit for exactly that long.
        """

    def in_flight(self, index: int) -> int:
        """Calls in flight on deployment `index` (read without a lock, for `least_busy`)."""

    def latency(self, index: int) -> float | None:
        """The latency average of `index` (read without a lock, for `latency`)."""

    def snapshot(self, index: int, now: float) -> StateSnapshot:
        """The state of deployment `index` at `now`, for `status()`."""


class Chooser(Protocol):
    """How a routed call asks a route's state: one call per decision, one per outcome."""

    def choose(
        self,
        now: float,
        est_tokens: int,
        needs: int = 0,
        tried: Sequence[int] = (),
        min_window: int | None = None,
    ) -> Admission:
        """The first admission among the eligible deployments in the plan's order.

        Eligible: not in `tried`, having every capability bit of `needs`, a declared context
        window (if any) of at least `est_tokens`, and, when `min_window` is given, a declared
        window larger than it. The refusal when none admits is `acquire_first`'s.
        """

    def finish(
        self,
        admission: Admission,
        now: float,
        outcome: int,
        actual_tokens: int | None = None,
        latency: float | None = None,
        retry_after: float | None = None,
    ) -> int:
        """`release` of `admission`; a `Transition` (whether the circuit closed or opened)."""


class Plan:
    """What choosing knows of a route's deployments besides their state.

    Args:
        strategy: one of `STRATEGIES`: ``priority`` (declaration order), ``weighted`` (at
            random by weight), ``least_busy`` (fewest calls in flight first) or ``latency``
            (no sample yet first, then the lowest average; `LATENCY_EXPLORE` of the choices
            put a random one first).
        weights: a positive weight per deployment.
        masks: the capability bits each deployment has.
        windows: each deployment's declared context window (None: not declared).
    """

    __slots__ = ("common", "indices", "masks", "plain", "strategy", "weights", "windows")

    def __init__(
        self,
        strategy: Strategy,
        weights: Sequence[float],
        masks: Sequence[int],
        windows: Sequence[int | None],
    ) -> None:
        self.strategy = strategy
        self.weights = tuple(weights)
        self.masks = tuple(masks)
        self.windows = tuple(windows)
        self.indices = tuple(range(len(self.masks)))
        common = -1
        for mask in self.masks:
            common &= mask
        self.common = common
        # No declared windows: eligibility is the capabilities alone.
        self.plain = all(w is None for w in self.windows)

    def row(self) -> PlanRow:
        """The plan as the Rust core's `RouteState` takes it."""
        return self.strategy, list(self.weights), list(self.masks), list(self.windows)

    def order(
        self,
        state: RouteState,
        needs: int,
        est_tokens: int,
        tried: Sequence[int],
        min_window: int | None,
        rand: random.Random,
    ) -> Sequence[int]:
        """The eligible deployments (see `Chooser.choose`) in the strategy's order; the
        weighted keys and the latency exploration draw from `rand`."""
        if not tried and min_window is None and self.plain and needs & self.common == needs:
            if self.strategy == "priority":
                return self.indices
            out = list(self.indices)
        else:
            masks, windows = self.masks, self.windows
            out = []
            for i in self.indices:
                if i in tried or masks[i] & needs != needs:
                    continue
                window = windows[i]
                if window is not None and window < est_tokens:
                    continue
                if min_window is not None and (window is None or window <= min_window):
                    continue
                out.append(i)
        strategy = self.strategy
        if strategy == "priority" or len(out) < 2:
            return out
        if strategy == "least_busy":
            out.sort(key=state.in_flight)
        elif strategy == "weighted":
            weights = self.weights
            unit = rand.random
            # Weighted sampling without replacement (Efraimidis-Spirakis keys).
            out.sort(key=lambda i: unit() ** (1.0 / weights[i]), reverse=True)
        else:  # latency: no sample yet first, then the lowest average
            latency = state.latency
            out.sort(key=lambda i: (lat := latency(i)) is not None and lat)
            if rand.random() < LATENCY_EXPLORE:
                out.insert(0, out.pop(rand.randrange(len(out))))
        return out


class OrderedChooser:
    """A `Chooser` over any `RouteState` (a shared store's): the plan's order in Python,
    then the state's `acquire_first`; `finish` reads the circuit around `release`. Its
    draws come from `pick_generator(seed)` (None: `route_seed()`)."""

    __slots__ = ("_plan", "_rand", "_state")

    def __init__(self, state: RouteState, plan: Plan, seed: int | None = None) -> None:
        self._state = state
        self._plan = plan
        self._rand = pick_generator(route_seed() if seed is None else seed)

    def choose(
        self,
        now: float,
        est_tokens: int,
        needs: int = 0,
        tried: Sequence[int] = (),
        min_window: int | None = None,
    ) -> Admission:
        """See `Chooser.choose`."""
        state = self._state
        order = self._plan.order(state, needs, est_tokens, tried, min_window, self._rand)
        return state.acquire_first(order, now, est_tokens)

    def finish(
        self,
        admission: Admission,
        now: float,
        outcome: int,
        actual_tokens: int | None = None,
        latency: float | None = None,
        retry_after: float | None = None,
    ) -> int:
        """See `Chooser.finish`."""
        state, index = self._state, admission.index
        failure = outcome == Outcome.FAILURE
        was_open = failure and state.snapshot(index, now).circuit == "open"
        state.release(index, admission.ticket, now, outcome, actual_tokens, latency, retry_after)
        if outcome == Outcome.SUCCESS:
            return Transition.CLOSED if admission.trial else Transition.NONE
        if failure and not was_open and state.snapshot(index, now).circuit == "open":
            return Transition.OPENED
        return Transition.NONE


class CallGate(Protocol):
    """A route's calls in flight and whether it is retired (see `new_call_gate`)."""

    def enter(self) -> bool:
        """Count a call in; False once retired (nothing counted)."""

    def exit(self) -> bool:
        """Count a call out; True for the last call out of a retired gate."""

    def retire(self) -> bool:
        """Refuse calls from now on; True when this retired it with no call in flight."""

    @property
    def active(self) -> int:
        """Calls in flight."""

    @property
    def retired(self) -> bool:
        """Whether `retire` was called."""


def new_call_gate(backend: BackendName) -> CallGate:
    """A route's call gate: the Rust core's (one atomic word; a lock, a check and a count
    cost a routed call 4.2k instructions in Python, callgrind) or the twin's."""
    from . import _pystate

    if backend == "python":
        return _pystate.CallGate()
    from .._core import CallGate as RustCallGate

    return RustCallGate()


BreakerTuple = tuple[int, float, float, int, float, float]
PlanRow = tuple[str, list[float], list[int], list["int | None"]]


def breaker_tuple(breaker: Breaker | None) -> BreakerTuple | None:
    """The breaker's settings in the order both implementations take them."""
    if breaker is None:
        return None
    return (
        breaker.failures,
        float(breaker.window),
        float(breaker.failure_rate),
        breaker.min_calls,
        float(breaker.cooldown),
        float(breaker.max_cooldown),
    )


def new_route_state(
    limits: Sequence[Limits],
    breaker: Breaker | None,
    *,
    backend: BackendName | None = None,
    jitter: float = DEFAULT_JITTER,
    seed: int | None = None,
    plan: Plan | None = None,
) -> RouteState:
    """A route's in-process state: the Rust core's, or the twin's under the python backend.

    `jitter` in [0, 1) and `seed` (None: `route_seed()`) fix the re-opening jitter and the
    choosing draws (tests pass 0.0 or a seed). With a `plan` the state is also the route's
    `Chooser` (without one, its `choose` takes the deployments in order, each having every
    capability).
    """
    from .. import _backend
    from . import _pystate

    chosen = backend or _backend.backend()
    rows = [(lim.rpm, lim.tpm, lim.max_concurrency) for lim in limits]
    settings = breaker_tuple(breaker)
    if seed is None:
        seed = route_seed()
    row = plan.row() if plan is not None else None
    if chosen == "python":
        return _pystate.RouteState(rows, settings, jitter, seed, row)
    if chosen != "rust":
        raise InvalidConfigError(
            f"unknown backend {chosen!r}; use 'rust' or 'python'", op="backend"
        )
    try:
        from .._core import RouteState as RustRouteState
    except ImportError:
        raise InvalidConfigError("the Rust extension is not available", op="backend") from None
    return cast("RouteState", RustRouteState(rows, settings, jitter, seed, row))
