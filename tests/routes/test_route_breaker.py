"""The circuit breaker: a Hypothesis state machine drives the Rust core and the Python twin with
the same random calls, outcomes and times from an injected clock, against a plain model of the
rules of the routes issue; then worked examples of each rule."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from chatmodels._routes._state import Limits, Outcome, Reason, RouteState, new_route_state
from chatmodels._routes._types import Breaker
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from route_helpers import MakeState

MASK = (1 << 64) - 1


@dataclass
class Model:
    """The breaker's rules, written out plainly (lists recomputed, no running counters)."""

    b: Breaker
    jitter: float
    rng: int
    circuit: str = "closed"
    open_until: float = 0.0
    reopenings: int = 0  # failed trials in a row
    recent: list[tuple[float, bool]] = field(default_factory=list)  # counted (time, failed)
    counted: list[bool] = field(default_factory=list)  # every counted failed? since closing
    tickets: int = 0
    closed_since: int = 0
    trial: int | None = None
    latest: float = -math.inf

    def unit(self) -> float:
        self.rng = (self.rng + 0x9E3779B97F4A7C15) & MASK
        z = self.rng
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z = z ^ (z >> 31)
        return (z >> 11) / 2.0**53

    def clock(self, now: float) -> float:
        self.latest = max(self.latest, now)
        return self.latest

    def view(self, now: float) -> tuple[str, float]:
        if self.circuit == "open" and now >= self.open_until:
            return "half_open", 0.0
        if self.circuit == "open":
            return "open", self.open_until - now
        return self.circuit, 0.0

    def acquire(self, now: float) -> tuple[int, float | None, bool]:
        now = self.clock(now)
        circuit, until = self.view(now)
        if circuit == "open":
            return Reason.CIRCUIT_OPEN, until, False
        if circuit == "half_open":
            self.circuit = "half_open"
            if self.trial is not None:
                return Reason.TRIAL_TAKEN, None, False
            self.trial = self.tickets
        self.tickets += 1
        return Reason.ADMITTED, None, self.trial == self.tickets - 1

    def open_for(self, now: float, seconds: float) -> None:
        self.circuit = "open"
        self.open_until = now + seconds
        self.recent = []
        self.counted = []

    def release(self, ticket: int, now: float, outcome: Outcome, retry_after: float | None) -> None:
        now = self.clock(now)
        if ticket == self.trial:
            self.trial = None
            if outcome == Outcome.SUCCESS:
                self.circuit = "closed"
                self.reopenings = 0
                self.closed_since = self.tickets
            elif outcome == Outcome.FAILURE:
                self.reopenings += 1
                if retry_after is not None:
                    self.open_for(now, retry_after)
                else:
                    doubled = min(self.b.cooldown * 2**self.reopenings, self.b.max_cooldown)
                    self.open_for(now, doubled * (1.0 - self.jitter * self.unit()))
            return
        if outcome == Outcome.NOT_COUNTED or self.circuit != "closed":
            return
        if ticket < self.closed_since:
            return  # admitted before the circuit last closed
        self.recent.append((now, outcome == Outcome.FAILURE))
        self.counted.append(outcome == Outcome.FAILURE)
        self.recent = [(t, f) for t, f in self.recent if t + self.b.window > now]
        if outcome != Outcome.FAILURE:
            return
        streak = 0
        for failed in reversed(self.counted):
            if not failed:
                break
            streak += 1
        failures = sum(f for _, f in self.recent)
        if retry_after is not None:
            self.reopenings = 0
            self.open_for(now, retry_after)
        elif streak >= self.b.failures or (
            len(self.recent) >= self.b.min_calls
            and failures / len(self.recent) >= self.b.failure_rate
        ):
            self.reopenings = 0
            self.open_for(now, self.b.cooldown)


DTS = st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 29.5, 30.0, 60.0]) | st.floats(0, 40)


class BreakerMachine(RuleBasedStateMachine):
    """The Rust state, the twin and the model, one deployment, no limits."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[RouteState] = []
        self.now = 0.0
        self.flying: list[int] = []

    @initialize(
        failures=st.integers(1, 4),
        window=st.sampled_from([5.0, 30.0]),
        failure_rate=st.sampled_from([0.25, 0.5, 1.0]),
        min_calls=st.integers(1, 6),
        cooldown=st.sampled_from([1.0, 10.0]),
        stretch=st.sampled_from([1.0, 3.0, 8.0]),
        jitter=st.sampled_from([0.0, 0.1, 0.5]),
        seed=st.integers(0, MASK),
    )
    def setup(
        self,
        failures: int,
        window: float,
        failure_rate: float,
        min_calls: int,
        cooldown: float,
        stretch: float,
        jitter: float,
        seed: int,
    ) -> None:
        b = Breaker(failures, window, failure_rate, min_calls, cooldown, cooldown * stretch)
        self.model = Model(b, jitter, seed)
        self.states = [
            new_route_state([Limits()], b, backend=name, jitter=jitter, seed=seed)
            for name in ("rust", "python")
        ]

    @rule(dt=DTS)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(back=st.sampled_from([0.0, 0.0, 0.5, 3.0]))
    def acquire(self, back: float) -> None:
        now = self.now - back  # a caller that read the clock a little earlier
        expected = self.model.acquire(now)
        answers = [s.try_acquire(0, now, 0) for s in self.states]
        for a in answers:
            assert (a.reason, a.wait, a.trial) == expected
            assert a.admitted == (a.reason == Reason.ADMITTED)
        rust, twin = answers
        assert rust.ticket == twin.ticket
        if rust.admitted:
            self.flying.append(rust.ticket)

    @precondition(lambda self: bool(self.flying))
    @rule(
        pick=st.integers(0, 100),
        outcome=st.sampled_from(list(Outcome)),
        retry_after=st.none() | st.none() | st.sampled_from([0.0, 2.5, 45.0]),
    )
    def release(self, pick: int, outcome: Outcome, retry_after: float | None) -> None:
        ticket = self.flying.pop(pick % len(self.flying))
        self.model.release(ticket, self.now, outcome, retry_after)
        for s in self.states:
            s.release(0, ticket, self.now, outcome, None, 0.1, retry_after)

    @invariant()
    def agree(self) -> None:
        if not self.states:
            return
        # A snapshot is a time seen too: later calls with an earlier time count as this one.
        circuit, until = self.model.view(self.model.clock(self.now))
        for s in self.states:
            snap = s.snapshot(0, self.now)
            assert (snap.circuit, snap.seconds_until_close) == (circuit, until)
            assert snap.in_flight == len(self.flying)


TestBreakerMachine = BreakerMachine.TestCase
TestBreakerMachine.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)


def fail(state: RouteState, now: float, retry_after: float | None = None) -> None:
    a = state.try_acquire(0, now, 0)
    assert a.admitted, a
    state.release(0, a.ticket, now, Outcome.FAILURE, retry_after=retry_after)


def succeed(state: RouteState, now: float) -> None:
    a = state.try_acquire(0, now, 0)
    assert a.admitted, a
    state.release(0, a.ticket, now, Outcome.SUCCESS)


def test_consecutive_failures_open_for_exactly_the_cooldown(make_state: MakeState) -> None:
    state = make_state([Limits()], Breaker(failures=3, cooldown=10.0))
    fail(state, 0.0)
    fail(state, 1.0)
    succeed(state, 2.0)  # the streak restarts
    fail(state, 3.0)
    fail(state, 4.0)
    assert state.snapshot(0, 4.0).circuit == "closed"
    fail(state, 5.0)
    refused = state.try_acquire(0, 14.5, 0)
    assert (refused.reason, refused.wait) == (Reason.CIRCUIT_OPEN, 0.5)
    assert state.snapshot(0, 15.0).circuit == "half_open"
    assert state.try_acquire(0, 15.0, 0).trial


def test_failure_rate_in_the_window_opens(make_state: MakeState) -> None:
    state = make_state([Limits()], Breaker(failures=100, window=30.0, min_calls=4))
    fail(state, 0.0)
    succeed(state, 1.0)
    fail(state, 2.0)
    assert state.snapshot(0, 2.0).circuit == "closed"  # 2 of 3: too few calls
    succeed(state, 3.0)  # 2 of 4, but only a failure checks the rate
    assert state.snapshot(0, 3.0).circuit == "closed"
    fail(state, 30.5)  # the call at 0.0 has left the window: 2 of 4 failed again
    assert state.snapshot(0, 30.5).circuit == "open"


def test_rate_below_the_threshold_stays_closed(make_state: MakeState) -> None:
    state = make_state([Limits()], Breaker(failures=100, min_calls=4, failure_rate=0.5))
    for t in range(3):
        succeed(state, float(t))
    fail(state, 4.0)
    fail(state, 5.0)  # 2 of 5
    assert state.snapshot(0, 5.0).circuit == "closed"


def test_retry_after_opens_for_exactly_that_long(make_state: MakeState) -> None:
    state = make_state([Limits()], Breaker(failures=5))
    fail(state, 100.0, retry_after=7.25)
    snap = state.snapshot(0, 100.0)
    assert (snap.circuit, snap.seconds_until_close) == ("open", 7.25)
    assert state.snapshot(0, 107.25).circuit == "half_open"


def test_reopenings_double_up_to_max_cooldown_and_success_resets(make_state: MakeState) -> None:
    state = make_state([Limits()], Breaker(failures=1, cooldown=10.0, max_cooldown=35.0))
    fail(state, 0.0)
    durations = []
    now = 0.0
    for _ in range(4):
        now += state.snapshot(0, now).seconds_until_close
        fail(state, now)  # the trial fails
        durations.append(state.snapshot(0, now).seconds_until_close)
    assert durations == [20.0, 35.0, 35.0, 35.0]
    now += 35.0
    succeed(state, now)  # the trial succeeds: closed, the doubling forgotten
    fail(state, now)
    assert state.snapshot(0, now).seconds_until_close == 10.0


@pytest.mark.parametrize("jitter", [0.1, 0.5])
def test_jitter_shortens_within_its_fraction_and_is_seeded(backend: str, jitter: float) -> None:
    runs = []
    for _ in range(2):
        state = new_route_state(
            [Limits()], Breaker(failures=1), backend=backend, jitter=jitter, seed=42
        )  # type: ignore[arg-type]
        fail(state, 0.0)
        seen = []
        now = 10.0
        for _ in range(5):
            fail(state, now)
            seen.append(state.snapshot(0, now).seconds_until_close)
            now += seen[-1]
        runs.append(seen)
    assert runs[0] == runs[1]
    for n, d in enumerate(runs[0], start=1):
        base = min(10.0 * 2**n, 300.0)
        assert base * (1 - jitter) < d <= base


def test_half_open_admits_one_trial_and_its_failure_reopens(make_state: MakeState) -> None:
    state = make_state([Limits()], Breaker(failures=1, cooldown=5.0))
    fail(state, 0.0)
    trial = state.try_acquire(0, 5.0, 0)
    assert trial.admitted
    assert trial.trial
    second = state.try_acquire(0, 5.0, 0)
    assert (second.reason, second.wait) == (Reason.TRIAL_TAKEN, None)
    state.release(0, trial.ticket, 6.0, Outcome.FAILURE)
    assert state.snapshot(0, 6.0).circuit == "open"


def test_a_not_counted_trial_frees_the_trial_without_a_verdict(make_state: MakeState) -> None:
    state = make_state([Limits()], Breaker(failures=1, cooldown=5.0))
    fail(state, 0.0)
    trial = state.try_acquire(0, 5.0, 0)
    state.release(0, trial.ticket, 5.0, Outcome.NOT_COUNTED)
    assert state.snapshot(0, 5.0).circuit == "half_open"
    assert state.try_acquire(0, 5.0, 0).trial


def test_caller_errors_never_count(make_state: MakeState) -> None:
    state = make_state([Limits()], Breaker(failures=2, min_calls=1, failure_rate=0.1))
    for t in range(20):
        a = state.try_acquire(0, float(t), 0)
        state.release(0, a.ticket, float(t), Outcome.NOT_COUNTED)
    assert state.snapshot(0, 20.0).circuit == "closed"


def test_calls_from_before_the_opening_do_not_count_later(make_state: MakeState) -> None:
    state = make_state([Limits()], Breaker(failures=1, cooldown=5.0))
    straggler = state.try_acquire(0, 0.0, 0)
    fail(state, 0.0)  # opens
    succeed(state, 5.0)  # the trial closes it
    state.release(0, straggler.ticket, 6.0, Outcome.FAILURE)
    assert state.snapshot(0, 6.0).circuit == "closed"


def test_no_breaker_never_opens(make_state: MakeState) -> None:
    state = make_state([Limits()], None)
    for t in range(50):
        fail(state, float(t), retry_after=30.0)
    assert state.snapshot(0, 50.0).circuit == "closed"
