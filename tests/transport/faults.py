"""A loopback HTTP server that misbehaves on demand, for transport (and parser) tests.

`FaultServer(script)` answers each request with the next behaviour of `script` (the last one
repeats), or with ``script(request)`` when `script` is a callable. A behaviour is a function
``(conn, request) -> bool`` that writes whatever it likes to the raw socket and says whether
the connection may take another request. The factories below make the usual faults:

    reply        a well-formed response (any status, headers and body)
    raw          bytes as given, then close
    trickle      a response one byte at a time
    silent       read the request, never answer
    reset        close with a TCP reset
    truncated    a Content-Length body cut short
    redirect     a 3xx to another URL
    encoded      a body under a Content-Encoding header (garbage or real)
    gzip_bomb    a small gzip body that inflates to a huge one (whole, or as a stream)
    huge         a body of any size, written without holding it in memory
    stream       a chunked stream of given events, paced, then ended or held open
    long_line    a chunked stream of one line that never ends

`full_backlog()` gives a URL whose listen backlog is full, so that connecting hangs.

Out of scope here, for the parsers' tests to add on top: replies of the wrong JSON types and
streams without their end marker. `reply(...)` and `stream(...)` send any bytes given, so those
need only a body (or a small behaviour of their own).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import socket
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence

__all__ = [
    "Behaviour",
    "Conn",
    "FaultServer",
    "Request",
    "encoded",
    "full_backlog",
    "gzip_bomb",
    "huge",
    "long_line",
    "raw",
    "redirect",
    "reply",
    "reset",
    "response",
    "silent",
    "stream",
    "trickle",
    "truncated",
]


@dataclasses.dataclass(frozen=True)
class Request:
    """A request as the server read it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Conn:
    """The client connection a behaviour writes to."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self.sock = sock
        self.stopping = stopping

    def send(self, data: bytes) -> bool:
        """Write `data`; False when the client has gone (or the server stops)."""
        if self.stopping.is_set():
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def sleep(self, seconds: float) -> bool:
        """Wait; False when the server stops meanwhile."""
        return not self.stopping.wait(seconds)

    def hold(self) -> None:
        """Keep the connection open, saying nothing, until the client closes it or the
        server stops."""
        self.sock.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                if not self.sock.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return


Behaviour = Callable[[Conn, Request], bool]
Script = Sequence[Behaviour] | Callable[[Request], Behaviour]


class FaultServer:
    """A threaded raw-socket HTTP/1.1 server on loopback, answering by a script.

    Attributes:
        requests: every request read, in order.
        connections: how many connections were accepted.
    """

    def __init__(self, script: Script) -> None:
        self._script = script
        self._next = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port: int = self._listener.getsockname()[1]
        self.requests: list[Request] = []
        self.connections = 0
        self._clients: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                client.close()
        for thread in self._threads:
            thread.join(5)

    def _behaviour(self, request: Request) -> Behaviour:
        script = self._script
        if callable(script):
            return script(request)
        with self._lock:
            index = min(self._next, len(script) - 1)
            self._next += 1
        return script[index]

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._clients.append(client)
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, client: socket.socket) -> None:
        conn = Conn(client, self._stopping)
        buffer = b""
        try:
            while not self._stopping.is_set():
                request, buffer = _read_request(client, buffer)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                client.settimeout(None)
                if not self._behaviour(request)(conn, request):
                    return
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                client.close()


def _read_request(client: socket.socket, buffer: bytes) -> tuple[Request | None, bytes]:
    client.settimeout(30)
    while b"\r\n\r\n" not in buffer:
        data = client.recv(65536)
        if not data:
            return None, b""
        buffer += data
        if len(buffer) > 1 << 20:
            return None, b""
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(buffer) < length:
        data = client.recv(65536)
        if not data:
            return None, b""
        buffer += data
    return Request(method, path, headers, buffer[:length]), buffer[length:]


# -- behaviours ----------------------------------------------------------------------------

_REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect"}


def response(
    status: int = 200,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
    *,
    content_type: str | None = "application/json",
    length: int | None = None,
) -> bytes:
    """A response's bytes, with Content-Length (`length` if given, else the body's)."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def reply(
    status: int = 200,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
    *,
    content_type: str | None = "application/json",
) -> Behaviour:
    """A well-formed response; the connection stays open for the next request."""
    data = response(status, body, headers, content_type=content_type)
    return lambda conn, request: conn.send(data)


def raw(data: bytes) -> Behaviour:
    """`data` as given, then the connection closes."""

    def behave(conn: Conn, request: Request) -> bool:
        conn.send(data)
        return False

    return behave


def trickle(data: bytes, interval: float = 1.0) -> Behaviour:
    """`data` (head included) one byte every `interval` seconds, for as long as the client
    listens."""

    def behave(conn: Conn, request: Request) -> bool:
        for i in range(len(data)):
            if not conn.send(data[i : i + 1]) or not conn.sleep(interval):
                return False
        return False

    return behave


def silent() -> Behaviour:
    """Read the request and never answer."""

    def behave(conn: Conn, request: Request) -> bool:
        conn.hold()
        return False

    return behave


def reset() -> Behaviour:
    """Close the connection with a TCP reset (no response at all)."""

    def behave(conn: Conn, request: Request) -> bool:
        conn.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        return False

    return behave


def truncated(body: bytes, cut: int, headers: Sequence[tuple[str, str]] = ()) -> Behaviour:
    """A response declaring `body`'s length that closes after `cut` bytes of it."""
    data = response(200, body[:cut], headers, length=len(body))
    return raw(data)


def redirect(location: str, status: int = 307) -> Behaviour:
    """A 3xx pointing at `location`."""
    return reply(status, b"", (("Location", location),), content_type=None)


def encoded(
    body: bytes, encoding: str, *, content_type: str = "application/json", stream: bool = False
) -> Behaviour:
    """`body` sent as is under ``Content-Encoding: <encoding>`` (compress it first for a real
    encoding); as a chunked stream when `stream`."""
    headers = (("Content-Encoding", encoding),)
    if not stream:
        return reply(200, body, headers, content_type=content_type)
    return _chunked([body], headers, content_type=content_type)


@functools.lru_cache(maxsize=8)
def _bomb(size: int, line: bool) -> bytes:
    """gzip of `size` bytes: zeros, or (`line`) an SSE ``data:`` line of `x` never ended."""
    out = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [out.compress(b"data: ")] if line else []
    block = (b"x" if line else b"\0") * (1 << 20)
    for _ in range(size >> 20):
        parts.append(out.compress(block))
    parts.append(out.flush())
    return b"".join(parts)


def gzip_bomb(size: int, *, stream: bool = False, content_type: str | None = None) -> Behaviour:
    """A gzip body inflating to `size` bytes: zeros in one body, or, as a stream, one SSE
    line that never ends."""
    body = _bomb(size, stream)
    headers = (("Content-Encoding", "gzip"),)
    if not stream:
        return reply(200, body, headers, content_type=content_type or "application/json")
    return _chunked([body], headers, content_type=content_type or "text/event-stream")


def huge(size: int, *, chunked: bool = False, content_type: str = "application/json") -> Behaviour:
    """A body of `size` bytes of ``x``, written 64 KiB at a time (declared with
    Content-Length, or chunked)."""
    block = b"x" * 65536

    def behave(conn: Conn, request: Request) -> bool:
        if chunked:
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
        else:
            head = response(200, b"", content_type=content_type, length=size)
        if not conn.send(head):
            return False
        left = size
        while left > 0:
            piece = block[: min(left, len(block))]
            if chunked:
                piece = b"%x\r\n%s\r\n" % (len(piece), piece)
            if not conn.send(piece):
                return False
            left -= 65536
        if chunked:
            conn.send(b"0\r\n\r\n")
        return False

    return behave


def _chunked(
    events: Sequence[bytes],
    headers: Sequence[tuple[str, str]] = (),
    *,
    content_type: str = "text/event-stream",
    interval: float = 0.0,
    hold: bool = False,
) -> Behaviour:
    head = [f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked"]
    head += [f"{name}: {value}" for name, value in headers]
    start = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")

    def behave(conn: Conn, request: Request) -> bool:
        if not conn.send(start):
            return False
        for i, event in enumerate(events):
            if i and interval and not conn.sleep(interval):
                return False
            if event and not conn.send(b"%x\r\n%s\r\n" % (len(event), event)):
                return False
        if hold:
            conn.hold()
            return False
        return conn.send(b"0\r\n\r\n")

    return behave


def stream(
    events: Sequence[bytes],
    *,
    content_type: str = "text/event-stream",
    interval: float = 0.0,
    hold: bool = False,
) -> Behaviour:
    """A chunked stream: one chunk per event, `interval` seconds apart; then the end, or
    (`hold`) silence with the connection open."""
    return _chunked(events, content_type=content_type, interval=interval, hold=hold)


def long_line(size: int, *, content_type: str = "text/event-stream") -> Behaviour:
    """A chunked stream of `size` bytes of one ``data:`` line without a newline, then the
    body's end."""
    block = b"x" * 65536
    pieces = [b"data: "] + [block] * (size // len(block))
    return _chunked(pieces, content_type=content_type)


@contextlib.contextmanager
def full_backlog() -> Iterator[str]:
    """A base URL whose listener never accepts and whose backlog is full: connecting to it
    hangs (the kernel drops the SYNs) until the client gives up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):  # Linux queues backlog + 1; then SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield f"http://127.0.0.1:{port}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
