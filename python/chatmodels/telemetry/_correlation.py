"""Correlation ids: one id per operation, carried in a contextvar from the registry to the
provider, its retries, its log records and `ChatModelError.correlation_id`.

The id is the trace id (32 hex digits) when a span is recording, else a generated id of the
same shape, so one search finds the spans and the log records of a failed call.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

__all__ = ["correlation_scope", "current_correlation_id", "new_correlation_id"]

_CORRELATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "chatmodels_correlation_id", default=None
)


def new_correlation_id() -> str:
    """A fresh id shaped like a W3C trace id."""
    return os.urandom(16).hex()


def current_correlation_id() -> str | None:
    """The correlation id of the operation running in this context, if any."""
    return _CORRELATION.get()


def set_correlation_id(value: str | None) -> contextvars.Token[str | None]:
    """Set the id for this context; give the token to `reset_correlation_id`."""
    return _CORRELATION.set(value)


def reset_correlation_id(token: contextvars.Token[str | None]) -> None:
    """Undo `set_correlation_id`; a token from another context is ignored."""
    with contextlib.suppress(ValueError):  # a stream may finish in another context
        _CORRELATION.reset(token)


@contextlib.contextmanager
def correlation_scope(correlation_id: str | None = None) -> Iterator[str]:
    """Run a block under one correlation id (given, inherited, or new) and yield it."""
    value = correlation_id or _CORRELATION.get() or new_correlation_id()
    token = _CORRELATION.set(value)
    try:
        yield value
    finally:
        _CORRELATION.reset(token)
