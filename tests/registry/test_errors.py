"""The error hierarchy: op, code, cause, message shape, classes per code, and both registry
tables raising the very same classes and messages."""

from __future__ import annotations

import pickle

import chatmodels
import pytest
from chatmodels import (
    APIError,
    ChatModelError,
    CreationError,
    CreationTimeoutError,
    ErrorCode,
    InvalidConfigError,
    InvalidProviderNameError,
    ProviderAlreadyRegisteredError,
    ProviderNotFoundError,
    ProviderRegistry,
)
from chatmodels._errors import error_class_for, make_error
from helpers import BACKENDS, check_error

REGISTRY_CODES = {
    "invalid_provider_name": "InvalidProviderNameError",
    "invalid_creator": "InvalidCreatorError",
    "provider_already_registered": "ProviderAlreadyRegisteredError",
    "provider_not_found": "ProviderNotFoundError",
    "invalid_config": "InvalidConfigError",
    "creation_failed": "CreationError",
    "creation_timeout": "CreationTimeoutError",
    "capability_not_supported": "CapabilityNotSupportedError",
}
CALL_CODES = {
    "authentication": "AuthenticationError",
    "permission_denied": "PermissionDeniedError",
    "rate_limited": "RateLimitError",
    "timeout": "TimeoutError",
    "network": "NetworkError",
    "context_length_exceeded": "ContextLengthExceededError",
    "content_filtered": "ContentFilteredError",
    "bad_request": "BadRequestError",
    "provider_unavailable": "ProviderUnavailableError",
    "invalid_response": "InvalidResponseError",
    "internal": "InternalError",
}
ALL_CODES = {**REGISTRY_CODES, **CALL_CODES}


def test_every_code_exists() -> None:
    assert {c.value for c in ErrorCode} >= set(ALL_CODES)
    for value in ALL_CODES:
        assert ErrorCode(value).value == value
        assert str(ErrorCode(value)) == value
        assert ErrorCode(value) == value  # a str enum


@pytest.mark.parametrize(("code", "class_name"), sorted(ALL_CODES.items()))
def test_a_public_class_per_code(code: str, class_name: str) -> None:
    cls = getattr(chatmodels, class_name)
    assert class_name in chatmodels.__all__
    assert issubclass(cls, ChatModelError)
    assert cls.default_code == code
    assert error_class_for(code) is cls
    error = make_error(code, "something happened", op="demo", provider="p")
    assert type(error) is cls
    check_error(error, cls, op="demo", code=code, detail="something happened", provider="p")


@pytest.mark.parametrize("code", sorted(CALL_CODES))
def test_call_time_errors_are_api_errors(code: str) -> None:
    assert issubclass(error_class_for(code), APIError)


def test_hierarchy_for_catching() -> None:
    assert issubclass(CreationTimeoutError, CreationError)
    assert issubclass(ProviderNotFoundError, LookupError)
    assert issubclass(InvalidProviderNameError, ValueError)
    assert issubclass(InvalidConfigError, ValueError)
    assert issubclass(chatmodels.InvalidCreatorError, TypeError)
    assert issubclass(ChatModelError, Exception)
    assert not issubclass(ProviderAlreadyRegisteredError, ProviderNotFoundError)


def test_message_shape_and_attributes() -> None:
    cause = OSError("disk full")
    error = ProviderAlreadyRegisteredError(
        "provider 'openai' is already registered",
        op="register_global",
        err=cause,
        provider="openai",
        correlation_id="c-1",
    )
    assert str(error) == (
        "chatmodels.register_global: provider 'openai' is already registered"
        " (code=provider_already_registered)"
    )
    assert error.args == (str(error),)
    assert error.err is cause
    assert error.__cause__ is cause
    assert error.provider == "openai"
    assert error.correlation_id == "c-1"
    assert error.retryable is False
    assert repr(error) == (
        "ProviderAlreadyRegisteredError(op='register_global', "
        "code='provider_already_registered', detail=\"provider 'openai' is already registered\")"
    )


def test_no_cause_by_default() -> None:
    error = ProviderNotFoundError("nope", op="x")
    assert error.err is None
    assert error.__cause__ is None


def test_code_can_be_given_as_str_and_is_validated() -> None:
    assert ChatModelError("x", op="o", code="network").code is ErrorCode.NETWORK
    with pytest.raises(ValueError, match="no_such_code"):
        ChatModelError("x", op="o", code="no_such_code")


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("rate_limited", True),
        ("timeout", True),
        ("network", True),
        ("provider_unavailable", True),
        ("creation_timeout", True),
        ("authentication", False),
        ("bad_request", False),
        ("provider_not_found", False),
        ("creation_failed", False),
    ],
)
def test_retryable_defaults(code: str, retryable: bool) -> None:
    assert make_error(code, "x", op="o").retryable is retryable
    assert make_error(code, "x", op="o", retryable=not retryable).retryable is (not retryable)


def test_errors_pickle() -> None:
    error = CreationTimeoutError("slow", op="create", provider="p", correlation_id="c")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CreationTimeoutError
    assert str(copy) == str(error)
    assert (copy.op, copy.code, copy.provider, copy.correlation_id, copy.retryable) == (
        "create",
        ErrorCode.CREATION_TIMEOUT,
        "p",
        "c",
        True,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_backends_raise_the_public_classes(backend: str) -> None:
    registry = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    registry.register("openai", lambda o: chatmodels.ChatModel(registry.metadata("openai"), o))
    with pytest.raises(ProviderNotFoundError) as not_found:
        registry.metadata("opnai")
    with pytest.raises(ProviderAlreadyRegisteredError) as taken:
        registry.register("openai", print)
    with pytest.raises(InvalidProviderNameError) as bad:
        registry.is_registered("")
    for info in (not_found, taken, bad):
        assert type(info.value).__module__ == "chatmodels._errors"
        assert isinstance(info.value, ChatModelError)


# The registry tables themselves (what the Rust core implements) must agree call for call.


def _outcome(call: object) -> tuple[str, object]:
    try:
        result = call() if callable(call) else call
    except ChatModelError as exc:
        return ("error", (type(exc), exc.op, exc.code, str(exc), exc.provider))
    return ("ok", result)


def test_tables_agree_call_for_call() -> None:
    rust = ProviderRegistry(backend="rust")._table
    python = ProviderRegistry(backend="python")._table
    entry_a, entry_b = object(), object()
    script = [
        lambda t: t.names(),
        lambda t: t.insert("openai", entry_a, 0b11, False, "op1"),
        lambda t: t.insert("openai", entry_b, 0b01, False, "op2"),
        lambda t: t.insert("openai", entry_b, 0b01, True, "op3"),
        lambda t: t.get("openai", "op4") is entry_b,
        lambda t: t.get("opnai", "op5"),
        lambda t: t.get("", "op6"),
        lambda t: t.get(5, "op7"),
        lambda t: t.contains("openai", "op8"),
        lambda t: t.contains("nope", "op9"),
        lambda t: t.contains(" x", "op10"),
        lambda t: t.insert("anthropic", entry_a, 0b10, False, "op11"),
        lambda t: t.names(),
        lambda t: t.names_with(0b01),
        lambda t: t.names_with(0b10),
        lambda t: t.names_with(0b11),
        lambda t: t.names_with(0),
        lambda t: [(n, e is entry_a) for n, e in t.entries()],
        lambda t: t.version,
        lambda t: len(t),
        lambda t: t.remove("openai", "op12") is entry_b,
        lambda t: t.remove("openai", "op13"),
        lambda t: t.remove("x" * 300, "op14"),
        lambda t: t.insert("a\x00", entry_a, 1, False, "op15"),
        lambda t: (t.version, len(t), t.names()),
        lambda t: t.clear(),
        lambda t: (t.version, len(t), t.names()),
    ]
    for step, call in enumerate(script):
        got_rust = _outcome(lambda c=call: c(rust))  # type: ignore[misc]
        got_python = _outcome(lambda c=call: c(python))  # type: ignore[misc]
        assert got_rust == got_python, f"step {step}"


def test_a_rust_panic_is_an_internal_error() -> None:
    from chatmodels import InternalError, _core

    with pytest.raises(InternalError) as info:
        _core._panic_for_tests("register")
    check_error(info.value, InternalError, op="register", code="internal")
    assert "panicked" in str(info.value)


def test_no_class_for_cancellation_is_exported() -> None:
    """Nothing raises a chatmodels cancellation error: cancellation propagates as it is."""
    assert "CancelledError" not in chatmodels.__all__
    assert not hasattr(chatmodels, "CancelledError")
    assert ErrorCode.CANCELLED == "cancelled"  # telemetry's error.type of a cancelled call
    assert error_class_for("cancelled") is APIError


def test_a_chatmodels_timeout_is_a_builtin_timeout() -> None:
    for cls in (chatmodels.TimeoutError, CreationTimeoutError):
        assert issubclass(cls, TimeoutError)
        assert cls is not TimeoutError
    error = make_error("timeout", "no answer", op="invoke", provider="p")
    caught: list[BaseException] = []
    try:
        raise error
    except TimeoutError as exc:  # the builtin
        caught.append(exc)
    try:
        raise error
    except ChatModelError as exc:
        caught.append(exc)
    assert caught == [error, error]
    check_error(error, chatmodels.TimeoutError, op="invoke", code="timeout", provider="p")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is chatmodels.TimeoutError
    assert str(copy) == str(error)


async def _raises_call_timeout(options: chatmodels.ProviderOptions) -> chatmodels.ChatModel:
    raise chatmodels.TimeoutError("the creator's own call timed out", op="invoke")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_async_creators_own_timeout_is_not_a_creation_timeout(backend: str) -> None:
    """A chatmodels timeout is also asyncio's: the registry must not take one raised by the
    creator for its own creation limit."""
    import asyncio

    registry = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    registry.register("slowpoke", _raises_call_timeout, metadata={})
    with pytest.raises(chatmodels.TimeoutError) as info:
        asyncio.run(registry.acreate("slowpoke", creation_timeout=5))
    assert type(info.value) is chatmodels.TimeoutError


def test_cancellation_propagates_unwrapped_and_is_recorded_as_cancelled() -> None:
    import asyncio

    from chatmodels import telemetry
    from chatmodels._observe import set_observer
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous_container = telemetry.get_container()
    previous_observer = set_observer(telemetry.TelemetryObserver())
    try:
        chatmodels.configure(tracer_provider=provider, level="standard")
        model = chatmodels.new_registry_provider(
            "fake", {"provider_specific": {"responses": ["late"], "latency": 30}}
        )

        async def main() -> None:
            task = asyncio.ensure_future(model.ainvoke("hi"))
            await asyncio.sleep(0.05)
            task.cancel()
            await task

        with pytest.raises(asyncio.CancelledError) as info:
            asyncio.run(main())
        assert type(info.value) is asyncio.CancelledError
        assert info.value.__cause__ is None
    finally:
        set_observer(previous_observer)
        telemetry.set_container(previous_container)
        provider.shutdown()
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert span.attributes is not None
    assert span.attributes["error.type"] == "cancelled"
