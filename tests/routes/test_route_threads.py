"""8 threads hammering one route state: calls in flight never exceed max_concurrency, rpm is
never exceeded, and every count balances at the end (on free-threaded CPython too)."""

from __future__ import annotations

import threading

from chatmodels._routes._state import Limits, Outcome
from chatmodels._routes._types import Breaker
from route_helpers import MakeState

THREADS = 8
CALLS = 2_000
CAP = 3
RPM = 5_000


def test_threads_never_exceed_the_limits_and_counts_balance(make_state: MakeState) -> None:
    state = make_state([Limits(rpm=RPM, tpm=10**9, max_concurrency=CAP), Limits()], Breaker())
    guard = threading.Lock()
    flying = 0
    peak = 0
    admitted = [0] * THREADS
    tokens = [0] * THREADS
    start = threading.Barrier(THREADS)

    def work(me: int) -> None:
        nonlocal flying, peak
        start.wait()
        for n in range(CALLS):
            a = state.try_acquire(0, 0.0, 10)
            if not a.admitted:
                state.in_flight(1)  # a lock-free read beside the writers
                continue
            with guard:
                flying += 1
                peak = max(peak, flying)
            assert state.in_flight(0) <= CAP
            with guard:
                flying -= 1
            actual = n % 7
            admitted[me] += 1
            tokens[me] += actual
            outcome = Outcome.SUCCESS if n % 2 else Outcome.NOT_COUNTED
            state.release(0, a.ticket, 0.0, outcome, actual_tokens=actual, latency=0.01)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = state.snapshot(0, 0.0)
    assert peak <= CAP
    assert snap.in_flight == state.in_flight(0) == 0
    assert sum(admitted) == RPM - snap.rpm_left  # every admission is in the window once
    assert sum(admitted) <= RPM
    assert snap.tpm_left == 10**9 - sum(tokens)  # every estimate was corrected
    assert snap.circuit == "closed"
    assert state.latency(0) == 0.01


def test_one_trial_among_threads(make_state: MakeState) -> None:
    state = make_state([Limits()], Breaker(failures=1, cooldown=1.0))
    a = state.try_acquire(0, 0.0, 0)
    state.release(0, a.ticket, 0.0, Outcome.FAILURE)
    start = threading.Barrier(THREADS)
    trials: list[int] = []

    def work() -> None:
        start.wait()
        for _ in range(200):
            answer = state.try_acquire(0, 5.0, 0)
            if answer.admitted:
                trials.append(answer.ticket)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trials) == 1
