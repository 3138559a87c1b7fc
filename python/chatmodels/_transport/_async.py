"""The async transport: aiohttp (imported on first use), one session per event loop, and
`AsyncStream`, an open response read as it arrives. A session left on a loop that is busy
or closed is shut down without awaiting it (`_abandon`), the one use of aiohttp's private
names (`AIOHTTP_PRIVATE`)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .._errors import ChatModelError
from .._observe import NOOP_SCOPE, CallScope
from ._base import Expired, TransportBase, header_fault, shared_ssl_context
from ._framing import body_too_large, decode_body, inflater
from ._sync import READ_SIZE
from ._wire import Headers, WireRequest, WireResponse

if TYPE_CHECKING:
    import aiohttp

if sys.version_info >= (3, 11):
    from asyncio import timeout_at as _timeout_at
else:  # aiohttp requires async-timeout before 3.11
    from async_timeout import timeout_at as _timeout_at  # type: ignore[import-not-found]

__all__ = ["AIOHTTP_PRIVATE", "AsyncStream", "AsyncTransport"]

_running_loop = asyncio.get_running_loop


async def _read_async(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Async `_read_sync`."""
    length = resp.content_length
    if length is not None:
        if length > limit:
            raise body_too_large(limit)
        return await resp.read()
    parts: list[bytes] = []
    size = 0
    readany = resp.content.readany
    while data := await readany():
        size += len(data)
        if size > limit:
            raise body_too_large(limit)
        parts.append(data)
    return b"".join(parts)


class AsyncTransport(TransportBase):
    """The async half of `Transport`: its session, `arequest`, `astream` and `aclose`."""

    async def _asession(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._session_loop is loop and not session.closed:
            return session
        import aiohttp

        if session is not None:
            _abandon(session, self._session_loop)
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            ssl=shared_ssl_context() if self.https else False,
            ttl_dns_cache=300,
        )
        # The deadline (one timer per call) bounds the rest. The connect timeout bounds
        # opening a connection, not waiting for a pooled one: with more calls in flight than
        # connections, a queued call is not a connection failure.
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
            skip_auto_headers=("User-Agent", "Content-Type"),
            headers={"Accept-Encoding": "identity"},  # as the sync path; decoded here
            auto_decompress=False,
        )
        self._session, self._session_loop = session, loop
        return session

    async def _asend(self, req: WireRequest) -> aiohttp.ClientResponse:
        session = self._session
        if session is None or session.closed or self._session_loop is not _running_loop():
            session = await self._asession()
        headers = req.headers
        for name, value in headers.items():  # aiohttp would send what the sync path refuses
            if not (value.isascii() and value.isprintable() and name.isascii()) and (
                header_fault(name) or header_fault(value)
            ):
                raise self._header_error(headers)
        try:
            return await session.request(
                req.method,
                self._origin + self.base_path + req.path,
                data=req.body,
                headers=req.headers,
                allow_redirects=False,
            )
        except (UnicodeError, ValueError):
            # aiohttp's refusal of a header quotes its value: refused as on sync, raised
            # outside the handler so that it is not the error's context.
            if not any(header_fault(k) or header_fault(v) for k, v in req.headers.items()):
                raise
        raise self._header_error(req.headers)

    def _atimeout(self, exc: BaseException, limit: float) -> BaseException:
        """A timeout as the limit that ran out: the deadline's timer, or aiohttp's connect
        timeout (a `ServerTimeoutError`, raised with time left)."""
        if not isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            return exc
        if type(exc).__name__ in ("ConnectionTimeoutError", "ServerTimeoutError"):
            return Expired("connect", self.connect_timeout)
        return Expired("deadline", limit)

    async def arequest(
        self,
        req: WireRequest,
        *,
        timeout: float | None = None,
        scope: CallScope = NOOP_SCOPE,
        retries: int | None = None,
    ) -> WireResponse:
        """Async `request`."""
        self._check_open()
        limit = timeout if timeout is not None else self.timeout
        clock = _running_loop().time
        deadline = clock() + limit
        last = (self.max_retries if retries is None else retries) + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                async with _timeout_at(deadline):
                    resp = await self._asend(req)
                    try:
                        body = await _read_async(resp, self.max_response_bytes)
                    except BaseException:
                        resp.close()
                        raise
                    resp.release()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _is_transport_exc(exc):
                    raise
                left = deadline - clock()
                failure = self._atimeout(exc, limit)
                error, delay = self._after_failure(attempt, last, failure, scope, left)
                if delay is None:
                    raise error from exc
                await asyncio.sleep(delay)
                continue
            headers: Headers = resp.headers
            delay = self._after_status(attempt, last, resp.status, headers, scope, deadline, clock)
            if delay is None:
                body = decode_body(headers, body, self.max_response_bytes)
                return WireResponse(resp.status, headers, body)
            await asyncio.sleep(delay)

    async def astream(
        self, req: WireRequest, *, timeout: float | None = None, scope: CallScope = NOOP_SCOPE
    ) -> AsyncStream:
        """Async `stream`."""
        self._check_open()
        limit = timeout if timeout is not None else self.timeout
        clock = _running_loop().time
        deadline = clock() + limit
        idle = self.stream_idle_timeout or limit
        last = self.max_retries + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                async with _timeout_at(deadline):
                    resp = await self._asend(req)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _is_transport_exc(exc):
                    raise
                left = deadline - clock()
                failure = self._atimeout(exc, limit)
                error, delay = self._after_failure(attempt, last, failure, scope, left)
                if delay is None:
                    raise error from exc
                await asyncio.sleep(delay)
                continue
            try:
                delay = self._after_status(
                    attempt, last, resp.status, resp.headers, scope, deadline, clock
                )
                if delay is None:
                    return AsyncStream(self, resp, deadline, limit, idle, clock)
            except BaseException:
                resp.close()
                raise
            resp.release()
            await asyncio.sleep(delay)

    # -- lifecycle -------------------------------------------------------------------------

    async def _close_session(self) -> None:
        """Close the session and wait for it, when it belongs to the running loop."""
        session = self._session
        if session is not None and self._session_loop is asyncio.get_running_loop():
            self._session = None
            await session.close()

    def _drop_session(self) -> None:
        """Close the session without awaiting it, whichever thread and loop call (`_abandon`)."""
        session, self._session = self._session, None
        loop, self._session_loop = self._session_loop, None
        if session is not None:
            _abandon(session, loop)


def _abandon(session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop | None) -> None:
    """Close `session` without awaiting it: on its loop if that loop runs in another thread,
    by running its loop if it is idle and this thread runs none, else by closing its
    sockets directly (a closed loop can no longer do it)."""
    connector = session.connector
    if connector is None or connector.closed:
        return
    try:
        current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    if loop is not None and not loop.is_closed():
        if loop.is_running():
            if loop is not current:
                asyncio.run_coroutine_threadsafe(session.close(), loop)
                return
        elif current is None:
            loop.run_until_complete(session.close())
            return
        # this loop's own thread: the transports close on its next iterations
        _close_connector_now(connector)
        return
    for transport in _close_connector_now(connector):
        _close_orphan(transport)


# The aiohttp names below are private: bounded by pyproject's aiohttp range, checked by
# tests/transport/test_aiohttp_private.py against the installed aiohttp (3.9 to 3.14). No public API
# closes a connector without awaiting it on its (here closed or busy) event loop.
AIOHTTP_PRIVATE = ("_close", "_conns", "_acquired", "_cleanup_closed_transports")


def _close_connector_now(connector: aiohttp.BaseConnector) -> list[Any]:
    """Mark `connector` closed without awaiting it (its loop closes the sockets, if it still
    runs) and return the asyncio transports of its connections, for a closed loop's caller to
    close itself: the one place that reads aiohttp's private names (`AIOHTTP_PRIVATE`).
    Without them, a ResourceWarning says the sockets are left to the garbage collector."""
    try:
        conns: Any = connector._conns
        protocols: list[Any] = [proto for pairs in conns.values() for proto, _ in pairs]
        protocols.extend(connector._acquired)
        transports = [proto.transport for proto in protocols if proto.transport is not None]
        transports.extend(connector._cleanup_closed_transports)
        close = connector._close
    except AttributeError as exc:
        import warnings

        import aiohttp

        warnings.warn(
            f"aiohttp {getattr(aiohttp, '__version__', '?')} changed {exc.name or exc}: "
            "chatmodels cannot close an abandoned session's sockets",
            ResourceWarning,
            stacklevel=2,
        )
        return []
    with contextlib.suppress(Exception):
        close()  # marks it closed; with its loop closed it closes nothing
    return [transport for transport in transports if transport is not None]


def _close_orphan(transport: Any) -> None:
    """Close the socket of an asyncio transport whose event loop is closed."""
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    with contextlib.suppress(Exception):
        transport.abort()  # marks it closed; scheduling the rest fails on a closed loop
    if inner is not None:
        _close_orphan(inner)
        return
    lost = getattr(transport, "_call_connection_lost", None)  # what abort would have scheduled
    if lost is not None:
        with contextlib.suppress(Exception):
            lost(None)


_transport_excs: tuple[type[BaseException], ...] | None = None


def _is_transport_exc(exc: BaseException) -> bool:
    global _transport_excs
    if _transport_excs is None:
        import aiohttp

        _transport_excs = (aiohttp.ClientError, OSError, asyncio.TimeoutError)
    return isinstance(exc, _transport_excs)


class AsyncStream:
    """An open async response; see `SyncStream`."""

    __slots__ = (
        "_clock",
        "_done",
        "_idle",
        "_inflate",
        "_kind",
        "_resp",
        "_seconds",
        "_transport",
        "_until",
        "headers",
        "status",
    )

    def __init__(
        self,
        transport: AsyncTransport,
        resp: aiohttp.ClientResponse,
        deadline: float,
        limit: float,
        idle: float,
        clock: Any,
    ) -> None:
        self._transport = transport
        self._resp: aiohttp.ClientResponse | None = resp
        self._until = deadline
        self._kind = "deadline"
        self._seconds = limit
        self._idle = idle
        self._clock = clock
        self._inflate = inflater(resp.headers) if resp.status < 300 else None
        self._done = False
        self.status = resp.status
        self.headers: Headers = resp.headers

    def touch(self) -> None:
        """`SyncStream.touch`."""
        self._until = self._clock() + self._idle
        self._kind, self._seconds = "idle", self._idle

    def _failed(self, exc: Exception) -> ChatModelError:
        self.close()
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            exc = Expired(self._kind, self._seconds)
        return self._transport._exc_to_error(exc)

    async def read(self) -> bytes:
        """The body's next bytes as they arrive (inflated, when compressed); ``b""`` at its
        end.

        A coroutine rather than an async generator: a caller that stops at the stream's end
        marker leaves no suspended generator for the event loop to finalise in a task.
        """
        resp = self._resp
        if resp is None:
            return b""
        inflate = self._inflate
        try:
            while True:
                if inflate is not None and inflate.tail:
                    data = inflate.step(inflate.tail)
                else:
                    async with _timeout_at(self._until):
                        data = await resp.content.readany()
                    if not data:
                        self._done = True
                        return data
                    if inflate is not None:
                        data = inflate.step(data)
                if data:
                    return data
        except asyncio.CancelledError:
            self.close()
            raise
        except ChatModelError:
            self.close()
            raise
        except Exception as exc:
            if not _is_transport_exc(exc):
                self.close()
                raise
            raise self._failed(exc) from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (see `read`)."""
        while data := await self.read():
            yield data

    async def drain(self, limit: int = READ_SIZE) -> None:
        """Async `SyncStream.drain`."""
        resp = self._resp
        if resp is None:
            return
        if resp.content.at_eof():  # the usual case: the end came in the last read
            self._done = True
            self.close()
            return
        try:
            async with _timeout_at(self._until):
                while limit > 0:
                    data = await resp.content.read(limit)
                    if not data:
                        self._done = True
                        break
                    limit -= len(data)
        except asyncio.CancelledError:
            self.close()
            raise
        except Exception as exc:
            if not _is_transport_exc(exc):
                raise
        self.close()

    async def body(self) -> bytes:
        """The whole body, decoded (at most `max_response_bytes`)."""
        resp = self._resp
        if resp is None:
            return b""
        limit = self._transport.max_response_bytes
        try:
            async with _timeout_at(self._until):
                data = await _read_async(resp, limit)
            self._done = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not _is_transport_exc(exc):
                raise
            raise self._failed(exc) from exc
        finally:
            self.close()
        return decode_body(self.headers, data, limit)

    def close(self) -> None:
        """Release the connection: to the pool after a full read, else closed."""
        resp, self._resp = self._resp, None
        if resp is None:
            return
        if self._done:
            resp.release()
        else:
            resp.close()
