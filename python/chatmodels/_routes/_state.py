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

from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, NamedTuple, Protocol, cast

from .._errors import InvalidConfigError

if TYPE_CHECKING:
    from .._backend import BackendName
    from ._types import Breaker, CircuitState

__all__ = [
    "LATENCY_ALPHA",
    "WINDOW",
    "Admission",
    "Limits",
    "Outcome",
    "Reason",
    "RouteState",
    "StateSnapshot",
    "breaker_tuple",
    "new_route_state",
]

WINDOW = 60.0
"""The rate limits' sliding window, in seconds."""

LATENCY_ALPHA = 0.25
"""The weight of a new sample in the latency moving average."""

DEFAULT_JITTER = 0.1
"""The largest fraction by which jitter shortens a doubled cooldown."""


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


BreakerTuple = tuple[int, float, float, int, float, float]


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
) -> RouteState:
    """A route's in-process state: the Rust core's, or the twin's under the python backend.

    `jitter` in [0, 1) and `seed` (None: random) fix the re-opening jitter (tests pass 0.0
    or a seed).
    """
    from .. import _backend
    from . import _pystate

    chosen = backend or _backend.backend()
    rows = [(lim.rpm, lim.tpm, lim.max_concurrency) for lim in limits]
    settings = breaker_tuple(breaker)
    if chosen == "python":
        return _pystate.RouteState(rows, settings, jitter, seed)
    if chosen != "rust":
        raise InvalidConfigError(
            f"unknown backend {chosen!r}; use 'rust' or 'python'", op="backend"
        )
    try:
        from .._core import RouteState as RustRouteState
    except ImportError:
        raise InvalidConfigError("the Rust extension is not available", op="backend") from None
    return cast("RouteState", RustRouteState(rows, settings, jitter, seed))
