"""The route state in pure Python: the twin of the Rust core's ``RouteState``.

Same API, results and errors as `chatmodels._core.RouteState`; the rules are in
`chatmodels._routes._state`. Each deployment's state sits behind its own lock, held only for
the few operations of one decision; `in_flight` and `latency` read a field without it.
`choose` orders by the route's `Plan` (`Plan.order`, shared with `OrderedChooser`) and
admits through `acquire_first`. The weighted keys and the latency exploration draw from
`pick_generator(seed)`, apart from the jitter's splitmix64 draws.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ._state import (
    LATENCY_ALPHA,
    STRATEGIES,
    WINDOW,
    BreakerTuple,
    Outcome,
    Plan,
    PlanRow,
    Reason,
    Transition,
    pick_generator,
)
from ._types import CircuitState

__all__ = ["CallGate", "RouteAdmission", "RouteSnapshot", "RouteState"]

_CLOSED, _OPEN, _HALF_OPEN = 0, 1, 2
_NAMES: tuple[CircuitState, ...] = ("closed", "open", "half_open")
_MAX_LEVEL = 64
_MASK = (1 << 64) - 1
_CIRCUIT_OPEN = int(Reason.CIRCUIT_OPEN)
_TRIAL_TAKEN = int(Reason.TRIAL_TAKEN)
_CONCURRENCY = int(Reason.CONCURRENCY)
_RPM = int(Reason.RPM)
_TPM = int(Reason.TPM)
_SUCCESS = int(Outcome.SUCCESS)
_FAILURE = int(Outcome.FAILURE)
_NOT_COUNTED = int(Outcome.NOT_COUNTED)
_NONE, _CLOSED_NOW, _OPENED = int(Transition.NONE), int(Transition.CLOSED), int(Transition.OPENED)


class RouteAdmission:
    """The answer of `try_acquire` (see `chatmodels._routes._state.Admission`)."""

    __slots__ = ("index", "reason", "ticket", "trial", "wait")

    def __init__(
        self, reason: int, index: int, ticket: int, wait: float | None, trial: bool
    ) -> None:
        self.reason = reason
        self.index = index
        self.ticket = ticket
        self.wait = wait
        self.trial = trial

    @property
    def admitted(self) -> bool:
        """Whether the call may go to the deployment."""
        return self.reason == 0

    def __repr__(self) -> str:
        return (
            f"RouteAdmission(reason={self.reason}, index={self.index}, ticket={self.ticket},"
            f" wait={self.wait!r}, trial={self.trial})"
        )


@dataclass(frozen=True)
class RouteSnapshot:
    """One deployment's state at a time (see `chatmodels._routes._state.StateSnapshot`)."""

    circuit: CircuitState
    seconds_until_close: float
    in_flight: int
    rpm_left: int | None
    tpm_left: int | None
    latency: float | None


class CallGate:
    """A route's calls in flight and whether it is retired (the twin of
    `chatmodels._core.CallGate`): exactly one of `retire` and the last `exit` after it
    answers True, the one that closes the route's models."""

    __slots__ = ("_active", "_lock", "_retired")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._retired = False

    def enter(self) -> bool:
        """Count a call in; False once retired (nothing counted)."""
        with self._lock:
            if self._retired:
                return False
            self._active += 1
            return True

    def exit(self) -> bool:
        """Count a call out; True for the last call out of a retired gate."""
        with self._lock:
            if not self._active:
                return False  # no call to count out
            self._active -= 1
            return self._retired and not self._active

    def retire(self) -> bool:
        """Refuse calls from now on; True when this retired it with no call in flight."""
        with self._lock:
            if self._retired:
                return False
            self._retired = True
            return not self._active

    @property
    def active(self) -> int:
        """Calls in flight."""
        return self._active

    @property
    def retired(self) -> bool:
        """Whether `retire` was called."""
        return self._retired


def _limit(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be None or an int >= 1")
    return value


def _time(now: float) -> float:
    if not math.isfinite(now):
        raise ValueError("now must be a finite number")
    return float(now)


def _seconds(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be None or a finite number >= 0")
    return float(value)


def _plan(row: PlanRow | None, n: int) -> Plan:
    if row is None:
        return Plan("priority", [1.0] * n, [-1] * n, [None] * n)
    strategy, weights, masks, windows = row
    if strategy not in STRATEGIES:
        raise ValueError("strategy must be priority, weighted, least_busy or latency")
    if not len(weights) == len(masks) == len(windows) == n:
        raise ValueError("the plan needs one weight, mask and window per deployment")
    if not all(math.isfinite(w) and w > 0 for w in weights):
        raise ValueError("weights must be positive and finite")
    if any(m < 0 or m >> 64 for m in masks):
        raise OverflowError("a capability mask must be in [0, 2**64)")
    for window in windows:
        _limit(window, "a context window")
    return Plan(strategy, [float(w) for w in weights], masks, windows)


class _Deployment:
    __slots__ = (
        "closed_since",
        "cooldown_level",
        "failed",
        "in_flight",
        "latency",
        "lock",
        "log",
        "log_tokens",
        "logging",
        "max_concurrency",
        "next_ticket",
        "now",
        "open_until",
        "outcomes",
        "pending",
        "rpm",
        "state",
        "streak",
        "tpm",
        "trial",
    )

    def __init__(self, rpm: int | None, tpm: int | None, max_concurrency: int | None) -> None:
        self.lock = threading.Lock()
        self.rpm = rpm
        self.tpm = tpm
        self.max_concurrency = max_concurrency
        self.logging = rpm is not None or tpm is not None
        self.now = -math.inf
        self.next_ticket = 0
        self.in_flight = 0
        # The sliding log: [time, ticket, tokens] per admitted request, oldest first.
        self.log: deque[list[float | int]] = deque()
        self.log_tokens = 0
        self.pending: dict[int, list[float | int]] = {}
        self.latency: float | None = None
        self.state = _CLOSED
        self.open_until = 0.0
        self.cooldown_level = 0
        self.streak = 0
        self.outcomes: deque[tuple[float, bool]] = deque()
        self.failed = 0
        self.closed_since = 0
        self.trial: int | None = None

    def expire(self, now: float) -> None:
        log = self.log
        while log and log[0][0] + WINDOW <= now:
            _, ticket, tokens = log.popleft()
            self.log_tokens -= int(tokens)
            self.pending.pop(int(ticket), None)

    def rate_wait(self, now: float, est_tokens: int) -> tuple[int, float | None]:
        """(0, None) when the rate limits have room, else (RPM or TPM, wait)."""
        reason, wait = 0, None
        log = self.log
        if self.rpm is not None and len(log) >= self.rpm:
            reason, wait = _RPM, float(log[len(log) - self.rpm][0]) + WINDOW - now
        if self.tpm is not None:
            need = self.log_tokens + est_tokens - self.tpm
            if need > 0:
                tpm_wait = math.inf
                if est_tokens <= self.tpm:
                    freed = 0
                    for t, _, tokens in log:
                        freed += int(tokens)
                        if freed >= need:
                            tpm_wait = float(t) + WINDOW - now
                            break
                if reason == 0:
                    reason, wait = _TPM, tpm_wait
                else:
                    wait = max(wait or 0.0, tpm_wait)
        return reason, wait


class RouteState:
    """The in-process state of a route's deployments (see `chatmodels._routes._state`).

    Args:
        limits: (rpm, tpm, max_concurrency) per deployment, each None or an int >= 1.
        breaker: (failures, window, failure_rate, min_calls, cooldown, max_cooldown), or
            None for no circuit breaking.
        jitter: the largest fraction, in [0, 1), by which a doubled cooldown is shortened.
        seed: the jitter generator's seed in [0, 2**64) (None: random).
        plan: `Plan.row()` of the route's plan, for `choose` (None: priority over every
            deployment, each having every capability and no window).
    """

    def __init__(
        self,
        limits: list[tuple[int | None, int | None, int | None]],
        breaker: BreakerTuple | None = None,
        jitter: float = 0.1,
        seed: int | None = None,
        plan: PlanRow | None = None,
    ) -> None:
        deployments = []
        for rpm, tpm, cap in limits:
            deployments.append(
                _Deployment(_limit(rpm, "rpm"), _limit(tpm, "tpm"), _limit(cap, "max_concurrency"))
            )
        if breaker is not None:
            failures, window, rate, min_calls, cooldown, max_cooldown = breaker
            if failures < 1 or min_calls < 1:
                raise ValueError("failures and min_calls must be >= 1")
            for v in (window, rate, cooldown, max_cooldown):
                if not (math.isfinite(v) and v > 0):
                    raise ValueError("breaker times and rate must be positive and finite")
            if rate > 1 or max_cooldown < cooldown:
                raise ValueError("failure_rate <= 1 and max_cooldown >= cooldown are required")
        if not (0.0 <= jitter < 1.0):
            raise ValueError("jitter must be in [0, 1)")
        if seed is None:
            seed = random.getrandbits(64)
        elif not 0 <= seed <= _MASK:
            raise OverflowError("seed must be in [0, 2**64)")
        self._deployments = deployments
        self._plan = _plan(plan, len(deployments))
        self._breaker = breaker
        self._jitter = float(jitter)
        self._rng = seed
        self._rng_lock = threading.Lock()
        self._pick = pick_generator(seed)

    def __len__(self) -> int:
        return len(self._deployments)

    def _deployment(self, index: int) -> _Deployment:
        if not 0 <= index < len(self._deployments):
            raise IndexError(f"deployment {index} out of range")
        return self._deployments[index]

    def _unit(self) -> float:
        """The next splitmix64 draw as a float in [0, 1)."""
        with self._rng_lock:
            self._rng = state = (self._rng + 0x9E3779B97F4A7C15) & _MASK
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        z ^= z >> 31
        return (z >> 11) * 2.0**-53

    def try_acquire(self, index: int, now: float, est_tokens: int) -> RouteAdmission:
        """Take a request, `est_tokens` tokens and a slot of deployment `index`, or nothing."""
        d = self._deployment(index)
        now = _time(now)
        if est_tokens < 0:
            raise ValueError("est_tokens must be >= 0")
        with d.lock:
            if now < d.now:
                now = d.now
            else:
                d.now = now
            trial = False
            if d.state != _CLOSED:
                if d.state == _OPEN:
                    if now < d.open_until:
                        return RouteAdmission(_CIRCUIT_OPEN, index, -1, d.open_until - now, False)
                    d.state = _HALF_OPEN
                if d.trial is not None:
                    return RouteAdmission(_TRIAL_TAKEN, index, -1, None, False)
                trial = True
            if d.max_concurrency is not None and d.in_flight >= d.max_concurrency:
                return RouteAdmission(_CONCURRENCY, index, -1, None, False)
            ticket = d.next_ticket
            if d.logging:
                d.expire(now)
                reason, wait = d.rate_wait(now, est_tokens)
                if reason:
                    return RouteAdmission(reason, index, -1, wait, False)
                entry: list[float | int] = [now, ticket, est_tokens]
                d.log.append(entry)
                d.pending[ticket] = entry
                d.log_tokens += est_tokens
            d.next_ticket = ticket + 1
            d.in_flight += 1
            if trial:
                d.trial = ticket
            return RouteAdmission(0, index, ticket, None, trial)

    def acquire_first(self, order: Sequence[int], now: float, est_tokens: int) -> RouteAdmission:
        """`try_acquire` on each of `order` in turn; the first admission, or a refusal."""
        for index in order:  # all checked before any is taken, as the Rust core does
            self._deployment(index)
        first: RouteAdmission | None = None
        best: RouteAdmission | None = None
        for index in order:
            answer = self.try_acquire(index, now, est_tokens)
            if answer.reason == 0:
                return answer
            if first is None:
                first = answer
            if answer.reason >= _RPM and (
                best is None or (answer.wait or 0.0) < (best.wait or 0.0)
            ):
                best = answer
        if best is not None:
            return best
        if first is not None:
            return first
        return RouteAdmission(_CIRCUIT_OPEN, -1, -1, None, False)

    def set_plan(self, plan: PlanRow) -> None:
        """Replace the plan `choose` orders by (a `Plan.row()`)."""
        self._plan = _plan(plan, len(self._deployments))

    def choose(
        self,
        now: float,
        est_tokens: int,
        needs: int = 0,
        tried: Sequence[int] = (),
        min_window: int | None = None,
    ) -> RouteAdmission:
        """The strategy's choice among the eligible deployments, admitted, in one call."""
        for index in tried:
            self._deployment(index)
        now = _time(now)
        if est_tokens < 0:
            raise ValueError("est_tokens must be >= 0")
        order = self._plan.order(self, needs, est_tokens, tried, min_window, self._pick)
        return self.acquire_first(order, now, est_tokens)

    def finish(
        self,
        admission: RouteAdmission,
        now: float,
        outcome: int,
        actual_tokens: int | None = None,
        latency: float | None = None,
        retry_after: float | None = None,
    ) -> int:
        """`release` of an admission; 1 when it closed the circuit, 2 when it opened it, else 0."""
        return self._release(
            admission.index, admission.ticket, now, outcome, actual_tokens, latency, retry_after
        )

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
        """End the admitted call `ticket` of deployment `index` with an `Outcome`."""
        self._release(index, ticket, now, outcome, actual_tokens, latency, retry_after)

    def _release(
        self,
        index: int,
        ticket: int,
        now: float,
        outcome: int,
        actual_tokens: int | None,
        latency: float | None,
        retry_after: float | None,
    ) -> int:
        d = self._deployment(index)
        now = _time(now)
        if outcome not in (_SUCCESS, _FAILURE, _NOT_COUNTED):
            raise ValueError("outcome must be 0 (success), 1 (failure) or 2 (not counted)")
        if actual_tokens is not None and actual_tokens < 0:
            raise ValueError("actual_tokens must be None or >= 0")
        latency = _seconds(latency, "latency")
        retry_after = _seconds(retry_after, "retry_after")
        with d.lock:
            if now < d.now:
                now = d.now
            else:
                d.now = now
            if d.in_flight > 0:
                d.in_flight -= 1
            if d.logging:
                d.expire(now)
                entry = d.pending.pop(ticket, None)
                if entry is not None and actual_tokens is not None:
                    d.log_tokens += actual_tokens - int(entry[2])
                    entry[2] = actual_tokens
            if outcome == _SUCCESS and latency is not None:
                avg = d.latency
                d.latency = latency if avg is None else avg + LATENCY_ALPHA * (latency - avg)
            before = d.state
            if self._breaker is not None:
                self._record(d, ticket, now, outcome, retry_after)
            after = d.state
        if before in (_OPEN, after):
            return _NONE
        if after == _OPEN:
            return _OPENED
        return _CLOSED_NOW if before == _HALF_OPEN and after == _CLOSED else _NONE

    def _record(
        self, d: _Deployment, ticket: int, now: float, outcome: int, retry_after: float | None
    ) -> None:
        assert self._breaker is not None
        failures, window, rate, min_calls, cooldown, max_cooldown = self._breaker
        if d.trial is not None and d.trial == ticket:
            d.trial = None
            if outcome == _SUCCESS:
                d.state = _CLOSED
                d.cooldown_level = 0
                d.closed_since = d.next_ticket
            elif outcome == _FAILURE:
                d.cooldown_level = min(d.cooldown_level + 1, _MAX_LEVEL)
                if retry_after is None:
                    base = min(cooldown * 2.0**d.cooldown_level, max_cooldown)
                    retry_after = base * (1.0 - self._jitter * self._unit())
                self._open(d, now, retry_after)
            return
        if outcome == _NOT_COUNTED or d.state != _CLOSED or ticket < d.closed_since:
            return
        failed = outcome == _FAILURE
        outcomes = d.outcomes
        outcomes.append((now, failed))
        if failed:
            d.failed += 1
            d.streak += 1
        else:
            d.streak = 0
        while outcomes[0][0] + window <= now:
            if outcomes.popleft()[1]:
                d.failed -= 1
        if not failed:
            return
        if retry_after is not None:
            d.cooldown_level = 0
            self._open(d, now, retry_after)
        elif d.streak >= failures or (
            len(outcomes) >= min_calls and d.failed / len(outcomes) >= rate
        ):
            d.cooldown_level = 0
            self._open(d, now, cooldown)

    @staticmethod
    def _open(d: _Deployment, now: float, duration: float) -> None:
        d.state = _OPEN
        d.open_until = now + duration
        d.streak = 0
        d.outcomes.clear()
        d.failed = 0

    def in_flight(self, index: int) -> int:
        """Calls in flight on deployment `index`."""
        return self._deployment(index).in_flight

    def latency(self, index: int) -> float | None:
        """The latency moving average of deployment `index` (None: no sample yet)."""
        return self._deployment(index).latency

    def snapshot(self, index: int, now: float) -> RouteSnapshot:
        """The state of deployment `index` at `now`."""
        d = self._deployment(index)
        now = _time(now)
        with d.lock:
            if now < d.now:
                now = d.now
            else:
                d.now = now
            state, until = d.state, 0.0
            if state == _OPEN:
                if now < d.open_until:
                    until = d.open_until - now
                else:
                    state = _HALF_OPEN
            rpm_left = tpm_left = None
            if d.logging:
                d.expire(now)
                if d.rpm is not None:
                    rpm_left = max(d.rpm - len(d.log), 0)
                if d.tpm is not None:
                    tpm_left = max(d.tpm - d.log_tokens, 0)
            return RouteSnapshot(_NAMES[state], until, d.in_flight, rpm_left, tpm_left, d.latency)
