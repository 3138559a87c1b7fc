"""The shared machinery of the loopback servers: HTTP/1.1 with keep-alive on an asyncio loop
in a background thread, the requests it received."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import threading
from collections.abc import Coroutine, Mapping, Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any, TypeVar

_MAX_HEAD_BYTES = 64 * 1024


# --------------------------------------------------------------------------- public data


@dataclasses.dataclass(frozen=True)
class ReceivedRequest:
    """A request as a test server received it.

    Attributes:
        method: ``"GET"``, ``"POST"``, ...
        path: the request target as sent: path and query, such as ``"/v1/chat/completions"``.
        headers: header names lower-cased; repeated headers joined with ``", "``.
        body: the raw body bytes.
        json: the body parsed as JSON, or None when it is empty or not JSON.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    json: Any


# --------------------------------------------------------------------------- HTTP/1.1 core


@dataclasses.dataclass
class _Response:
    """What to send. A body goes out with Content-Length; ``chunks`` go out chunked, one
    HTTP chunk each, so a stream's events can be delayed or cut between them."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunks: Sequence[bytes] | None = None
    reason: str = ""
    close: bool = False
    delay: float = 0.0  # before the head
    chunk_delay: float = 0.0  # between chunks
    abort_after_parts: int | None = None  # drop the connection after this many wire parts

    def wire_parts(self) -> list[bytes]:
        """The head, then the framed chunks (or the body) as separate byte strings."""
        reason = self.reason or _reason(self.status)
        lines = [f"HTTP/1.1 {self.status} {reason}", *(f"{k}: {v}" for k, v in self.headers)]
        if self.chunks is None:
            lines.append(f"Content-Length: {len(self.body)}")
        else:
            lines.append("Transfer-Encoding: chunked")
        if self.close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.chunks is None:
            return [head, self.body]
        framed = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in self.chunks if chunk]
        return [head, *framed, b"0\r\n\r\n"]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _text_response(status: int, message: str, *, close: bool = False) -> _Response:
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    return _Response(status, headers, message.encode(), close=close)


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:  # includes UnicodeDecodeError
        return None


class _HttpProtocol(asyncio.Protocol):
    """One client connection: parses (pipelined) requests and writes the server's responses."""

    def __init__(self, server: _LoopbackServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False  # a delayed response is being written; hold further requests

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server._connections.add(transport)
        self._server._accepted += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._server._connections.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._busy:
            self._process()

    def _process(self) -> None:
        transport = self._transport
        assert transport is not None
        while self._buffer and not transport.is_closing():
            response = self._next_response()
            if response is None:
                return
            if response.delay or response.chunk_delay or response.abort_after_parts is not None:
                self._busy = True
                transport.pause_reading()
                self._server._spawn(self._write_slowly(transport, response))
                return
            transport.write(b"".join(response.wire_parts()))
            if response.close:
                transport.close()

    def _next_response(self) -> _Response | None:
        """Parse one complete request from the buffer and answer it (None: need more bytes)."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD_BYTES:
                return _text_response(431, "request head too large", close=True)
            return None
        try:
            request_line, *header_lines = buffer[:end].decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ")
            headers: dict[str, str] = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return _text_response(400, "malformed request", close=True)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return _text_response(501, "chunked request bodies are not supported", close=True)
        total = end + 4 + length
        if len(buffer) < total:
            return None
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        request = ReceivedRequest(method, target, headers, body, _parse_json(body))
        self._server._record(request)
        response = self._server._respond(request)
        connection = headers.get("connection", "").lower()
        if "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection):
            response.close = True
        return response

    async def _write_slowly(self, transport: asyncio.Transport, response: _Response) -> None:
        if response.delay:
            await asyncio.sleep(response.delay)
        parts = response.wire_parts()
        limit = response.abort_after_parts
        for index, part in enumerate(parts if limit is None else parts[:limit]):
            if index >= 2 and response.chunk_delay:
                await asyncio.sleep(response.chunk_delay)
            if transport.is_closing():
                return
            transport.write(part)
        if limit is not None:
            transport.abort()
        elif response.close:
            transport.close()
        else:
            self._busy = False
            transport.resume_reading()
            self._process()


_T = TypeVar("_T", bound="_LoopbackServer")


class _LoopbackServer:
    """The shared machinery: an asyncio loop in a daemon thread, connections, recorded requests.

    Subclasses implement `_respond`, which runs on the loop thread and must not block.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, max_recorded: int = 10_000
    ) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._requests: collections.deque[ReceivedRequest] = collections.deque(maxlen=max_recorded)
        self._connections: set[asyncio.Transport] = set()
        self._accepted = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle

    def start(self: _T) -> _T:
        """Bind and start serving in a background thread; returns self."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # reported by start() when binding failed
                failure.append(exc)
            finally:
                ready.set()
                loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    async def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await loop.create_server(
            lambda: _HttpProtocol(self), self.host, self.port, backlog=4096, reuse_address=True
        )
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopping.wait()
        server.close()
        for transport in list(self._connections):
            transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the aborted connections call connection_lost

    def stop(self) -> None:
        """Close the listener and every open connection, then join the thread. Idempotent."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._thread = None

    def __enter__(self: _T) -> _T:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what the server saw

    @property
    def requests(self) -> list[ReceivedRequest]:
        """The requests received so far, oldest first (at most ``max_recorded`` of the latest)."""
        with self._lock:
            return list(self._requests)

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections the server has accepted (to check keep-alive reuse)."""
        return self._accepted

    def clear_requests(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self._requests.clear()

    def _record(self, request: ReceivedRequest) -> None:
        if self._requests.maxlen != 0:
            with self._lock:
                self._requests.append(request)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _respond(self, request: ReceivedRequest) -> _Response:
        raise NotImplementedError
