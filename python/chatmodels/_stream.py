"""The streams a chat call hands out: `ChatStream` and its async twin `AsyncChatStream`.

A stream hands out the chunks of the batches its provider yields (one batch per network
read), tells the call's `CallScope` of each batch and accumulates what its `end` needs, and
ends the scope exactly once: exhausted, failed, closed early or garbage-collected.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Sequence
from typing import Protocol

from . import _observe
from ._observe import CallScope
from ._types import Accumulator, ChatChunk

__all__ = ["AsyncChatStream", "ChatStream"]


class _Source(Protocol):
    """What a stream needs of the model it comes from (a `ChatModel`)."""

    @property
    def provider(self) -> str: ...

    def _failed(self, scope: CallScope, exc: BaseException, op: str) -> BaseException: ...


def _end_early(stream: _Stream) -> None:
    """End a stream's scope as closed early."""
    stream._buf = ()
    if not stream._ended:
        stream._ended = True
        stream._scope.close()


def _observe_batch(stream: _Stream, batch: Sequence[ChatChunk]) -> None:
    """Tell the scope (and the accumulator its `end` needs) about chunks that arrived."""
    acc = stream._acc
    if acc is None:
        return
    for chunk in batch:
        acc.add(chunk)
    stream._scope.chunk_batch(batch)


class _Stream:
    """What `ChatStream` and `AsyncChatStream` share: the batches still to hand out, the
    chunk being handed out, the call's telemetry scope and what it has accumulated."""

    __slots__ = (
        "_acc",
        "_batches",
        "_buf",
        "_ended",
        "_i",
        "_model",
        "_op",
        "_scope",
        "_start",
    )

    def __init__(
        self,
        batches: Iterator[Sequence[ChatChunk]] | AsyncIterator[Sequence[ChatChunk]],
        scope: CallScope,
        model: _Source,
        op: str,
    ) -> None:
        self._batches = batches
        self._buf: Sequence[ChatChunk] = ()
        self._i = 0
        self._scope = scope
        self._model = model
        self._op = op
        self._ended = False
        # A scope that reads no chunks (the no-op one, or telemetry with nothing installed
        # behind it) costs the stream nothing per chunk, and its `end` is given None.
        self._acc = Accumulator() if scope.observes_chunks else None
        self._start = time.perf_counter()

    @property
    def provider(self) -> str:
        """The provider this stream comes from."""
        return self._model.provider

    def _deliver(self, batch: Sequence[ChatChunk]) -> ChatChunk:
        """Start handing out a new (non-empty) batch: observe it, return its first chunk."""
        self._buf, self._i = batch, 1
        if self._acc is not None:
            try:
                _observe_batch(self, batch)
            except Exception as exc:  # telemetry never breaks a call
                _observe.telemetry_failed(exc, "chunk")
        return batch[0]

    def _finish(self) -> None:
        """The batches are exhausted: end the call with what arrived (once)."""
        self._buf = ()
        if self._ended:
            return
        self._ended = True
        acc = self._acc
        try:
            if acc is not None:
                latency = time.perf_counter() - self._start
                self._scope.end(acc.response(self._model.provider, latency))
            else:
                self._scope.end(None)
        except Exception as exc:  # what telemetry accumulated never breaks a call
            _observe.telemetry_failed(exc, "end")
            try:  # the scope still ends (as closed early): its span, its correlation id
                self._scope.close()
            except Exception as also:
                _observe.telemetry_failed(also, "close")

    def _failed(self, exc: BaseException) -> BaseException:
        """The batches raised: end the call as failed; the error the caller should see."""
        self._buf = ()
        self._ended = True
        return self._model._failed(self._scope, exc, self._op)


class ChatStream(_Stream):
    """A stream of `ChatChunk`s; iterate it, and close it (or use ``with``) to stop early.

    The call's telemetry scope ends exactly once: when the stream is exhausted, fails, is
    closed, or is garbage-collected.
    """

    __slots__ = ()

    _batches: Iterator[Sequence[ChatChunk]]

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> ChatChunk:
        buf, i = self._buf, self._i
        if i < len(buf):
            self._i = i + 1
            return buf[i]
        if self._ended:
            raise StopIteration
        batches = self._batches
        try:
            buf = next(batches)
            while not buf:
                buf = next(batches)
        except StopIteration:
            self._finish()
            raise
        except BaseException as exc:
            error = self._failed(exc)
            if error is exc:
                raise
            raise error from exc
        return self._deliver(buf)

    def close(self) -> None:
        """Stop early: release the connection and end the call as closed early."""
        self._buf = ()
        if not self._ended:
            batches = self._batches
            try:
                if isinstance(batches, Generator):  # a plain iterator holds nothing to release
                    batches.close()
            finally:
                _end_early(self)

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._ended:
            self.close()


class AsyncChatStream(_Stream):
    """The async twin of `ChatStream`: ``async for``, `aclose()`, ``async with``."""

    __slots__ = ()

    _batches: AsyncIterator[Sequence[ChatChunk]]

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> ChatChunk:
        buf, i = self._buf, self._i
        if i < len(buf):
            self._i = i + 1
            return buf[i]
        if self._ended:
            raise StopAsyncIteration
        batches = self._batches
        try:
            buf = await batches.__anext__()
            while not buf:
                buf = await batches.__anext__()
        except StopAsyncIteration:
            self._finish()
            raise
        except BaseException as exc:
            error = self._failed(exc)
            if error is exc:
                raise
            raise error from exc
        return self._deliver(buf)

    async def aclose(self) -> None:
        """Stop early: release the connection and end the call as closed early."""
        self._buf = ()
        if not self._ended:
            batches = self._batches
            try:
                if isinstance(batches, AsyncGenerator):
                    await batches.aclose()
            finally:
                _end_early(self)

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # The async generator is finalised by the event loop; the scope ends here.
        if not self._ended:
            _end_early(self)
