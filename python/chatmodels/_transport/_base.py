"""What the sync and async transports share: the configuration of one API root, the errors
born in the transport (timeout, network, a redirect, headers that cannot be sent), and each
attempt reported to the call's scope with the retry decision's answer."""

from __future__ import annotations

import asyncio
import http.client
import re
import ssl
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._errors import ChatModelError, make_error, redact
from .._observe import CallScope
from ._framing import DEFAULT_MAX_EVENT_BYTES
from ._retry import delay_after_failure, delay_after_status, retry_after_of
from ._wire import Headers, code_for_status, request_id_of

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Expired", "TransportBase", "header_fault", "shared_ssl_context"]

DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

_HEADER_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def header_fault(text: str) -> str | None:
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


_monotonic = time.monotonic


class Expired(TimeoutError):
    """A limit of the call ran out: ``args`` are its kind (deadline, connect, idle) and its
    seconds."""


_EXPIRED = {
    "deadline": "no complete answer from {origin} within the call's timeout of {s:g} s",
    "connect": "could not connect to {origin} within the connect timeout of {s:g} s",
    "idle": "the stream from {origin} sent no event for stream_idle_timeout ({s:g} s)",
}


class TransportBase:
    """The configuration and the errors of a transport to one API root (see `Transport`)."""

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
        self._closed = False
        # the state of the two halves, emptied by `Transport.close`
        self._idle: list[http.client.HTTPConnection] = []  # see `SyncTransport`
        self._lock = threading.Lock()
        self._session: aiohttp.ClientSession | None = None  # see `AsyncTransport`
        self._session_loop: asyncio.AbstractEventLoop | None = None
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
        if isinstance(exc, Expired):
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

    def _header_error(self, headers: Mapping[str, str]) -> ChatModelError:
        """The error for headers that cannot be sent, naming the header, never its value."""
        for name, value in headers.items():
            why = header_fault(name) or header_fault(value)
            if why:
                return self._error("invalid_config", f"header {_shown_name(name)} {why}")
        return self._error("invalid_config", "the request line cannot be sent")

    # -- attempts --------------------------------------------------------------------------

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
        the seconds to wait before the next attempt (see `delay_after_status`). Raises the
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
        return delay_after_status(attempt, last, status, headers, deadline, clock)

    def _after_failure(
        self, attempt: int, last: int, exc: BaseException, scope: CallScope, left: float
    ) -> tuple[ChatModelError, float | None]:
        """Report a failed attempt; its error, and the seconds to wait before the next attempt
        (see `delay_after_failure`)."""
        error = self._exc_to_error(exc)
        scope.attempt(attempt, error)
        return error, delay_after_failure(attempt, last, left)

    def _status_error(self, status: int, headers: Headers) -> ChatModelError:
        """The error an HTTP error status means, as the scope records the attempt."""
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
