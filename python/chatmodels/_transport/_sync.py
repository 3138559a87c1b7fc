"""The sync transport: `http.client` over a pool of keep-alive connections, every socket
read bounded by the time left (`_Timed`), and `SyncStream`, an open response read as it
arrives."""

from __future__ import annotations

import http.client
import io
import re
import time
from collections.abc import Iterator
from typing import Any

from .._observe import NOOP_SCOPE, CallScope
from ._base import Expired, TransportBase, shared_ssl_context
from ._framing import body_too_large, decode_body, inflater
from ._wire import Headers, WireRequest, WireResponse

__all__ = ["SyncStream", "SyncTransport"]

READ_SIZE = 65536
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BAD_URL_CHAR = re.compile("[\x00-\x20\x7f]")
_monotonic = time.monotonic


def _read_sync(resp: http.client.HTTPResponse, limit: int) -> bytes:
    """The whole raw body, refused past `limit` bytes (before reading, when its length is
    declared)."""
    length = resp.length
    if length is not None:
        if length > limit:
            raise body_too_large(limit)
        return resp.read()
    parts: list[bytes] = []
    size = 0
    read = resp.read1
    while data := read(READ_SIZE):
        size += len(data)
        if size > limit:
            raise body_too_large(limit)
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
            raise Expired(self.kind, self.seconds)
        sock = self._sock
        sock.settimeout(left)
        try:
            n: int = sock.recv_into(buffer)
        except TimeoutError:
            raise Expired(self.kind, self.seconds) from None
        return n


class SyncTransport(TransportBase):
    """The sync half of `Transport`: its pool of idle connections, `request` and `stream`."""

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

    def _connect(self, conn: http.client.HTTPConnection, deadline: float, limit: float) -> None:
        """Open `conn` within the connect timeout and what is left of the deadline."""
        left = deadline - _monotonic()
        if left <= 0:
            raise Expired("deadline", limit)
        if left < self.connect_timeout:
            conn.timeout, kind, seconds = left, "deadline", limit
        else:
            conn.timeout, kind, seconds = self.connect_timeout, "connect", self.connect_timeout
        try:
            conn.connect()
        except TimeoutError:
            raise Expired(kind, seconds) from None

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
                    raise Expired("deadline", limit)
                sock.settimeout(left)
                try:
                    sock.sendall(data)
                except TimeoutError:
                    raise Expired("deadline", limit) from None
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

    def _close_idle(self) -> None:
        """Close the pooled connections (a stream's goes when the stream closes)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


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
        transport: SyncTransport,
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
        self._inflate = inflater(resp.headers) if resp.status < 300 else None

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
                data = read(READ_SIZE)
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

    def drain(self, limit: int = READ_SIZE) -> None:
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
