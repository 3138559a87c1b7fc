"""Framing: the bytes of a body, fed as they arrive, into events (`SSEDecoder`,
`NDJSONDecoder`, `EventStreamDecoder` for AWS event streams), and a compressed body inflated
(`decode_body`, `Inflate`); every decoder is bounded, so a reply cannot grow memory without
bound. The same decoders serve sync and async bodies."""

from __future__ import annotations

import json
import zlib
from typing import Any, Protocol

from .._errors import InvalidResponseError
from ._wire import Headers

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "EventStreamDecoder",
    "FrameDecoder",
    "Inflate",
    "NDJSONDecoder",
    "SSEDecoder",
    "body_too_large",
    "decode_body",
    "event_too_large",
    "inflater",
]

DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024
_INFLATE_SIZE = 262144  # decoded bytes per step of a compressed stream
_PRELUDE = 12  # an event stream frame's prelude: total length, headers length, CRC
_OVERHEAD = 16  # the prelude and the frame's closing CRC


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


# -- AWS event streams ---------------------------------------------------------------------


class EventStreamDecoder:
    """AWS event stream frames (via botocore's ``EventStreamBuffer``) as
    ``(message_type, event_or_exception_type, payload)`` tuples.

    A frame's bytes are gathered here and handed to botocore whole, one frame at a time
    (its buffer copies all it holds on every add and every frame taken), so decoding stays
    linear; a frame longer than `max_event` is refused from its prelude."""

    __slots__ = ("_buffer", "_errors", "_need", "_parts", "_size", "max_event")

    def __init__(self, max_event: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        # Created by the bedrock adapter, whose constructor has checked that botocore imports.
        import botocore.eventstream  # type: ignore[import-untyped,unused-ignore]

        eventstream = botocore.eventstream
        self._buffer = eventstream.EventStreamBuffer()
        self._errors = (eventstream.ParserError,)
        self._parts: list[bytes] = []
        self._size = 0
        self._need = _PRELUDE  # bytes the next frame needs, once its prelude is known
        self.max_event = max_event

    def _frames(self, data: bytes) -> list[bytes]:
        """The whole frames `data` completes; the rest is kept."""
        self._parts.append(data)
        self._size += len(data)
        if self._size < self._need:
            if self._need == _PRELUDE and self._size >= 4:  # the frame's length is known now
                self._need = self._checked(int.from_bytes(b"".join(self._parts)[:4], "big"))
            if self._size < self._need:
                return []
        buf = b"".join(self._parts) if len(self._parts) > 1 else data
        frames = []
        pos, end = 0, len(buf)
        while end - pos >= _PRELUDE:
            total = int.from_bytes(buf[pos : pos + 4], "big")
            if total > self.max_event + _OVERHEAD:
                raise event_too_large(self.max_event)
            if total < _OVERHEAD:  # botocore checks the prelude's CRC: let it say why
                total = end - pos
            if end - pos < total:
                break
            frames.append(buf[pos : pos + total])
            pos += total
        rest = buf[pos:]
        self._parts = [rest] if rest else []
        self._size = len(rest)
        self._need = self._checked(int.from_bytes(rest[:4], "big")) if len(rest) >= 4 else _PRELUDE
        return frames

    def _checked(self, total: int) -> int:
        """The bytes a frame of `total` length needs; invalid_response past the bound."""
        if total > self.max_event + _OVERHEAD:
            raise event_too_large(self.max_event)
        return max(total, _PRELUDE)

    def feed(self, data: bytes) -> list[tuple[str, str, bytes]]:
        """Events completed by `data`."""
        out: list[tuple[str, str, bytes]] = []
        try:
            for frame in self._frames(data):
                self._buffer.add_data(frame)
                for message in self._buffer:
                    headers = message.headers
                    kind = headers.get(":message-type") or "event"
                    if kind == "event":
                        name = headers.get(":event-type") or ""
                    elif kind == "exception":
                        name = headers.get(":exception-type") or "exception"
                    else:  # "error": the code and message travel in headers
                        name = headers.get(":error-code") or "error"
                        text = headers.get(":error-message")
                        payload = (
                            json.dumps({"message": text}).encode() if text else message.payload
                        )
                        out.append((kind, name, payload))
                        continue
                    out.append((kind, name, message.payload))
        except self._errors as exc:
            raise InvalidResponseError(
                f"cannot decode the event stream: {exc}", op="stream", provider="bedrock", err=exc
            ) from exc
        return out

    def flush(self) -> list[tuple[str, str, bytes]]:
        """Nothing, or invalid_response when the body ended inside a frame."""
        if self._size:
            raise InvalidResponseError(
                "the event stream ended inside a frame", op="stream", provider="bedrock"
            )
        return []


# -- compressed bodies ---------------------------------------------------------------------


def body_too_large(limit: int) -> InvalidResponseError:
    """The error for a reply whose body, decoded, is longer than `limit` bytes."""
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
        raise body_too_large(limit)
    if not inflater.eof:
        raise InvalidResponseError("the reply's compressed body is cut short", op="transport")
    return out


class Inflate:
    """Incremental inflating of a compressed stream, at most `_INFLATE_SIZE` bytes a step."""

    __slots__ = ("_obj", "tail")

    def __init__(self, wbits: int) -> None:
        self._obj = zlib.decompressobj(wbits)
        self.tail = b""  # compressed bytes not inflated yet

    def step(self, data: bytes) -> bytes:
        """Up to `_INFLATE_SIZE` bytes inflated from `data`; the rest waits in `tail`."""
        try:
            out = self._obj.decompress(data, _INFLATE_SIZE)
        except zlib.error as exc:
            raise _inflate_error(exc) from exc
        self.tail = self._obj.unconsumed_tail
        return out


def inflater(headers: Headers) -> Inflate | None:
    """The inflater of a stream's compressed body (None: it is not compressed)."""
    wbits = _wbits(headers)
    return None if wbits is None else Inflate(wbits)
