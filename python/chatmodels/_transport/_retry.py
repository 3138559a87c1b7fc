"""The retry decision: which HTTP statuses may succeed if tried again, how long to wait
before the next attempt (exponential backoff with jitter), and what a Retry-After asks."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable

from ._wire import Headers

__all__ = [
    "MAX_RETRY_AFTER",
    "backoff_delay",
    "delay_after_failure",
    "delay_after_status",
    "retry_after",
    "retry_after_of",
    "retryable_status",
]

MAX_RETRY_AFTER = 60.0
_RETRY_STATUSES = frozenset({408, 409, 429})


def retryable_status(status: int) -> bool:
    """Whether an HTTP error status may succeed when tried again (408, 409, 429, 5xx)."""
    return status >= 500 or status in _RETRY_STATUSES


def retry_after(headers: Headers) -> float | None:
    """Seconds the server asked us to wait, from retry-after-ms or Retry-After."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_after_of(status: int, headers: Headers) -> float | None:
    """The seconds a 429 or 503 asks to wait (its Retry-After), else None."""
    if status != 429 and status != 503:
        return None
    wait = retry_after(headers)
    return wait if wait is not None and wait < 86_400.0 else None


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1-based): the server's Retry-After when
    it gave one, else 0.5 s doubling up to 8 s, with jitter."""
    if retry_after is not None:
        return retry_after
    base: float = min(8.0, 0.5 * 2 ** (attempt - 1))
    return base * (1 - 0.25 * random.random())


def delay_after_status(
    attempt: int,
    last: int,
    status: int,
    headers: Headers,
    deadline: float,
    clock: Callable[[], float],
) -> float | None:
    """Seconds to wait before trying again after attempt `attempt` of `last` got the error
    `status`; None to hand the response to the caller: the status is not retryable, the tries
    are spent, its Retry-After is over `MAX_RETRY_AFTER`, or the wait would end past
    `deadline` (on `clock`)."""
    if not retryable_status(status) or attempt >= last:
        return None
    wait = retry_after(headers)
    if wait is not None and wait > MAX_RETRY_AFTER:
        return None
    delay = backoff_delay(attempt, wait)
    return delay if delay < deadline - clock() else None


def delay_after_failure(attempt: int, last: int, left: float) -> float | None:
    """Seconds to wait before trying again after attempt `attempt` of `last` failed (no
    response: a connection failure or a timeout); None when the tries are spent or the wait
    would not end `left` seconds from now."""
    if attempt >= last:
        return None
    delay = backoff_delay(attempt)
    return delay if delay < left else None
