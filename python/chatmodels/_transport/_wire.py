"""What goes over the wire: a request as an adapter builds it, a response as the transport
returns it, and what an HTTP status or its headers say."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

__all__ = ["Headers", "WireRequest", "WireResponse", "code_for_status", "request_id_of"]


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
