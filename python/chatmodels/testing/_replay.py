"""`ReplayServer`: the exchanges of a vcrpy cassette served in order, byte for byte; reading
cassettes and comparing JSON bodies."""

from __future__ import annotations

import dataclasses
import gzip
import importlib
import json
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .._errors import InvalidConfigError
from ._server import ReceivedRequest, _LoopbackServer, _parse_json, _Response, _text_response

# --------------------------------------------------------------------------- public data


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """The request of a cassette interaction; ``path`` is the URI's path and query."""

    method: str
    uri: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    json: Any


@dataclasses.dataclass(frozen=True)
class RecordedResponse:
    """The response of a cassette interaction, as `ReplayServer` serves it.

    ``body`` is the recorded body, decompressed when it was recorded gzip- or
    deflate-encoded; ``headers`` are the recorded ones minus hop-by-hop, length and encoding
    headers (the server adds its own framing).
    """

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclasses.dataclass(frozen=True)
class RecordedInteraction:
    """One recorded request and its response."""

    request: RecordedRequest
    response: RecordedResponse


# --------------------------------------------------------------------------- replay

# Not replayed: hop-by-hop headers, and the framing and encoding the server decides itself.
_DROPPED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "te",
        "trailer",
        "upgrade",
    }
)
# Sent chunked, like the live APIs do, so stream parsers see a realistic response.
_STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/vnd.amazon.eventstream")


def _body_bytes(body: Any) -> bytes:
    """A vcrpy body (``{"string": str | bytes}``, a bare str or bytes, or None) as bytes."""
    if isinstance(body, dict):
        body = body.get("string")
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes):
        return body
    raise TypeError(f"unexpected body type {type(body).__name__}")


def _header_pairs(headers: Any) -> list[tuple[str, str]]:
    """vcrpy headers (name → value or list of values) as (name, value) pairs."""
    pairs: list[tuple[str, str]] = []
    for name, values in (headers or {}).items():
        for value in values if isinstance(values, list) else [values]:
            pairs.append((str(name), str(value)))
    return pairs


def _path_key(target: str) -> tuple[str, list[tuple[str, str]]]:
    """A request target for matching: the unquoted path and the sorted query."""
    parts = urlsplit(target)
    return unquote(parts.path) or "/", sorted(parse_qsl(parts.query, keep_blank_values=True))


def load_cassette(path: str | os.PathLike[str]) -> list[RecordedInteraction]:
    """Read a vcrpy cassette (YAML) into `RecordedInteraction` objects. Needs PyYAML.

    Response bodies are bytes exactly as recorded, except that a gzip- or deflate-encoded
    body is decompressed (and its Content-Encoding header dropped).
    """
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError as exc:
        raise InvalidConfigError(
            "reading a cassette needs PyYAML: pip install pyyaml",
            op="testing.load_cassette",
            err=exc,
        ) from exc
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, "rb") as file:
            data = yaml.load(file, Loader=loader)
        return [_interaction(item) for item in data["interactions"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise InvalidConfigError(
            f"cannot read cassette {os.fspath(path)!r}: {exc}", op="testing.load_cassette", err=exc
        ) from exc


def _interaction(item: Mapping[str, Any]) -> RecordedInteraction:
    request, response = item["request"], item["response"]
    uri = str(request["uri"])
    parts = urlsplit(uri)
    request_headers: dict[str, str] = {}
    for name, value in _header_pairs(request.get("headers")):
        key = name.lower()
        request_headers[key] = (
            f"{request_headers[key]}, {value}" if key in request_headers else value
        )
    request_body = _body_bytes(request.get("body"))
    recorded_request = RecordedRequest(
        method=str(request["method"]).upper(),
        uri=uri,
        path=parts.path + (f"?{parts.query}" if parts.query else ""),
        headers=request_headers,
        body=request_body,
        json=_parse_json(request_body),
    )

    headers = _header_pairs(response.get("headers"))
    body = _body_bytes(response.get("body"))
    encoding = next((v.lower() for k, v in headers if k.lower() == "content-encoding"), "")
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    elif encoding not in ("", "identity"):
        raise TypeError(f"cannot replay a body with Content-Encoding {encoding!r}")
    status = response["status"]
    recorded_response = RecordedResponse(
        status=int(status["code"]),
        reason=str(status.get("message") or ""),
        headers=tuple((k, v) for k, v in headers if k.lower() not in _DROPPED_HEADERS),
        body=body,
    )
    return RecordedInteraction(recorded_request, recorded_response)


class ReplayServer(_LoopbackServer):
    """Serves recorded exchanges, in order, byte for byte.

    Each request must match the next recorded interaction by method and by path and query
    (scheme and host are ignored; percent-encoding and query order do not matter). A match
    gets the recorded status, headers and body; a streamed recording (SSE, NDJSON, AWS event
    stream) is sent chunked, anything else with Content-Length. A request that does not match
    gets a 404 whose text body says what was expected, and does not consume the interaction.

    Args:
        interactions: what to serve, such as `load_cassette` returns.
        repeat: start over after the last interaction (for benchmarks) instead of refusing.
        host: as for `OpenAICompatibleServer`.
        port: as for `OpenAICompatibleServer`.
        max_recorded: as for `OpenAICompatibleServer`.

    Example:
        >>> with ReplayServer.from_cassette("openai/chat_completion_with_content.yaml") as s:
        ...     ...  # point the client at s.base_url, then:
        ...     s.check_requests()
    """

    def __init__(
        self,
        interactions: Sequence[RecordedInteraction],
        *,
        repeat: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        max_recorded: int = 10_000,
    ) -> None:
        super().__init__(host=host, port=port, max_recorded=max_recorded)
        self._interactions = tuple(interactions)
        self._repeat = repeat
        self._served = 0
        self._unmatched: list[tuple[ReceivedRequest, str]] = []

    @classmethod
    def from_cassette(
        cls,
        path: str | os.PathLike[str],
        *,
        repeat: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        max_recorded: int = 10_000,
    ) -> ReplayServer:
        """A server for the interactions of a vcrpy cassette file. Needs PyYAML."""
        interactions = load_cassette(path)
        return cls(interactions, repeat=repeat, host=host, port=port, max_recorded=max_recorded)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the recorded URIs' paths are appended to it as they are."""
        return f"http://{self.host}:{self.port}"

    @property
    def interactions(self) -> tuple[RecordedInteraction, ...]:
        """The recorded interactions, in the order they are served."""
        return self._interactions

    @property
    def served(self) -> int:
        """How many requests got a recorded response."""
        with self._lock:
            return self._served

    def check_requests(self, *, require_all: bool = True) -> None:
        """Raise AssertionError if a request matched no interaction or, with ``require_all``,
        if some interactions were never requested."""
        with self._lock:
            problems = [message for _, message in self._unmatched]
            served = self._served
        if require_all and served < len(self._interactions):
            missing = self._interactions[served:]
            problems.append(
                f"{len(missing)} recorded interaction(s) never requested, starting with "
                f"{missing[0].request.method} {missing[0].request.path}"
            )
        if problems:
            raise AssertionError("ReplayServer:\n" + "\n".join(problems))

    def _respond(self, request: ReceivedRequest) -> _Response:
        with self._lock:
            count = len(self._interactions)
            index = self._served % count if self._repeat and count else self._served
            if index >= count:
                message = (
                    f"no recorded interaction left for {request.method} {request.path}: "
                    f"all {count} were served"
                )
            else:
                expected = self._interactions[index].request
                key = _path_key(request.path)
                if request.method == expected.method and key == _path_key(expected.path):
                    self._served += 1
                    return self._replay(self._interactions[index].response)
                message = (
                    f"request {request.method} {request.path} does not match the next recorded "
                    f"interaction ({index + 1} of {count}): {expected.method} {expected.path}"
                )
            self._unmatched.append((request, message))
        return _text_response(404, f"ReplayServer: {message}\n")

    @staticmethod
    def _replay(recorded: RecordedResponse) -> _Response:
        headers = list(recorded.headers)
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        if content_type.lower().startswith(_STREAM_TYPES):
            return _Response(
                recorded.status, headers, chunks=[recorded.body], reason=recorded.reason
            )
        return _Response(recorded.status, headers, recorded.body, reason=recorded.reason)


def assert_bodies_equivalent(recorded: Any, sent: Any, *, ignore: Iterable[str] = ()) -> None:
    """Assert that two JSON bodies (parsed, or as str/bytes) are equal, ignoring key order.

    ``ignore`` lists dotted paths to skip, such as ``"stream_options"`` or
    ``"messages.0.name"``. The AssertionError lists every differing path.
    """
    if isinstance(recorded, (str, bytes)):
        recorded = json.loads(recorded)
    if isinstance(sent, (str, bytes)):
        sent = json.loads(sent)
    skipped = set(ignore)
    differences: list[str] = []

    def compare(a: Any, b: Any, path: str) -> None:
        if path in skipped:
            return
        where = path or "<root>"
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(a.keys() | b.keys(), key=str):
                sub = f"{path}.{key}" if path else str(key)
                if sub in skipped:
                    continue
                if key not in b:
                    differences.append(f"{sub}: recorded {a[key]!r}, missing from sent")
                elif key not in a:
                    differences.append(f"{sub}: sent {b[key]!r}, missing from recorded")
                else:
                    compare(a[key], b[key], sub)
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                differences.append(f"{where}: recorded {len(a)} items, sent {len(b)}")
            for index, (x, y) in enumerate(zip(a, b, strict=False)):
                compare(x, y, f"{path}.{index}" if path else str(index))
        elif a != b or isinstance(a, bool) != isinstance(b, bool):
            differences.append(f"{where}: recorded {a!r}, sent {b!r}")

    compare(recorded, sent, "")
    if differences:
        raise AssertionError("JSON bodies differ:\n" + "\n".join(differences))
