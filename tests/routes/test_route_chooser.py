"""The state interface's decisions called directly, on the Rust core and the twin: `choose`
(eligibility, limits, the half-open trial), `finish` with each outcome, and `CallGate`."""

from __future__ import annotations

from typing import Any

import pytest
from chatmodels._routes._state import (
    Limits,
    Outcome,
    Plan,
    Reason,
    Transition,
    new_call_gate,
    new_route_state,
)
from chatmodels._routes._types import Breaker

TOOLS, VISION = 0b01, 0b10


def state(
    backend: str,
    limits: list[Limits],
    breaker: Breaker | None = None,
    masks: list[int] | None = None,
    windows: list[int | None] | None = None,
) -> Any:
    n = len(limits)
    plan = Plan("priority", [1.0] * n, masks or [-1 & (2**64 - 1)] * n, windows or [None] * n)
    return new_route_state(limits, breaker, backend=backend, jitter=0.0, seed=1, plan=plan)  # type: ignore[arg-type]


def test_choose_takes_the_first_eligible(backend: str) -> None:
    s = state(backend, [Limits()] * 3, masks=[TOOLS, TOOLS | VISION, TOOLS | VISION],
              windows=[None, 100, 1000])  # fmt: skip
    assert s.choose(0.0, 10).index == 0
    assert s.choose(0.0, 10, VISION).index == 1  # 0 lacks vision
    assert s.choose(0.0, 500, VISION).index == 2  # 1's window is smaller than the estimate
    assert s.choose(0.0, 10, VISION, (1,)).index == 2  # 1 was tried
    assert s.choose(0.0, 10, 0, (), 100).index == 2  # a window larger than 100 (0 has none)
    for refused in (s.choose(0.0, 10, 0, (), 1000), s.choose(0.0, 10, 0b100)):
        assert (refused.admitted, refused.index) == (False, -1)
        assert refused.reason == Reason.CIRCUIT_OPEN
        assert refused.wait is None
    assert [s.in_flight(i) for i in range(3)] == [1, 1, 3]  # five admitted, none refused


def test_choose_skips_deployments_at_their_limits(backend: str) -> None:
    s = state(backend, [Limits(rpm=1), Limits(max_concurrency=1), Limits(rpm=2)])
    assert s.choose(0.0, 1).index == 0
    second = s.choose(1.0, 1)
    assert second.index == 1  # 0 used its rpm
    assert s.choose(2.0, 1).index == 2  # 1 is at its concurrency cap
    assert s.choose(3.0, 1).index == 2
    refused = s.choose(4.0, 1)
    # every deployment is at a limit: the rate-limited refusal with the shortest wait
    assert (refused.reason, refused.index, refused.wait) == (Reason.RPM, 0, 56.0)
    assert s.finish(second, 5.0, Outcome.SUCCESS) == Transition.NONE
    assert s.choose(5.0, 1).index == 1  # its slot came back
    assert s.choose(60.0, 1).index == 0  # the first request left 0's window


def test_half_open_lets_one_trial_through(backend: str) -> None:
    s = state(backend, [Limits(), Limits()], Breaker(failures=1, cooldown=10.0, max_cooldown=60.0))
    first = s.choose(0.0, 1)
    assert (first.index, first.trial) == (0, False)
    assert s.finish(first, 0.0, Outcome.FAILURE) == Transition.OPENED
    assert s.choose(9.0, 1).index == 1  # 0 is open
    trial = s.choose(10.0, 1)
    assert (trial.index, trial.trial) == (0, True)
    other = s.choose(10.0, 1)
    assert (other.index, other.trial) == (1, False)  # the trial is in flight: elsewhere
    assert s.try_acquire(0, 10.0, 1).reason == Reason.TRIAL_TAKEN
    assert s.finish(trial, 11.0, Outcome.FAILURE) == Transition.OPENED  # open again...
    assert s.snapshot(0, 11.0).seconds_until_close == 20.0  # ...for twice the cooldown
    trial = s.choose(31.0, 1)
    assert trial.trial
    assert s.finish(trial, 31.0, Outcome.SUCCESS) == Transition.CLOSED
    assert s.snapshot(0, 31.0).circuit == "closed"
    assert s.finish(other, 32.0, Outcome.SUCCESS) == Transition.NONE


def test_finish_with_each_outcome(backend: str) -> None:
    s = state(backend, [Limits(tpm=1000)], Breaker(failures=2, cooldown=10.0))
    a = s.choose(0.0, 400)
    assert s.finish(a, 1.0, Outcome.SUCCESS, 100, 0.5) == Transition.NONE
    snap = s.snapshot(0, 1.0)
    assert (snap.in_flight, snap.tpm_left, snap.latency) == (0, 900, 0.5)  # tokens corrected
    b = s.choose(2.0, 10)
    assert s.finish(b, 2.0, Outcome.FAILURE) == Transition.NONE  # one failure of two
    for _ in range(3):  # a caller's error never counts toward opening
        c = s.choose(3.0, 10)
        assert s.finish(c, 3.0, Outcome.NOT_COUNTED) == Transition.NONE
    assert s.snapshot(0, 3.0).circuit == "closed"
    d = s.choose(4.0, 10)
    assert s.finish(d, 4.0, Outcome.FAILURE) == Transition.OPENED  # the second in a row
    snap = s.snapshot(0, 4.0)
    assert (snap.circuit, snap.seconds_until_close, snap.in_flight) == ("open", 10.0, 0)
    assert snap.latency == 0.5  # failures leave the latency average alone
    refused = s.choose(5.0, 10)
    assert (refused.reason, refused.wait) == (Reason.CIRCUIT_OPEN, 9.0)
    trial = s.choose(14.0, 10)
    assert s.finish(trial, 14.0, Outcome.FAILURE, None, None, 30.0) == Transition.OPENED
    assert s.snapshot(0, 14.0).seconds_until_close == 30.0  # Retry-After: exactly that long


@pytest.mark.parametrize("retire_first", [True, False])
def test_call_gate(backend: str, retire_first: bool) -> None:
    gate = new_call_gate(backend)  # type: ignore[arg-type]
    assert (gate.active, gate.retired) == (0, False)
    assert gate.enter()
    assert gate.enter()
    assert gate.active == 2
    if retire_first:
        assert gate.retire() is False  # calls in flight: the last exit closes
        assert gate.enter() is False  # retired: refused...
        assert gate.active == 2  # ...and not counted
        assert gate.exit() is False
        assert gate.exit() is True  # the last one out of a retired gate
    else:
        assert gate.exit() is False  # not retired: nothing to close
        assert gate.exit() is False
        assert gate.retire() is True  # retired idle: this closes
    assert gate.exit() is False  # nothing left to count out
    assert (gate.active, gate.retired) == (0, True)
    assert gate.retire() is False  # only once
