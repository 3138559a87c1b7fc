"""Rate limits and concurrency with the injected clock: a Hypothesis state machine drives the
Rust core and the twin against a plain sliding-log model; then the issue's cases by hand."""

from __future__ import annotations

import math

import pytest
from chatmodels._routes._state import (
    LATENCY_ALPHA,
    Limits,
    Outcome,
    Reason,
    RouteState,
    new_route_state,
)
from chatmodels._routes._types import Breaker
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from route_helpers import MakeState


class RateModel:
    """At most rpm requests and tpm tokens among the admissions of the last 60 seconds."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.log: list[list[float]] = []  # [time, tokens, ticket]
        self.flying: set[int] = set()
        self.tickets = 0
        self.latest = -math.inf

    def live(self, now: float) -> list[list[float]]:
        return [e for e in self.log if e[0] + 60.0 > now]

    def fits(self, now: float, est: int) -> tuple[bool, bool]:
        live = self.live(now)
        rpm_ok = self.limits.rpm is None or len(live) < self.limits.rpm
        tpm_ok = self.limits.tpm is None or sum(e[1] for e in live) + est <= self.limits.tpm
        return rpm_ok, tpm_ok

    def acquire(self, now: float, est: int) -> tuple[int, float | None]:
        now = self.latest = max(self.latest, now)
        cap = self.limits.max_concurrency
        if cap is not None and len(self.flying) >= cap:
            return Reason.CONCURRENCY, None
        rpm_ok, tpm_ok = self.fits(now, est)
        if rpm_ok and tpm_ok:
            self.log.append([now, est, self.tickets])
            self.flying.add(self.tickets)
            self.tickets += 1
            return Reason.ADMITTED, None
        wait = math.inf
        if self.limits.tpm is None or est <= self.limits.tpm:
            for edge in sorted(e[0] + 60.0 for e in self.live(now)):
                if all(self.fits(edge, est)):
                    wait = edge - now
                    break
        return (Reason.RPM if not rpm_ok else Reason.TPM), wait

    def release(self, ticket: int, now: float, actual: int | None) -> None:
        now = self.latest = max(self.latest, now)
        self.flying.discard(ticket)
        for e in self.live(now):
            if e[2] == ticket and actual is not None:
                e[1] = actual

    def left(self, now: float) -> tuple[int | None, int | None]:
        now = self.latest = max(self.latest, now)
        live = self.live(now)
        rpm, tpm = self.limits.rpm, self.limits.tpm
        return (
            None if rpm is None else max(rpm - len(live), 0),
            None if tpm is None else max(tpm - int(sum(e[1] for e in live)), 0),
        )


class LimitsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.states: list[RouteState] = []
        self.now = 1000.0
        self.admitted_at: list[float] = []

    @initialize(
        rpm=st.sampled_from([None, 1, 2, 3, 5]),
        tpm=st.sampled_from([None, 10, 50, 100]),
        cap=st.sampled_from([None, 1, 2, 4]),
    )
    def setup(self, rpm: int | None, tpm: int | None, cap: int | None) -> None:
        limits = Limits(rpm, tpm, cap)
        self.model = RateModel(limits)
        self.states = [new_route_state([limits], None, backend=b) for b in ("rust", "python")]

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 20.0, 30.0, 59.0, 59.5, 60.0]) | st.floats(0, 70))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(est=st.integers(0, 60) | st.sampled_from([0, 10, 100, 101]))
    def acquire(self, est: int) -> None:
        expected = self.model.acquire(self.now, est)
        answers = [s.try_acquire(0, self.now, est) for s in self.states]
        for a in answers:
            assert (a.reason, a.wait) == expected
        assert answers[0].ticket == answers[1].ticket
        if answers[0].admitted:
            self.admitted_at.append(self.now)

    @precondition(lambda self: bool(self.model.flying))
    @rule(pick=st.integers(0, 50), actual=st.none() | st.integers(0, 120))
    def release(self, pick: int, actual: int | None) -> None:
        ticket = sorted(self.model.flying)[pick % len(self.model.flying)]
        self.model.release(ticket, self.now, actual)
        for s in self.states:
            s.release(0, ticket, self.now, Outcome.SUCCESS, actual)

    @invariant()
    def agree(self) -> None:
        if not self.states:
            return
        rpm_left, tpm_left = self.model.left(self.now)
        for s in self.states:
            snap = s.snapshot(0, self.now)
            assert (snap.rpm_left, snap.tpm_left) == (rpm_left, tpm_left)
            assert snap.in_flight == s.in_flight(0) == len(self.model.flying)

    @invariant()
    def no_window_over_rpm(self) -> None:
        rpm = self.model.limits.rpm if self.states else None
        if rpm is None:
            return
        times = self.admitted_at
        for start in times:  # the fullest window starts at an admission
            assert sum(start <= t < start + 60.0 for t in times) <= rpm


TestLimitsMachine = LimitsMachine.TestCase
TestLimitsMachine.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)


def test_a_full_minute_of_quota_may_be_spent_at_once(make_state: MakeState) -> None:
    state = make_state([Limits(rpm=5)])
    assert all(state.try_acquire(0, 10.0, 1).admitted for _ in range(5))
    refused = state.try_acquire(0, 10.0, 1)
    assert (refused.reason, refused.wait) == (Reason.RPM, 60.0)
    assert not state.try_acquire(0, 69.9, 1).admitted
    assert all(state.try_acquire(0, 70.0, 1).admitted for _ in range(5))


def test_a_burst_at_a_window_edge_does_not_spend_two_minutes(make_state: MakeState) -> None:
    state = make_state([Limits(rpm=5)])
    for _ in range(5):
        assert state.try_acquire(0, 59.9, 1).admitted  # the end of one clock minute
    refused = state.try_acquire(0, 60.0, 1)  # the start of the next: a fixed window resets
    assert refused.reason == Reason.RPM
    assert refused.wait == pytest.approx(59.9)


def test_tpm_is_taken_from_the_estimate_and_corrected_by_usage(make_state: MakeState) -> None:
    state = make_state([Limits(tpm=1000)])
    big = state.try_acquire(0, 0.0, 900)
    refused = state.try_acquire(0, 1.0, 200)
    assert (refused.reason, refused.wait) == (Reason.TPM, 59.0)
    state.release(0, big.ticket, 2.0, Outcome.SUCCESS, actual_tokens=100)
    assert state.snapshot(0, 2.0).tpm_left == 900
    small = state.try_acquire(0, 3.0, 100)
    state.release(0, small.ticket, 4.0, Outcome.SUCCESS, actual_tokens=850)  # it ran long
    assert state.snapshot(0, 4.0).tpm_left == 50
    assert state.try_acquire(0, 5.0, 100).reason == Reason.TPM
    # 100 + 850 + 100 > 1000 until the first request's 100 tokens leave, at 60.0.
    assert state.try_acquire(0, 5.0, 100).wait == 55.0
    assert not state.try_acquire(0, 59.5, 100).admitted
    assert state.try_acquire(0, 60.0, 100).admitted


def test_an_estimate_above_tpm_never_fits(make_state: MakeState) -> None:
    state = make_state([Limits(tpm=100)])
    refused = state.try_acquire(0, 0.0, 101)
    assert (refused.reason, refused.wait) == (Reason.TPM, math.inf)


def test_rpm_and_tpm_wait_for_both(make_state: MakeState) -> None:
    state = make_state([Limits(rpm=1, tpm=100)])
    state.try_acquire(0, 0.0, 100)
    refused = state.try_acquire(0, 30.0, 1)
    assert (refused.reason, refused.wait) == (Reason.RPM, 30.0)


def test_a_correction_after_the_window_changes_nothing(make_state: MakeState) -> None:
    state = make_state([Limits(tpm=100)])
    a = state.try_acquire(0, 0.0, 50)
    state.release(0, a.ticket, 61.0, Outcome.SUCCESS, actual_tokens=100)
    assert state.snapshot(0, 61.0).tpm_left == 100


def test_max_concurrency_caps_calls_in_flight(make_state: MakeState) -> None:
    state = make_state([Limits(max_concurrency=2)])
    first = state.try_acquire(0, 0.0, 1)
    state.try_acquire(0, 0.0, 1)
    refused = state.try_acquire(0, 0.0, 1)
    assert (refused.reason, refused.wait, refused.ticket) == (Reason.CONCURRENCY, None, -1)
    assert state.in_flight(0) == 2
    state.release(0, first.ticket, 1.0, Outcome.NOT_COUNTED)
    assert state.in_flight(0) == 1
    assert state.try_acquire(0, 1.0, 1).admitted


def test_a_refusal_takes_nothing(make_state: MakeState) -> None:
    state = make_state([Limits(rpm=10, tpm=10, max_concurrency=5)], Breaker(failures=1))
    state.try_acquire(0, 0.0, 8)
    for _ in range(3):
        assert state.try_acquire(0, 0.0, 5).reason == Reason.TPM
    snap = state.snapshot(0, 0.0)
    assert (snap.rpm_left, snap.tpm_left, snap.in_flight) == (9, 2, 1)


def test_acquire_first_takes_the_first_admitting_in_order(make_state: MakeState) -> None:
    state = make_state([Limits(rpm=1), Limits(rpm=1), Limits()])
    state.try_acquire(0, 0.0, 1)
    a = state.acquire_first([0, 1, 2], 0.0, 1)
    assert (a.admitted, a.index) == (True, 1)
    a = state.acquire_first([1, 0], 10.0, 1)
    assert (a.reason, a.index) == (Reason.RPM, 1)  # both wait; 1 is freed first (at 60.0)
    assert a.wait == 50.0


def test_acquire_first_prefers_a_rate_limit_wait_over_an_open_circuit(
    make_state: MakeState,
) -> None:
    state = make_state([Limits(), Limits(rpm=1)], Breaker(failures=1, cooldown=5.0))
    opening = state.try_acquire(0, 0.0, 1)
    state.release(0, opening.ticket, 0.0, Outcome.FAILURE)
    state.try_acquire(1, 0.0, 1)
    a = state.acquire_first([0, 1], 1.0, 1)
    assert (a.reason, a.index, a.wait) == (Reason.RPM, 1, 59.0)
    a = state.acquire_first([0], 1.0, 1)
    assert (a.reason, a.index, a.wait) == (Reason.CIRCUIT_OPEN, 0, 4.0)
    a = state.acquire_first([], 1.0, 1)
    assert (a.admitted, a.index) == (False, -1)


def test_latency_is_a_moving_average_of_successes(make_state: MakeState) -> None:
    state = make_state([Limits()], Breaker())
    assert state.latency(0) is None
    for latency, outcome in [
        (0.4, Outcome.SUCCESS),
        (9.0, Outcome.FAILURE),
        (0.8, Outcome.SUCCESS),
    ]:
        a = state.try_acquire(0, 0.0, 1)
        state.release(0, a.ticket, 0.0, outcome, latency=latency)
    assert state.latency(0) == 0.4 + LATENCY_ALPHA * (0.8 - 0.4)
    assert state.snapshot(0, 0.0).latency == state.latency(0)


def test_an_earlier_time_counts_as_the_latest_seen(make_state: MakeState) -> None:
    state = make_state([Limits(rpm=1)])
    state.try_acquire(0, 100.0, 1)
    refused = state.try_acquire(0, 30.0, 1)  # a caller whose clock read is stale
    assert refused.wait == 60.0


def test_no_limits_no_log(make_state: MakeState) -> None:
    state = make_state([Limits()])
    for _ in range(1000):
        assert state.try_acquire(0, 0.0, 10**9).admitted
    snap = state.snapshot(0, 0.0)
    assert (snap.rpm_left, snap.tpm_left, snap.in_flight) == (None, None, 1000)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.try_acquire(2, 0.0, 1), IndexError),
        (lambda s: s.try_acquire(-1, 0.0, 1), IndexError),
        (lambda s: s.try_acquire(0, math.nan, 1), ValueError),
        (lambda s: s.try_acquire(0, math.inf, 1), ValueError),
        (lambda s: s.try_acquire(0, 0.0, -1), ValueError),
        (lambda s: s.acquire_first([0, 5], 0.0, 1), IndexError),
        (lambda s: s.release(0, 0, 0.0, 3), ValueError),
        (lambda s: s.release(0, 0, 0.0, 0, -1), ValueError),
        (lambda s: s.release(0, 0, 0.0, 0, None, -0.1), ValueError),
        (lambda s: s.release(0, 0, 0.0, 1, None, None, math.nan), ValueError),
        (lambda s: s.in_flight(2), IndexError),
        (lambda s: s.latency(9), IndexError),
        (lambda s: s.snapshot(0, math.nan), ValueError),
    ],
)
def test_bad_arguments(make_state: MakeState, call: object, error: type[Exception]) -> None:
    state = make_state([Limits(), Limits()])
    with pytest.raises(error):
        call(state)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("limits", "breaker", "jitter"),
    [
        ([(0, None, None)], None, 0.0),
        ([(None, -5, None)], None, 0.0),
        ([(None, None, 0)], None, 0.0),
        ([(None, None, None)], (0, 30.0, 0.5, 10, 10.0, 300.0), 0.0),
        ([(None, None, None)], (5, math.nan, 0.5, 10, 10.0, 300.0), 0.0),
        ([(None, None, None)], (5, 30.0, 1.5, 10, 10.0, 300.0), 0.0),
        ([(None, None, None)], (5, 30.0, 0.5, 10, 10.0, 5.0), 0.0),
        ([(None, None, None)], None, 1.0),
        ([(None, None, None)], None, -0.1),
    ],
)
def test_bad_construction(
    backend: str, limits: list[tuple[int | None, ...]], breaker: object, jitter: float
) -> None:
    from chatmodels import _core
    from chatmodels._routes import _pystate

    cls = _core.RouteState if backend == "rust" else _pystate.RouteState
    with pytest.raises(ValueError):  # noqa: PT011 - the internal API's contract
        cls(limits, breaker, jitter)  # type: ignore[arg-type]
