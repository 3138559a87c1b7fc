"""The transport: the only place that opens sockets.

Sync calls use `http.client` with a pool of keep-alive connections per transport; async calls
use aiohttp (imported on first async use), one session per event loop. Both retry what may
succeed again (connection failures, timeouts, HTTP 408/429/5xx) up to `max_retries` times
with exponential backoff and jitter, honouring Retry-After. Streams are framed by push
decoders (`SSEDecoder`, `NDJSONDecoder`) that work the same for sync and async bodies, and a
stream closed before its end closes its connection rather than returning it to the pool.

Limits (see `Transport`): `timeout` is a deadline for the whole call, retries, backoff and the
reply's body included; a stream's deadline runs to its first event, then at most
`stream_idle_timeout` may pass between events. A reply is at most `max_response_bytes` once
decoded (gzip and deflate are inflated incrementally, never beyond the bound) and one stream
line or event at most `max_event_bytes`. Redirects are never followed: a 3xx is
invalid_response naming its Location, so credentials never leave the configured origin.

Errors are born here only for what the transport understands (timeout, network, a redirect,
an undecodable or oversized body); another HTTP error status is returned to the caller, whose
adapter reads the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import http.client
import io
import random
import re
import ssl
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from ._errors import ChatModelError, InvalidResponseError, make_error, redact
from ._observe import NOOP_SCOPE, CallScope

if TYPE_CHECKING:
    import aiohttp

if sys.version_info >= (3, 11):
    from asyncio import timeout_at as _timeout_at
else:  # aiohttp requires async-timeout before 3.11
    from async_timeout import timeout_at as _timeout_at  # type: ignore[import-not-found]

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
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024
MAX_RETRY_AFTER = 60.0
_RETRY_STATUSES = frozenset({408, 409, 429})
_READ_SIZE = 65536
_INFLATE_SIZE = 262144  # decoded bytes per step of a compressed stream
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
    if status < 400:  # a redirect: not an API's answer (see `Transport._redirect_error`)
        return "invalid_response"
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
    """Turns body bytes, fed as they arrive, into events.

    `max_event` bounds one event (and one line) in bytes: past it, `feed` raises
    invalid_response, so a body without framing cannot grow memory without bound.
    """

    max_event: int

    def feed(self, data: bytes) -> list[Any]:
        """Events completed by `data`."""

    def flush(self) -> list[Any]:
        """Events left when the body ends."""


def event_too_large(limit: int) -> InvalidResponseError:
    """The error for a stream line or event longer than `limit` bytes."""
    return InvalidResponseError(
        f"a stream event is larger than max_event_bytes ({limit} bytes)", op="stream"
    )


class _Lines:
    """Splits bytes into lines; an unfinished line is kept as a list of pieces, joined once
    when its newline arrives, so framing stays linear in the bytes received."""

    __slots__ = ("_parts", "_size", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self.max_size = max_size

    def split(self, data: bytes) -> list[bytes]:
        parts = self._parts
        if parts:
            end = data.find(b"\n")
            if end < 0:
                self._keep(data)
                return []
            parts.append(data[:end])
            first = b"".join(parts)
            parts.clear()
            self._size = 0
            lines = data[end + 1 :].split(b"\n")
            lines.insert(0, first)
            data = first  # for the length check below
        else:
            lines = data.split(b"\n")
        rest = lines.pop()
        if len(data) > self.max_size:  # only then can a whole line be too long
            for line in lines:
                if len(line) > self.max_size:
                    raise event_too_large(self.max_size)
        if rest:
            self._keep(rest)
        return lines

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.max_size:
            raise event_too_large(self.max_size)
        self._parts.append(data)

    def tail(self) -> bytes:
        rest = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return rest


class SSEDecoder:
    """Server-sent events: yields ``(event_name or None, data bytes)`` per event."""

    __slots__ = ("_count", "_data", "_event", "_lines", "_size")

    def __init__(self, max_event: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._lines = _Lines(max_event)
        self._event: str | None = None
        self._data: list[bytes] = []
        self._count = 0  # data lines of the unfinished event counted in `_size`
        self._size = 0

    @property
    def max_event(self) -> int:
        """The most bytes one event (or line) may hold."""
        return self._lines.max_size

    @max_event.setter
    def max_event(self, value: int) -> None:
        self._lines.max_size = value

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
        if pending:
            self._bound(pending, bool(out))
        elif self._count:
            self._count = self._size = 0
        return out

    def _bound(self, pending: list[bytes], restarted: bool) -> None:
        """Count the data lines of an event left unfinished by a feed (each line once)."""
        if restarted:  # events ended in this feed: what is pending all came in it
            self._count = self._size = 0
        self._size += sum(map(len, pending[self._count :])) + len(pending) - self._count
        self._count = len(pending)
        if self._size > self._lines.max_size:
            raise event_too_large(self._lines.max_size)

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
                self._data.clear()
            self._count = self._size = 0
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

    def __init__(self, max_event: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._lines = _Lines(max_event)

    @property
    def max_event(self) -> int:
        """The most bytes one line may hold."""
        return self._lines.max_size

    @max_event.setter
    def max_event(self, value: int) -> None:
        self._lines.max_size = value

    def feed(self, data: bytes) -> list[bytes]:
        """Lines completed by `data`."""
        return [line for line in self._lines.split(data) if line.strip()]

    def flush(self) -> list[bytes]:
        """The last line, when the body did not end with a newline."""
        tail = self._lines.tail()
        return [tail] if tail.strip() else []


# -- the transport -------------------------------------------------------------------------


_monotonic = time.monotonic


class _Expired(TimeoutError):
    """A limit of the call ran out: ``args`` are its kind (deadline, connect, idle) and its
    seconds."""


_EXPIRED = {
    "deadline": "no complete answer from {origin} within the call's timeout of {s:g} s",
    "connect": "could not connect to {origin} within the connect timeout of {s:g} s",
    "idle": "the stream from {origin} sent no event for stream_idle_timeout ({s:g} s)",
}


def _too_large(limit: int) -> InvalidResponseError:
    return InvalidResponseError(
        f"the reply is larger than max_response_bytes ({limit} bytes)", op="transport"
    )


def _wbits(headers: Headers) -> int | None:
    """zlib's wbits for the body's Content-Encoding (None: identity); invalid_response for
    an encoding this transport does not decode."""
    encoding = headers.get("content-encoding")
    if not encoding:
        return None
    name = encoding.strip().lower()
    if name in ("gzip", "x-gzip"):
        return 47  # gzip or zlib header, detected
    if name == "deflate":
        return 15
    if name in ("identity", ""):
        return None
    raise InvalidResponseError(
        f"the reply's Content-Encoding {encoding[:40]!r} is not gzip, deflate or identity",
        op="transport",
    )


def _inflate_error(exc: zlib.error) -> InvalidResponseError:
    return InvalidResponseError(
        f"cannot decode the reply's compressed body: {exc}", op="transport", err=exc
    )


def decode_body(headers: Headers, body: bytes, limit: int) -> bytes:
    """`body` decoded by its Content-Encoding, at most `limit` bytes (else invalid_response,
    having inflated no more than ``limit + 1`` bytes)."""
    if not body:
        return body
    wbits = _wbits(headers)
    if wbits is None:
        return body
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _inflate_error(exc) from exc
    if len(out) > limit:
        raise _too_large(limit)
    if not inflater.eof:
        raise InvalidResponseError("the reply's compressed body is cut short", op="transport")
    return out


class _Inflate:
    """Incremental inflating of a compressed stream, at most `_INFLATE_SIZE` bytes a step."""

    __slots__ = ("_obj", "tail")

    def __init__(self, wbits: int) -> None:
        self._obj = zlib.decompressobj(wbits)
        self.tail = b""  # compressed bytes not inflated yet

    def step(self, data: bytes) -> bytes:
        try:
            out = self._obj.decompress(data, _INFLATE_SIZE)
        except zlib.error as exc:
            raise _inflate_error(exc) from exc
        self.tail = self._obj.unconsumed_tail
        return out


def _inflater(headers: Headers) -> _Inflate | None:
    wbits = _wbits(headers)
    return None if wbits is None else _Inflate(wbits)


def _read_sync(resp: http.client.HTTPResponse, limit: int) -> bytes:
    """The whole raw body, refused past `limit` bytes (before reading, when its length is
    declared)."""
    length = resp.length
    if length is not None:
        if length > limit:
            raise _too_large(limit)
        return resp.read()
    parts: list[bytes] = []
    size = 0
    read = resp.read1
    while data := read(_READ_SIZE):
        size += len(data)
        if size > limit:
            raise _too_large(limit)
        parts.append(data)
    return b"".join(parts)


async def _read_async(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Async `_read_sync`."""
    length = resp.content_length
    if length is not None:
        if length > limit:
            raise _too_large(limit)
        return await resp.read()
    parts: list[bytes] = []
    size = 0
    readany = resp.content.readany
    while data := await readany():
        size += len(data)
        if size > limit:
            raise _too_large(limit)
        parts.append(data)
    return b"".join(parts)


class _Timed(io.RawIOBase):
    """A response's socket reads, each given the time left before `until` (a deadline, or
    after a stream's event the idle limit); `http.client.HTTPResponse` takes it as its
    socket, of which it only calls `makefile`."""

    def __init__(self, sock: Any, until: float, kind: str, seconds: float) -> None:
        self._sock = sock
        self.until = until
        self.kind = kind
        self.seconds = seconds

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any, /) -> int:
        left = self.until - _monotonic()
        if left <= 0:
            raise _Expired(self.kind, self.seconds)
        sock = self._sock
        sock.settimeout(left)
        try:
            n: int = sock.recv_into(buffer)
        except TimeoutError:
            raise _Expired(self.kind, self.seconds) from None
        return n


class Transport:
    """Pooled sync and async HTTP to one API root.

    Args:
        base_url: the API root, such as ``https://api.openai.com/v1``.
        timeout: the deadline of a call in seconds, retries included (per call overridable).
        connect_timeout: seconds to wait for a connection (within the deadline).
        max_retries: how many times a retryable failure is tried again.
        max_connections: the async connection limit and the sync idle-pool size.
        provider: the provider name, for errors.
        stream_idle_timeout: the seconds a stream may go without an event after its first
            (None: the call's timeout).
        max_response_bytes: the most bytes a reply's body may hold, decoded.
        max_event_bytes: the most bytes one stream line or event may hold.
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
        stream_idle_timeout: float | None = None,
        max_response_bytes: int | None = None,
        max_event_bytes: int | None = None,
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
        self.stream_idle_timeout = stream_idle_timeout
        self.max_response_bytes = max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES
        self.max_event_bytes = max_event_bytes or DEFAULT_MAX_EVENT_BYTES
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
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

    def _exc_to_error(self, exc: BaseException) -> ChatModelError:
        if isinstance(exc, _Expired):
            kind, seconds = exc.args
            return self._error("timeout", _EXPIRED[kind].format(origin=self._origin, s=seconds))
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            return self._error("timeout", f"timed out talking to {self._origin}", exc)
        return self._error(
            "network", f"connection to {self._origin} failed: {type(exc).__name__}: {exc}", exc
        )

    def _redirect_error(self, status: int, headers: Headers) -> ChatModelError:
        """A 3xx: never followed (the credentials would go with it), never retried."""
        location = headers.get("location")
        if location:
            parts = urlsplit(location)
            shown = location.split("?", 1)[0].split("#", 1)[0][:200]  # a query may hold tokens
            if parts.query:
                shown += "?..."
            detail = f"HTTP {status} redirect to {shown!r}: redirects are not followed"
        else:
            detail = f"HTTP {status} without a Location: a 3xx is not an API reply"
        return make_error(
            "invalid_response",
            detail + f" (is base_url {self.base_url!r} right?)",
            op="transport",
            provider=self.provider,
            status_code=status,
            request_id=request_id_of(headers),
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

    def _connect(self, conn: http.client.HTTPConnection, deadline: float, limit: float) -> None:
        """Open `conn` within the connect timeout and what is left of the deadline."""
        left = deadline - _monotonic()
        if left <= 0:
            raise _Expired("deadline", limit)
        if left < self.connect_timeout:
            conn.timeout, kind, seconds = left, "deadline", limit
        else:
            conn.timeout, kind, seconds = self.connect_timeout, "connect", self.connect_timeout
        try:
            conn.connect()
        except TimeoutError:
            raise _Expired(kind, seconds) from None

    def _send(
        self, req: WireRequest, deadline: float, limit: float
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, _Timed]:
        """Send `req` once before `deadline`; a reused connection the server has dropped is
        replaced once. Also returns the reader whose limit a stream moves.

        The head and body go out in one write (`http.client` makes two, which costs a
        round of wake-ups on both ends); `http.client` still connects and parses the reply.
        """
        head = self._head(req)
        data = head + req.body if req.body else head
        while True:
            conn, reused = self._connection()
            try:
                if conn.sock is None:
                    self._connect(conn, deadline, limit)
                sock = conn.sock
                left = deadline - _monotonic()
                if left <= 0:
                    raise _Expired("deadline", limit)
                sock.settimeout(left)
                try:
                    sock.sendall(data)
                except TimeoutError:
                    raise _Expired("deadline", limit) from None
                reader = _Timed(sock, deadline, "deadline", limit)
                resp = http.client.HTTPResponse(reader, method=req.method)  # type: ignore[arg-type]
                try:
                    resp.begin()
                except BaseException:
                    resp.close()  # its file holds the socket open
                    raise
                return conn, resp, reader
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
        """Send `req` and read the whole response, retrying what may succeed again, all
        within `timeout` seconds.

        Returns the response whatever its status once retries are spent; raises timeout,
        network, cancelled or invalid_response (a redirect, a body too large or that
        cannot be decoded) errors.
        """
        self._check_open()
        limit = timeout if timeout is not None else self.timeout
        deadline = _monotonic() + limit
        last = (self.max_retries if retries is None else retries) + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                conn, resp, _ = self._send(req, deadline, limit)
                try:
                    body = _read_sync(resp, self.max_response_bytes)
                except BaseException:
                    resp.close()
                    conn.close()
                    raise
            except (OSError, http.client.HTTPException) as exc:
                left = deadline - _monotonic()
                error, delay = self._after_failure(attempt, last, exc, scope, left)
                if delay is None:
                    raise error from exc
                time.sleep(delay)
                continue
            if resp.will_close:
                conn.close()
            else:
                self._release(conn)
            headers: Headers = resp.headers
            delay = self._after_status(attempt, last, resp.status, headers, scope, deadline)
            if delay is None:
                body = decode_body(headers, body, self.max_response_bytes)
                return WireResponse(resp.status, headers, body)
            time.sleep(delay)

    def _after_status(
        self,
        attempt: int,
        last: int,
        status: int,
        headers: Headers,
        scope: CallScope,
        deadline: float,
        clock: Any = _monotonic,
    ) -> float | None:
        """Report attempt `attempt` to `scope`; None to hand its response to the caller, else
        the seconds to wait before the next attempt (a retryable status with tries left and a
        Retry-After, if any, that is not too long, ending before the deadline). Raises the
        error of a redirect."""
        if status < 300:
            if attempt > 1:  # a first attempt that succeeds is not reported
                scope.attempt(attempt, None)
            return None
        if status < 400:
            error = self._redirect_error(status, headers)
            scope.attempt(attempt, error)
            raise error
        scope.attempt(attempt, self._status_error(status, headers))
        if not _retryable_status(status) or attempt >= last:
            return None
        wait = _retry_after(headers)
        if wait is not None and wait > MAX_RETRY_AFTER:
            return None
        delay = backoff_delay(attempt, wait)
        return delay if delay < deadline - clock() else None

    def _after_failure(
        self, attempt: int, last: int, exc: BaseException, scope: CallScope, left: float
    ) -> tuple[ChatModelError, float | None]:
        """Report a failed attempt; its error, and the seconds to wait before the next attempt
        (None when the tries are spent or the wait would not end `left` seconds from now)."""
        error = self._exc_to_error(exc)
        scope.attempt(attempt, error)
        if attempt >= last:
            return error, None
        delay = backoff_delay(attempt)
        return error, (delay if delay < left else None)

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
        whose `status` says so (read its `body()`). `timeout` bounds the call to its first
        event (see `SyncStream.touch`), the idle limit each next one.
        """
        self._check_open()
        limit = timeout if timeout is not None else self.timeout
        deadline = _monotonic() + limit
        idle = self.stream_idle_timeout or limit
        last = self.max_retries + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                conn, resp, reader = self._send(req, deadline, limit)
            except (OSError, http.client.HTTPException) as exc:
                left = deadline - _monotonic()
                error, delay = self._after_failure(attempt, last, exc, scope, left)
                if delay is None:
                    raise error from exc
                time.sleep(delay)
                continue
            try:
                delay = self._after_status(
                    attempt, last, resp.status, resp.headers, scope, deadline
                )
                stream = SyncStream(self, conn, resp, reader, idle)
            except BaseException:
                resp.close()
                conn.close()
                raise
            if delay is None:
                return stream
            stream.body()  # read to the end: the connection is reused
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
                _header_fault(name) or _header_fault(value)
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
            if not any(_header_fault(k) or _header_fault(v) for k, v in req.headers.items()):
                raise
        raise self._header_error(req.headers)

    def _atimeout(self, exc: BaseException, limit: float) -> BaseException:
        """A timeout as the limit that ran out: the deadline's timer, or aiohttp's connect
        timeout (a `ServerTimeoutError`, raised with time left)."""
        if not isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            return exc
        if type(exc).__name__ in ("ConnectionTimeoutError", "ServerTimeoutError"):
            return _Expired("connect", self.connect_timeout)
        return _Expired("deadline", limit)

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


class SyncStream:
    """An open sync response: `status`, `headers`, then `chunks()` or `body()`; `close()`
    returns the connection to the pool when the body was read to its end, else closes it.

    Reads are bounded by the call's deadline until `touch()` (the reader calls it on each
    event): then each next event must come within the idle limit."""

    __slots__ = (
        "_conn",
        "_done",
        "_idle",
        "_inflate",
        "_reader",
        "_resp",
        "_transport",
        "headers",
        "status",
    )

    def __init__(
        self,
        transport: Transport,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        reader: _Timed,
        idle: float,
    ) -> None:
        self._transport = transport
        self._conn: http.client.HTTPConnection | None = conn
        self._resp = resp
        self._reader = reader
        self._idle = idle
        self._done = False
        self.status = resp.status
        self.headers: Headers = resp.headers
        # a body the adapter reads as a stream (an error's goes through `body()`)
        self._inflate = _inflater(resp.headers) if resp.status < 300 else None

    def touch(self) -> None:
        """An event arrived: the next one must come within the idle limit."""
        reader = self._reader
        reader.until = _monotonic() + self._idle
        if reader.kind != "idle":
            reader.kind, reader.seconds = "idle", self._idle

    def chunks(self) -> Iterator[bytes]:
        """The body's bytes as they arrive (inflated, when compressed); raises timeout,
        network or invalid_response errors. The caller closes the stream."""
        read = self._resp.read1
        inflate = self._inflate
        try:
            while True:
                data = read(_READ_SIZE)
                if not data:
                    # read1 does not mark a Content-Length body finished; close() does,
                    # leaving the socket open for the next request.
                    self._resp.close()
                    self._done = True
                    return
                if inflate is None:
                    yield data
                    continue
                data = inflate.step(data)  # a compressed body: a bounded piece at a time
                while True:
                    if data:
                        yield data
                    if not inflate.tail:
                        break
                    data = inflate.step(inflate.tail)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise self._transport._exc_to_error(exc) from exc

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
        """The whole body, decoded (at most `max_response_bytes`)."""
        limit = self._transport.max_response_bytes
        try:
            data = _read_sync(self._resp, limit)
            self._done = True
        except (OSError, http.client.HTTPException) as exc:
            raise self._transport._exc_to_error(exc) from exc
        finally:
            self.close()
        return decode_body(self.headers, data, limit)

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
        transport: Transport,
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
        self._inflate = _inflater(resp.headers) if resp.status < 300 else None
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
            exc = _Expired(self._kind, self._seconds)
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
