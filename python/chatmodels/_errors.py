"""Errors: one hierarchy under `ChatModelError`, each carrying op, code and cause.

    ChatModelError
    ├── InvalidProviderNameError      invalid_provider_name
    ├── InvalidCreatorError           invalid_creator
    ├── ProviderAlreadyRegisteredError provider_already_registered
    ├── ProviderNotFoundError         provider_not_found
    ├── InvalidConfigError            invalid_config
    ├── CapabilityNotSupportedError   capability_not_supported
    ├── CreationError                 creation_failed
    │   └── CreationTimeoutError      creation_timeout
    └── APIError                      any call-time code (see `error_class_for`)
        ├── AuthenticationError       authentication
        ├── PermissionDeniedError     permission_denied
        ├── RateLimitError            rate_limited
        ├── TimeoutError              timeout (also a builtin TimeoutError)
        ├── NetworkError              network
        ├── ContextLengthExceededError context_length_exceeded
        ├── ContentFilteredError      content_filtered
        ├── BadRequestError           bad_request
        ├── ProviderUnavailableError  provider_unavailable
        ├── InvalidResponseError      invalid_response
        └── InternalError             internal

A cancelled call (``asyncio.CancelledError``, ``KeyboardInterrupt``) propagates as it is, never
wrapped; telemetry records it with error.type ``cancelled`` (`ErrorCode.CANCELLED`).

Messages read `chatmodels.<op>: <detail> (code=<code>)`. The API key never reaches a message:
callers pass details that do not contain it, and `redact` scrubs a model's key from every error
a call raises (message, args, attributes, the chained causes) before telemetry or the caller
sees it: providers echo keys back in their messages.
"""

from __future__ import annotations

import builtins
import contextlib
import enum
from collections.abc import Iterable
from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "CapabilityNotSupportedError",
    "ChatModelError",
    "ContentFilteredError",
    "ContextLengthExceededError",
    "CreationError",
    "CreationTimeoutError",
    "ErrorCode",
    "InternalError",
    "InvalidConfigError",
    "InvalidCreatorError",
    "InvalidProviderNameError",
    "InvalidResponseError",
    "NetworkError",
    "PermissionDeniedError",
    "ProviderAlreadyRegisteredError",
    "ProviderNotFoundError",
    "ProviderUnavailableError",
    "RateLimitError",
    "TimeoutError",
]


class ErrorCode(str, enum.Enum):
    """What went wrong, as a stable machine-readable string."""

    INVALID_PROVIDER_NAME = "invalid_provider_name"
    INVALID_CREATOR = "invalid_creator"
    PROVIDER_ALREADY_REGISTERED = "provider_already_registered"
    PROVIDER_NOT_FOUND = "provider_not_found"
    INVALID_CONFIG = "invalid_config"
    CREATION_FAILED = "creation_failed"
    CREATION_TIMEOUT = "creation_timeout"
    CAPABILITY_NOT_SUPPORTED = "capability_not_supported"
    AUTHENTICATION = "authentication"
    PERMISSION_DENIED = "permission_denied"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    NETWORK = "network"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    CONTENT_FILTERED = "content_filtered"
    BAD_REQUEST = "bad_request"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    INVALID_RESPONSE = "invalid_response"
    CANCELLED = "cancelled"
    INTERNAL = "internal"

    def __str__(self) -> str:
        return self.value


_RETRYABLE = frozenset(
    {
        ErrorCode.RATE_LIMITED,
        ErrorCode.TIMEOUT,
        ErrorCode.NETWORK,
        ErrorCode.PROVIDER_UNAVAILABLE,
        ErrorCode.CREATION_TIMEOUT,
    }
)


class ChatModelError(Exception):
    """Base of every chatmodels error.

    Attributes:
        op: the operation that failed, such as ``"register_global"``.
        code: the `ErrorCode`.
        err: the underlying exception, also chained as ``__cause__``.
        provider: the provider name involved, when there is one.
        correlation_id: the id that finds the operation's spans and log records.
        retryable: whether trying again may succeed.
        status_code: the HTTP status, for errors from a provider's API.
        request_id: the provider's request id, when it sent one.
        retry_after: seconds the provider (a 429 or 503's Retry-After) or a route's rate
            limit asks to wait before trying again; None when nothing said.
        attempts: for a routed call that failed over, each attempt's error in order.
    """

    default_code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self,
        detail: str,
        *,
        op: str,
        code: ErrorCode | str | None = None,
        err: BaseException | None = None,
        provider: str | None = None,
        correlation_id: str | None = None,
        retryable: bool | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        attempts: tuple[ChatModelError, ...] = (),
    ) -> None:
        self.detail = detail
        self.op = op
        self.code = ErrorCode(code) if code is not None else self.default_code
        self.err = err
        self.provider = provider
        self.correlation_id = correlation_id
        self.retryable = self.code in _RETRYABLE if retryable is None else retryable
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after
        self.attempts = attempts
        if err is not None:
            self.__cause__ = err
        super().__init__(self._message())

    def _message(self) -> str:
        return f"chatmodels.{self.op}: {self.detail} (code={self.code.value})"

    def __str__(self) -> str:
        return self._message()

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(op={self.op!r}, code={self.code.value!r}, detail={self.detail!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments do not survive the default pickling of exceptions.
        return (_rebuild, (type(self), self.detail, self._state()))

    def _state(self) -> dict[str, object]:
        return {
            "op": self.op,
            "code": self.code.value,
            "provider": self.provider,
            "correlation_id": self.correlation_id,
            "retryable": self.retryable,
            "status_code": self.status_code,
            "request_id": self.request_id,
            "retry_after": self.retry_after,
            "attempts": self.attempts,
        }


def _rebuild(cls: type[ChatModelError], detail: str, state: dict[str, object]) -> ChatModelError:
    return cls(detail, **state)  # type: ignore[arg-type]


class InvalidProviderNameError(ChatModelError, ValueError):
    """The provider name is not a non-empty, printable str of at most 256 characters."""

    default_code = ErrorCode.INVALID_PROVIDER_NAME


class InvalidCreatorError(ChatModelError, TypeError):
    """The creator is not callable."""

    default_code = ErrorCode.INVALID_CREATOR


class ProviderAlreadyRegisteredError(ChatModelError):
    """A provider of that name is registered and ``replace=True`` was not given."""

    default_code = ErrorCode.PROVIDER_ALREADY_REGISTERED


class ProviderNotFoundError(ChatModelError, LookupError):
    """No provider of that name is registered."""

    default_code = ErrorCode.PROVIDER_NOT_FOUND


class InvalidConfigError(ChatModelError, ValueError):
    """Options or parameters are missing, unknown or of the wrong type."""

    default_code = ErrorCode.INVALID_CONFIG


class CapabilityNotSupportedError(ChatModelError):
    """The provider lacks a capability the call needs."""

    default_code = ErrorCode.CAPABILITY_NOT_SUPPORTED


class CreationError(ChatModelError):
    """A provider's creator raised or returned something that is not a chat model."""

    default_code = ErrorCode.CREATION_FAILED


class CreationTimeoutError(CreationError, builtins.TimeoutError):
    """A provider's creator ran past its ``creation_timeout``; also a builtin `TimeoutError`."""

    default_code = ErrorCode.CREATION_TIMEOUT


class APIError(ChatModelError):
    """A chat call failed; the code says how."""


class AuthenticationError(APIError):
    """The API rejected the credential (HTTP 401)."""

    default_code = ErrorCode.AUTHENTICATION


class PermissionDeniedError(APIError):
    """The credential lacks permission (HTTP 403)."""

    default_code = ErrorCode.PERMISSION_DENIED


class RateLimitError(APIError):
    """The API asked us to slow down (HTTP 429)."""

    default_code = ErrorCode.RATE_LIMITED


class TimeoutError(APIError, builtins.TimeoutError):
    """The call ran past its timeout; also the builtin `TimeoutError`, so that a plain
    ``except TimeoutError:`` catches it."""

    default_code = ErrorCode.TIMEOUT


class NetworkError(APIError):
    """The connection failed."""

    default_code = ErrorCode.NETWORK


class ContextLengthExceededError(APIError):
    """The prompt does not fit the model's context window."""

    default_code = ErrorCode.CONTEXT_LENGTH_EXCEEDED


class ContentFilteredError(APIError):
    """The provider's content filter refused the request or the reply."""

    default_code = ErrorCode.CONTENT_FILTERED


class BadRequestError(APIError):
    """The API refused the request as malformed (other HTTP 4xx)."""

    default_code = ErrorCode.BAD_REQUEST


class ProviderUnavailableError(APIError):
    """The provider failed or is overloaded (HTTP 5xx)."""

    default_code = ErrorCode.PROVIDER_UNAVAILABLE


class InvalidResponseError(APIError):
    """The reply could not be parsed."""

    default_code = ErrorCode.INVALID_RESPONSE


class InternalError(APIError):
    """A bug in chatmodels or in a provider adapter."""

    default_code = ErrorCode.INTERNAL


_BY_CODE: dict[ErrorCode, type[ChatModelError]] = {
    cls.default_code: cls
    for cls in (
        InvalidProviderNameError,
        InvalidCreatorError,
        ProviderAlreadyRegisteredError,
        ProviderNotFoundError,
        InvalidConfigError,
        CapabilityNotSupportedError,
        CreationError,
        CreationTimeoutError,
        AuthenticationError,
        PermissionDeniedError,
        RateLimitError,
        TimeoutError,
        NetworkError,
        ContextLengthExceededError,
        ContentFilteredError,
        BadRequestError,
        ProviderUnavailableError,
        InvalidResponseError,
        InternalError,
    )
}
# Nothing raises a cancelled error: cancellation propagates as it is, and telemetry records
# the code on a plain APIError.
_BY_CODE[ErrorCode.CANCELLED] = APIError


def error_class_for(code: ErrorCode | str) -> type[ChatModelError]:
    """The most specific error class for a code."""
    return _BY_CODE[ErrorCode(code)]


def make_error(code: ErrorCode | str, detail: str, **context: object) -> ChatModelError:
    """Build the error of the class that matches `code`."""
    return error_class_for(code)(detail, code=code, **context)  # type: ignore[arg-type]


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to `name`, for a did-you-mean hint."""
    import difflib  # only on the error path: keeps `import chatmodels` cheap

    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = suggest(name, candidates)
    return f"; did you mean {close!r}?" if close else ""


# The factories below are the single source of the registry table's error messages: the
# pure-Python table calls them, and so does the Rust table (through PyO3), so both backends
# raise identical errors.


def name_error(op: str, name: object, reason: str) -> InvalidProviderNameError:
    """A provider name that is not acceptable; `reason` says why."""
    shown = _short_repr(name)
    return InvalidProviderNameError(f"invalid provider name {shown}: {reason}", op=op)


def not_found_error(op: str, name: str, known: list[str]) -> ProviderNotFoundError:
    """No provider called `name`; suggests the closest of `known`."""
    return ProviderNotFoundError(
        f"provider {_short_repr(name)} is not registered{_did_you_mean(name, known)}",
        op=op,
        provider=name,
    )


def already_registered_error(op: str, name: str) -> ProviderAlreadyRegisteredError:
    """A provider called `name` exists and the caller did not ask to replace it."""
    return ProviderAlreadyRegisteredError(
        f"provider {name!r} is already registered; pass replace=True to swap it",
        op=op,
        provider=name,
    )


MASK = "**********"
_MIN_SECRET = 4  # a shorter "secret" would mask ordinary text
_MIN_TAIL = 6
_MAX_CHAIN = 32
# Attributes some built-in exceptions print from, beside their args.
_TEXT_ATTRS = ("object", "reason", "strerror", "filename", "filename2", "msg", "text", "path")


def redact(error: BaseException, secret: str | None) -> None:
    """Scrub `secret` in place from `error` and the exceptions chained to it (``__cause__``,
    ``__context__``, `ChatModelError.err`, a group's members): their args, str attributes,
    notes and the text the built-in exceptions print from. A detail that ends with the
    start of `secret` (a message cut inside the key) loses that start too."""
    if not secret or len(secret) < _MIN_SECRET:
        return
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo and len(seen) < _MAX_CHAIN:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        _redact_one(exc, secret)
        todo += (exc.__cause__, exc.__context__)
        if isinstance(exc, ChatModelError):
            todo.append(exc.err)
        members = getattr(exc, "exceptions", None)  # an exception group's (3.11+)
        if isinstance(members, tuple):
            todo.extend(m for m in members if isinstance(m, BaseException))


def _redact_one(exc: BaseException, secret: str) -> None:
    if isinstance(exc, ChatModelError):
        exc.detail = _cut_tail(_scrubbed(exc.detail, secret), secret)
    for name, value in list(vars(exc).items()):
        clean = _scrubbed(value, secret)
        if clean is not value:
            setattr(exc, name, clean)
    for name in _TEXT_ATTRS:
        value = getattr(exc, name, None)
        if isinstance(value, (str, bytes)):
            clean = _scrubbed(value, secret)
            if clean is not value:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(exc, name, clean)
    args = exc.args
    if isinstance(exc, ChatModelError) and len(args) == 1 and isinstance(args[0], str):
        exc.args = (exc._message(),)
    else:
        clean_args = _scrubbed(args, secret)
        if clean_args is not args:
            exc.args = clean_args


def _scrubbed(value: Any, secret: str) -> Any:
    """`value` without `secret` (str, bytes, and the tuples, lists and dicts of them); the
    same object when there was nothing to scrub."""
    if isinstance(value, str):
        return value.replace(secret, MASK) if secret in value else value
    if isinstance(value, bytes):
        raw = secret.encode("utf-8", "replace")
        return value.replace(raw, MASK.encode()) if raw in value else value
    if isinstance(value, (tuple, list)):
        items = [_scrubbed(v, secret) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return type(value)(items) if type(value) in (tuple, list) else tuple(items)
    if isinstance(value, dict):
        pairs = {k: _scrubbed(v, secret) for k, v in value.items()}
        if all(pairs[k] is v for k, v in value.items()):
            return value
        return pairs
    return value


def _cut_tail(text: str, secret: str) -> str:
    """`text` without a trailing start of `secret` of at least `_MIN_TAIL` characters: a
    provider's message cut to a length inside the key (where messages are cut: at the end
    of an error's detail)."""
    end = text.rstrip(" .…")
    for size in range(min(len(secret) - 1, len(end)), _MIN_TAIL - 1, -1):
        if end.endswith(secret[:size]):
            return end[:-size] + MASK
    return text


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else f"of type {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 4] + "...'"
