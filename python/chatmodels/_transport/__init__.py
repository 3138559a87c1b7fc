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

`Transport` is the one interface the models use; its modules: `_wire` (request, response,
headers), `_retry` (the retry decision), `_framing` (stream events and compressed bodies,
bounded), `_base` (configuration and the errors born here), `_sync` (http.client) and
`_async` (aiohttp).
"""

from __future__ import annotations

from ._async import AsyncTransport
from ._sync import SyncTransport

__all__ = ["Transport"]


class Transport(SyncTransport, AsyncTransport):
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

    def close(self) -> None:
        """Close every pooled connection, without needing an event loop.

        The async session is closed on its loop when that loop runs in another thread; when
        its loop is closed (after ``asyncio.run``), its sockets are closed here directly.
        """
        self._closed = True
        self._close_idle()
        self._drop_session()

    async def aclose(self) -> None:
        """Close every connection, waiting for the async session to shut down."""
        await self._close_session()
        self.close()
