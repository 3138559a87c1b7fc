"""The retry decision (`chatmodels._transport._retry`) on its own: which statuses retry, what
a Retry-After asks in each of its forms, the backoff's bounds, and the waits refused."""

from __future__ import annotations

import email.utils
import time

import pytest
from chatmodels._transport._retry import (
    MAX_RETRY_AFTER,
    backoff_delay,
    delay_after_failure,
    delay_after_status,
    retry_after,
    retry_after_of,
    retryable_status,
)


class _Headers(dict[str, str]):
    """Lower-case header lookup, as http.client's and aiohttp's headers give it."""

    def get(self, name: str, default: str | None = None, /) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)


def _headers(**values: str) -> _Headers:
    return _Headers({name.replace("_", "-"): value for name, value in values.items()})


def _clock() -> float:
    return 0.0


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 599])
def test_statuses_that_may_succeed_again_retry(status: int) -> None:
    assert retryable_status(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_statuses_that_will_fail_again_do_not(status: int) -> None:
    assert not retryable_status(status)


def test_retry_after_forms() -> None:
    assert retry_after(_headers()) is None
    assert retry_after(_headers(retry_after="3")) == 3.0
    assert retry_after(_headers(retry_after="0.5")) == 0.5
    assert retry_after(_headers(retry_after="-4")) == 0.0  # never a negative wait
    assert retry_after(_headers(retry_after_ms="250")) == 0.25
    # retry-after-ms wins over Retry-After; an unreadable one falls back to it
    assert retry_after(_headers(retry_after_ms="100", retry_after="9")) == 0.1
    assert retry_after(_headers(retry_after_ms="soon", retry_after="9")) == 9.0
    assert retry_after(_headers(retry_after="whenever")) is None


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    wait = retry_after(_headers(retry_after=later))
    assert wait is not None
    assert 28.0 <= wait <= 30.0
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert retry_after(_headers(retry_after=past)) == 0.0


def test_retry_after_of_reads_only_429_and_503_and_under_a_day() -> None:
    asked = _headers(retry_after="7")
    assert retry_after_of(429, asked) == 7.0
    assert retry_after_of(503, asked) == 7.0
    assert retry_after_of(500, asked) is None
    assert retry_after_of(400, asked) is None
    assert retry_after_of(429, _headers(retry_after=str(86_400))) is None
    assert retry_after_of(429, _headers()) is None


def test_backoff_doubles_with_jitter_up_to_eight_seconds() -> None:
    for attempt, base in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)):
        waits = [backoff_delay(attempt) for _ in range(200)]
        assert all(0.75 * base <= wait <= base for wait in waits), (attempt, min(waits))
        assert len(set(waits)) > 1  # jittered
    assert backoff_delay(1, 12.5) == 12.5  # the server's wait, as given


def test_delay_after_status() -> None:
    deadline = 100.0
    # not retryable, or the tries spent: the response goes to the caller
    assert delay_after_status(1, 3, 400, _headers(), deadline, _clock) is None
    assert delay_after_status(3, 3, 503, _headers(), deadline, _clock) is None
    # retryable with tries left: the backoff, or the server's Retry-After
    delay = delay_after_status(1, 3, 503, _headers(), deadline, _clock)
    assert delay is not None
    assert 0.375 <= delay <= 0.5
    assert delay_after_status(2, 3, 429, _headers(retry_after="2"), deadline, _clock) == 2.0
    # a Retry-After too long to wait, or past the deadline: not waited for
    too_long = _headers(retry_after=str(MAX_RETRY_AFTER + 1))
    assert delay_after_status(1, 3, 429, too_long, deadline, _clock) is None
    assert delay_after_status(1, 3, 429, _headers(retry_after="5"), 4.0, _clock) is None


def test_delay_after_failure() -> None:
    delay = delay_after_failure(2, 3, left=10.0)
    assert delay is not None
    assert 0.75 <= delay <= 1.0
    assert delay_after_failure(3, 3, left=10.0) is None  # tries spent
    assert delay_after_failure(1, 3, left=0.1) is None  # the wait would outlast the deadline
