"""The transport: the only place that opens sockets.

Sync calls use `http.client` with a pool of keep-alive connections per transport; async calls
use aiohttp (imported on first async use), one session per event loop. Both retry what may
succeed again (connection failures, timeouts, HTTP 408/429/5xx) up to `max_retries` times
with exponential backoff and jitter, honouring Retry-After. Streams are framed by push
decoders (`SSEDecoder`, `NDJSONDecoder`) that work the same for sync and async bodies, and a
stream closed before its end closes its connection rather than returning it to the pool.

Errors are born here only for what the transport understands (timeout, network,
cancelled); an HTTP error status is returned to the caller, whose adapter reads the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import http.client
import random
import re
import ssl
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from ._errors import ChatModelError, make_error, redact
from ._observe import NOOP_SCOPE, CallScope

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "NDJSONDecoder",
    "SSEDecoder",
    "Transport",
    "WireRequest",
    "WireResponse",
    "code_for_status",
    "shared_ssl_context",
]

DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
MAX_RETRY_AFTER = 60.0
_RETRY_STATUSES = frozenset({408, 409, 429})
_READ_SIZE = 65536
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BAD_URL_CHAR = re.compile("[\x00-\x20\x7f]")


@dataclasses.dataclass(frozen=True, slots=True)
class WireRequest:
    """An HTTP request as an adapter builds it; `path` is relative to the base URL's path."""

    method: str
    path: str
    headers: Mapping[str, str] = dataclasses.field(repr=False)
    body: bytes | None = dataclasses.field(default=None, repr=False)


class Headers(Protocol):
    """Case-insensitive header lookup (http.client's and aiohttp's both qualify)."""

    def get(self, name: str, /) -> str | None: ...


@dataclasses.dataclass(slots=True)
class WireResponse:
    """An HTTP response: status, headers (case-insensitive `get`) and the whole body."""

    status: int
    headers: Headers
    body: bytes

    @property
    def request_id(self) -> str | None:
        """The provider's request id, from the usual headers."""
        return request_id_of(self.headers)


def request_id_of(headers: Headers) -> str | None:
    """The request id a provider sent in its headers, if any."""
    for name in ("x-request-id", "request-id", "x-amzn-requestid", "x-goog-request-id", "cf-ray"):
        value = headers.get(name)
        if value:
            return value
    return None


def code_for_status(status: int) -> str:
    """The error code an HTTP error status means when the body says nothing more."""
    if status == 401:
        return "authentication"
    if status == 403:
        return "permission_denied"
    if status == 429:
        return "rate_limited"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "provider_unavailable"
    return "bad_request"


_HEADER_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def _header_fault(text: str) -> str | None:
    """Why `text` cannot be sent as a header name or value (None: it can)."""
    if not isinstance(text, str):
        return "is not a str"
    if _HEADER_CONTROL.search(text):
        return "contains a control character (CR, LF, ...)"
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return "is not latin-1 text"
    return None


def _shown_name(name: object) -> str:
    """A header's name for an error: itself when it is printable, else a placeholder."""
    if isinstance(name, str) and name.isprintable() and name.isascii() and len(name) <= 64:
        return repr(name)
    return "(a name that cannot be sent)"


def _retryable_status(status: int) -> bool:
    return status >= 500 or status in _RETRY_STATUSES


def _retry_after(headers: Headers) -> float | None:
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
    wait = _retry_after(headers)
    return wait if wait is not None and wait < 86_400.0 else None


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1-based): the server's Retry-After when
    it gave one, else 0.5 s doubling up to 8 s, with jitter."""
    if retry_after is not None:
        return retry_after
    base: float = min(8.0, 0.5 * 2 ** (attempt - 1))
    return base * (1 - 0.25 * random.random())


_ssl_context: ssl.SSLContext | None = None
_ssl_lock = threading.Lock()


def shared_ssl_context() -> ssl.SSLContext:
    """The TLS context every transport shares (building one costs milliseconds)."""
    global _ssl_context
    ctx = _ssl_context
    if ctx is None:
        with _ssl_lock:
            ctx = _ssl_context
            if ctx is None:
                ctx = _ssl_context = ssl.create_default_context()
    return ctx


# -- framing -------------------------------------------------------------------------------


class FrameDecoder(Protocol):
    """Turns body bytes, fed as they arrive, into events."""

    def feed(self, data: bytes) -> list[Any]:
        """Events completed by `data`."""

    def flush(self) -> list[Any]:
        """Events left when the body ends."""


class _Lines:
    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def split(self, data: bytes) -> list[bytes]:
        if self._rest:
            data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        return lines

    def tail(self) -> bytes:
        rest, self._rest = self._rest, b""
        return rest


class SSEDecoder:
    """Server-sent events: yields ``(event_name or None, data bytes)`` per event."""

    __slots__ = ("_data", "_event", "_lines")

    def __init__(self) -> None:
        self._lines = _Lines()
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, data: bytes) -> list[tuple[str | None, bytes]]:
        """Events completed by `data`."""
        out: list[tuple[str | None, bytes]] = []
        pending = self._data
        # `_line` inlined for the usual lines (a stream is mostly "data: {...}" and blanks).
        for line in self._lines.split(data):
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                if pending:
                    out.append(
                        (self._event, pending[0] if len(pending) == 1 else b"\n".join(pending))
                    )
                    pending.clear()
                self._event = None
            elif line[:6] == b"data: ":
                pending.append(line[6:])
            else:
                self._line(line, out)
        return out

    def flush(self) -> list[tuple[str | None, bytes]]:
        """The last event, when the body did not end with a blank line."""
        out: list[tuple[str | None, bytes]] = []
        tail = self._lines.tail()
        if tail:
            self._line(tail, out)
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[tuple[str | None, bytes]]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if self._data:
                out.append((self._event, b"\n".join(self._data)))
                self._data = []
            self._event = None
            return
        if line.startswith(b"data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            self._event = line[6:].strip().decode("utf-8", "replace")
        # comments (":") and id/retry fields carry nothing a chat stream needs


class NDJSONDecoder:
    """Newline-delimited JSON: yields each non-empty line's bytes."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines = _Lines()

    def feed(self, data: bytes) -> list[bytes]:
        """Lines completed by `data`."""
        return [line for line in self._lines.split(data) if line.strip()]

    def flush(self) -> list[bytes]:
        """The last line, when the body did not end with a newline."""
        tail = self._lines.tail()
        return [tail] if tail.strip() else []


# -- the transport -------------------------------------------------------------------------


def _decode_body(headers: Headers, body: bytes) -> bytes:
    encoding = headers.get("content-encoding")
    if encoding and body:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 47)
        if encoding == "deflate":
            return zlib.decompress(body)
    return body


class Transport:
    """Pooled sync and async HTTP to one API root.

    Args:
        base_url: the API root, such as ``https://api.openai.com/v1``.
        timeout: the read timeout in seconds (per call overridable).
        connect_timeout: seconds to wait for a connection.
        max_retries: how many times a retryable failure is tried again.
        max_connections: the async connection limit and the sync idle-pool size.
        provider: the provider name, for errors.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_retries: int = 2,
        max_connections: int = 100,
        provider: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise make_error(
                "invalid_config", f"base_url {base_url!r} is not an http(s) URL", op="transport"
            )
        self.base_url = base_url
        self.https = parts.scheme == "https"
        self.host: str = parts.hostname
        self.port: int = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.timeout = timeout if timeout is not None else DEFAULT_TIMEOUT
        self.connect_timeout = (
            connect_timeout if connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT
        )
        self.max_retries = max_retries
        self.max_connections = max_connections
        self.provider = provider
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: tuple[float, aiohttp.ClientTimeout] | None = None
        self._closed = False
        self._origin = f"{parts.scheme}://{parts.netloc}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        if parts.port is not None and parts.port != (443 if self.https else 80):
            host += f":{parts.port}"
        self._host_line = f"Host: {host}\r\n"

    #: the credential the requests carry, scrubbed from the errors born here (set by the model)
    _secret: str | None = None

    def __repr__(self) -> str:
        return f"<Transport {self._origin}{self.base_path}>"

    # -- errors ----------------------------------------------------------------------------

    def _error(self, code: str, detail: str, exc: BaseException | None = None) -> ChatModelError:
        error = make_error(code, detail, op="transport", provider=self.provider, err=exc)
        redact(error, self._secret)  # a server's reply can be quoted in an exception's text
        return error

    def _exc_to_error(self, exc: BaseException, timeout: float) -> ChatModelError:
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            return self._error(
                "timeout", f"no answer from {self._origin} within {timeout:g} s", exc
            )
        return self._error(
            "network", f"connection to {self._origin} failed: {type(exc).__name__}: {exc}", exc
        )

    def _check_open(self) -> None:
        if self._closed:
            raise self._error("invalid_config", "the model is closed")

    # -- sync ------------------------------------------------------------------------------

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.connect_timeout, context=shared_ssl_context()
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        return conn, False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_connections:
                self._idle.append(conn)
                return
        conn.close()

    def _head(self, req: WireRequest) -> bytes:
        """The request line and headers, as `http.client` would send them."""
        url = self.base_path + req.path
        if _BAD_URL_CHAR.search(url):
            raise self._error("invalid_config", f"the request path {url!r} has control characters")
        headers = req.headers
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        # Values with CR or LF would inject headers: one line per header, or refuse.
        if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
            raise self._header_error(headers)
        names = {name.lower() for name in headers}
        extra = self._host_line if "host" not in names else ""
        if "accept-encoding" not in names:
            extra += "Accept-Encoding: identity\r\n"
        body = req.body
        if body is not None:
            if "content-length" not in names:
                extra += f"Content-Length: {len(body)}\r\n"
        elif req.method in _BODY_METHODS:
            extra += "Content-Length: 0\r\n"
        try:
            return f"{req.method} {url} HTTP/1.1\r\n{extra}{lines}\r\n".encode("latin-1")
        except UnicodeEncodeError:
            pass
        # Raised outside the handler: its context would hold the whole head, the key with it.
        raise self._header_error(headers)

    def _header_error(self, headers: Mapping[str, str]) -> ChatModelError:
        """The error for headers that cannot be sent, naming the header, never its value."""
        for name, value in headers.items():
            why = _header_fault(name) or _header_fault(value)
            if why:
                return self._error("invalid_config", f"header {_shown_name(name)} {why}")
        return self._error("invalid_config", "the request line cannot be sent")

    def _send(
        self, req: WireRequest, timeout: float
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send `req` once; a reused connection the server has dropped is replaced once.

        The head and body go out in one write (`http.client` makes two, which costs a
        round of wake-ups on both ends); `http.client` still connects and parses the reply.
        """
        head = self._head(req)
        data = head + req.body if req.body else head
        while True:
            conn, reused = self._connection()
            try:
                if conn.sock is None:
                    conn.connect()
                sock = conn.sock
                sock.settimeout(timeout)
                sock.sendall(data)
                resp = http.client.HTTPResponse(sock, method=req.method)
                try:
                    resp.begin()
                except BaseException:
                    resp.close()  # its file holds the socket open
                    raise
                return conn, resp
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                conn.close()
                if not reused:
                    raise
            except BaseException:
                conn.close()
                raise

    def request(
        self,
        req: WireRequest,
        *,
        timeout: float | None = None,
        scope: CallScope = NOOP_SCOPE,
        retries: int | None = None,
    ) -> WireResponse:
        """Send `req` and read the whole response, retrying what may succeed again.

        Returns the response whatever its status once retries are spent; raises timeout,
        network or cancelled errors.
        """
        self._check_open()
        limit = timeout if timeout is not None else self.timeout
        last = (self.max_retries if retries is None else retries) + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                conn, resp = self._send(req, limit)
                try:
                    body = resp.read()
                except BaseException:
                    resp.close()
                    conn.close()
                    raise
            except (OSError, http.client.HTTPException) as exc:
                error, delay = self._after_failure(attempt, last, exc, limit, scope)
                if delay is None:
                    raise error from exc
                time.sleep(delay)
                continue
            if resp.will_close:
                conn.close()
            else:
                self._release(conn)
            headers: Headers = resp.headers
            delay = self._after_status(attempt, last, resp.status, headers, scope)
            if delay is None:
                return WireResponse(resp.status, headers, _decode_body(headers, body))
            time.sleep(delay)

    def _after_status(
        self, attempt: int, last: int, status: int, headers: Headers, scope: CallScope
    ) -> float | None:
        """Report attempt `attempt` to `scope`; None to hand its response to the caller, else
        the seconds to wait before the next attempt (a retryable status with tries left and a
        Retry-After, if any, that is not too long)."""
        if status < 300:
            if attempt > 1:  # a first attempt that succeeds is not reported
                scope.attempt(attempt, None)
            return None
        scope.attempt(attempt, self._status_error(status, headers))
        if not _retryable_status(status) or attempt >= last:
            return None
        wait = _retry_after(headers)
        if wait is not None and wait > MAX_RETRY_AFTER:
            return None
        return backoff_delay(attempt, wait)

    def _after_failure(
        self, attempt: int, last: int, exc: BaseException, limit: float, scope: CallScope
    ) -> tuple[ChatModelError, float | None]:
        """Report a failed attempt; its error, and the seconds to wait before the next attempt
        (None when the tries are spent)."""
        error = self._exc_to_error(exc, limit)
        scope.attempt(attempt, error)
        return error, (None if attempt >= last else backoff_delay(attempt))

    def _status_error(self, status: int, headers: Headers) -> ChatModelError:
        error = make_error(
            code_for_status(status),
            f"HTTP {status}",
            op="transport",
            provider=self.provider,
            status_code=status,
            request_id=request_id_of(headers),
            retry_after=retry_after_of(status, headers),
        )
        redact(error, self._secret)
        return error

    def stream(
        self, req: WireRequest, *, timeout: float | None = None, scope: CallScope = NOOP_SCOPE
    ) -> SyncStream:
        """Send `req` and return the open response to read incrementally.

        Retries happen before the body is read; an error status comes back as a `SyncStream`
        whose `status` says so (read its `body()`).
        """
        self._check_open()
        limit = timeout if timeout is not None else self.timeout
        last = self.max_retries + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                conn, resp = self._send(req, limit)
            except (OSError, http.client.HTTPException) as exc:
                error, delay = self._after_failure(attempt, last, exc, limit, scope)
                if delay is None:
                    raise error from exc
                time.sleep(delay)
                continue
            delay = self._after_status(attempt, last, resp.status, resp.headers, scope)
            if delay is None:
                return SyncStream(self, conn, resp, limit)
            SyncStream(self, conn, resp, limit).body()  # read to the end: the connection is reused
            time.sleep(delay)

    # -- async -----------------------------------------------------------------------------

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
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._client_timeout(self.timeout),
            skip_auto_headers=("User-Agent", "Content-Type"),
        )
        self._session, self._session_loop = session, loop
        return session

    def _client_timeout(self, read: float) -> aiohttp.ClientTimeout:
        """aiohttp's timeouts for a read timeout of `read` s (the last one is reused).

        The connect timeout bounds opening a connection (``sock_connect``), not waiting for
        a pooled one: with more calls in flight than connections, a queued call is not a
        connection failure, and no timer is armed per call for the wait.
        """
        cached = self._timeouts
        if cached is not None and cached[0] == read:
            return cached[1]
        import aiohttp

        value = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout, sock_read=read)
        self._timeouts = (read, value)
        return value

    async def _asend(self, req: WireRequest, timeout: float) -> aiohttp.ClientResponse:
        session = self._session
        if session is None or session.closed or self._session_loop is not _running_loop():
            session = await self._asession()
        headers = req.headers
        for name, value in headers.items():  # aiohttp would send what the sync path refuses
            if not (value.isascii() and value.isprintable() and name.isascii()) and (
                _header_fault(name) or _header_fault(value)
            ):
                raise self._header_error(headers)
        try:
            return await session.request(
                req.method,
                self._origin + self.base_path + req.path,
                data=req.body,
                headers=req.headers,
                timeout=self._client_timeout(timeout),
            )
        except (UnicodeError, ValueError):
            # aiohttp's refusal of a header quotes its value: refused as on sync, raised
            # outside the handler so that it is not the error's context.
            if not any(_header_fault(k) or _header_fault(v) for k, v in req.headers.items()):
                raise
        raise self._header_error(req.headers)

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
        last = (self.max_retries if retries is None else retries) + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await self._asend(req, limit)
                try:
                    body = await resp.read()
                finally:
                    resp.release()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _is_transport_exc(exc):
                    raise
                error, delay = self._after_failure(attempt, last, exc, limit, scope)
                if delay is None:
                    raise error from exc
                await asyncio.sleep(delay)
                continue
            delay = self._after_status(attempt, last, resp.status, resp.headers, scope)
            if delay is None:
                return WireResponse(resp.status, resp.headers, body)
            await asyncio.sleep(delay)

    async def astream(
        self, req: WireRequest, *, timeout: float | None = None, scope: CallScope = NOOP_SCOPE
    ) -> AsyncStream:
        """Async `stream`."""
        self._check_open()
        limit = timeout if timeout is not None else self.timeout
        last = self.max_retries + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await self._asend(req, limit)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _is_transport_exc(exc):
                    raise
                error, delay = self._after_failure(attempt, last, exc, limit, scope)
                if delay is None:
                    raise error from exc
                await asyncio.sleep(delay)
                continue
            delay = self._after_status(attempt, last, resp.status, resp.headers, scope)
            if delay is None:
                return AsyncStream(self, resp, limit)
            resp.release()
            await asyncio.sleep(delay)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close every pooled connection, without needing an event loop.

        The async session is closed on its loop when that loop runs in another thread; when
        its loop is closed (after ``asyncio.run``), its sockets are closed here directly.
        """
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        session, self._session = self._session, None
        loop, self._session_loop = self._session_loop, None
        if session is not None:
            _abandon(session, loop)

    async def aclose(self) -> None:
        """Close every connection, waiting for the async session to shut down."""
        session = self._session
        loop = asyncio.get_running_loop()
        if session is not None and self._session_loop is loop:
            self._session = None
            await session.close()
        self.close()


_running_loop = asyncio.get_running_loop


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
# tests/test_aiohttp_private.py against the installed aiohttp (3.9 to 3.14). No public API
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


class SyncStream:
    """An open sync response: `status`, `headers`, then `chunks()` or `body()`; `close()`
    returns the connection to the pool when the body was read to its end, else closes it."""

    __slots__ = ("_conn", "_done", "_resp", "_timeout", "_transport", "headers", "status")

    def __init__(
        self,
        transport: Transport,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        timeout: float,
    ) -> None:
        self._transport = transport
        self._conn: http.client.HTTPConnection | None = conn
        self._resp = resp
        self._timeout = timeout
        self._done = False
        self.status = resp.status
        self.headers: Headers = resp.headers

    def chunks(self) -> Iterator[bytes]:
        """The body's bytes as they arrive; raises timeout or network errors. The caller
        closes the stream."""
        read = self._resp.read1
        try:
            while True:
                data = read(_READ_SIZE)
                if not data:
                    # read1 does not mark a Content-Length body finished; close() does,
                    # leaving the socket open for the next request.
                    self._resp.close()
                    self._done = True
                    return
                yield data
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise self._transport._exc_to_error(exc, self._timeout) from exc

    def drain(self, limit: int = _READ_SIZE) -> None:
        """Read what is left of a body whose content ended (after ``[DONE]``) so that the
        connection can be reused; gives up (and closes) beyond `limit` bytes."""
        try:
            while limit > 0:
                data = self._resp.read1(limit)
                if not data:
                    self._resp.close()
                    self._done = True
                    break
                limit -= len(data)
        except (OSError, http.client.HTTPException):
            pass
        self.close()

    def body(self) -> bytes:
        """The whole body, decoded."""
        try:
            data = self._resp.read()
            self._done = True
        except (OSError, http.client.HTTPException) as exc:
            raise self._transport._exc_to_error(exc, self._timeout) from exc
        finally:
            self.close()
        return _decode_body(self.headers, data)

    def close(self) -> None:
        """Release the connection: to the pool after a full read, else closed."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and not self._resp.will_close:
            self._transport._release(conn)
        else:
            self._resp.close()
            conn.close()


class AsyncStream:
    """An open async response; see `SyncStream`."""

    __slots__ = ("_done", "_resp", "_timeout", "_transport", "headers", "status")

    def __init__(self, transport: Transport, resp: aiohttp.ClientResponse, timeout: float) -> None:
        self._transport = transport
        self._resp: aiohttp.ClientResponse | None = resp
        self._timeout = timeout
        self._done = False
        self.status = resp.status
        self.headers: Headers = resp.headers

    async def read(self) -> bytes:
        """The body's next bytes as they arrive; ``b""`` at its end.

        A coroutine rather than an async generator: a caller that stops at the stream's end
        marker leaves no suspended generator for the event loop to finalise in a task.
        """
        resp = self._resp
        if resp is None:
            return b""
        try:
            data = await resp.content.readany()
        except asyncio.CancelledError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            if not _is_transport_exc(exc):
                raise
            raise self._transport._exc_to_error(exc, self._timeout) from exc
        if not data:
            self._done = True
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (see `read`)."""
        while data := await self.read():
            yield data

    async def drain(self, limit: int = _READ_SIZE) -> None:
        """Async `SyncStream.drain`."""
        resp = self._resp
        if resp is None:
            return
        if resp.content.at_eof():  # the usual case: the end came in the last read
            self._done = True
            self.close()
            return
        try:
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
        """The whole body, decoded."""
        resp = self._resp
        if resp is None:
            return b""
        try:
            data = await resp.read()
            self._done = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not _is_transport_exc(exc):
                raise
            raise self._transport._exc_to_error(exc, self._timeout) from exc
        finally:
            self.close()
        return data

    def close(self) -> None:
        """Release the connection: to the pool after a full read, else closed."""
        resp, self._resp = self._resp, None
        if resp is None:
            return
        if self._done:
            resp.release()
        else:
            resp.close()
