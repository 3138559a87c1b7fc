"""Telemetry never breaks a call: whatever the OpenTelemetry SDK, a span processor, an
exporter, a meter provider or a log handler raises, every call kind (and registry creation,
and health checks) returns what it returns without telemetry, the failure is reported once
per kind on the ``chatmodels.telemetry`` logger, and the caller's current span and
correlation id are what they were before the call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import chatmodels
import pytest
from chatmodels import ChatModel, ProviderRegistry, telemetry
from chatmodels import _observe as observe_module
from chatmodels._observe import set_observer
from chatmodels._types import ChatResponse, Message, Usage
from chatmodels.testing import OpenAICompatibleServer, ScriptedError, ScriptedReply
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

KEY = "sk-test-secret-key-123456"


class Boom(RuntimeError):
    """What the deliberately broken telemetry raises."""


class RaisingProcessor(SpanProcessor):
    """A span processor that raises in `on_start` or in `on_end`."""

    def __init__(self, where: str) -> None:
        self.where = where

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        if self.where == "on_start":
            raise Boom("on_start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.where == "on_end":
            raise Boom("on_end")


class Tracker(SpanProcessor):
    """Keeps every span started, to check that each one ends."""

    def __init__(self) -> None:
        self.started: list[Span] = []

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        self.started.append(span)


class Faulty:
    """An SDK whose span pipeline is [tracker, in-memory exporter, `processors`...]."""

    def __init__(self, *processors: SpanProcessor, meter_provider: Any = None) -> None:
        self.tracker = Tracker()
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(self.tracker)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.extra = processors
        for processor in processors:
            self.tracer_provider.add_span_processor(processor)
        self.reader = InMemoryMetricReader()
        self.meter_provider = meter_provider or MeterProvider(metric_readers=[self.reader])
        self.container = chatmodels.configure(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def spans(self, prefix: str = "") -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]

    def all_ended(self) -> bool:
        """Whether every span handed out ended. (A processor raising in `on_start` makes the
        SDK's `start_span` raise: that span is never handed out, so it cannot be ended.)"""
        if any(isinstance(p, RaisingProcessor) and p.where == "on_start" for p in self.extra):
            return not self.exporter.get_finished_spans()
        return all(span.end_time is not None for span in self.tracker.started)


@pytest.fixture
def install() -> Iterator[Callable[..., Faulty]]:
    """Install a `Faulty` SDK as chatmodels' telemetry; everything comes back after."""
    previous_container = telemetry.get_container()
    previous_observer = set_observer(telemetry.TelemetryObserver())
    observe_module._FAILURES.clear()  # each test sees its own first reports
    made: list[Faulty] = []

    def make(*processors: SpanProcessor, meter_provider: Any = None) -> Faulty:
        faulty = Faulty(*processors, meter_provider=meter_provider)
        made.append(faulty)
        return faulty

    yield make
    for faulty in made:
        faulty.tracer_provider.shutdown()
    set_observer(previous_observer)
    telemetry.set_container(previous_container)
    observe_module._FAILURES.clear()


@pytest.fixture
def reports() -> Iterator[list[logging.LogRecord]]:
    """The records of the ``chatmodels.telemetry`` logger."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("chatmodels.telemetry")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def _failures(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if getattr(r, "code", None) == "telemetry_failed"]


def _fake(*responses: Any, **options: Any) -> ChatModel:
    return chatmodels.new_registry_provider(
        "fake", {"provider_specific": {"responses": responses, **options}}
    )


def _stream_text(model: ChatModel) -> str:
    with model.stream("hi") as stream:
        return "".join(chunk.text for chunk in stream)


async def _astream_text(model: ChatModel) -> str:
    return "".join([chunk.text async for chunk in model.astream("hi")])


CALLS: dict[str, Callable[[ChatModel], str]] = {
    "invoke": lambda model: model.invoke("hi").text,
    "ainvoke": lambda model: asyncio.run(model.ainvoke("hi")).text,
    "stream": _stream_text,
    "astream": lambda model: asyncio.run(_astream_text(model)),
    "batch": lambda model: "".join(r.text for r in model.batch(["hi", "hi"], max_concurrency=2)),
}


@pytest.fixture(params=["no parent", "under a parent"])
def parent(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The caller's current span: none, or one of a healthy provider of its own."""
    if request.param == "no parent":
        yield trace.get_current_span()
        return
    provider = TracerProvider()
    with provider.get_tracer("app").start_as_current_span("parent") as span:
        yield span
    provider.shutdown()


# -- span processors ----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["on_start", "on_end"])
@pytest.mark.parametrize("kind", list(CALLS))
def test_a_raising_span_processor_never_fails_a_call(
    install: Callable[..., Faulty],
    reports: list[logging.LogRecord],
    parent: Any,
    kind: str,
    where: str,
) -> None:
    faulty = install(RaisingProcessor(where))
    model = _fake(*["Hello there"] * 6)
    call = CALLS[kind]
    for _ in range(3):
        text = call(model)
        assert text.replace("Hello there", "") == ""
        assert trace.get_current_span() is parent
        assert telemetry.current_correlation_id() == _cid_of(parent)
    assert faulty.all_ended()
    if where == "on_end":  # the processors before the raising one saw every span end
        assert len(faulty.spans("chat ")) >= 3
    failures = _failures(reports)
    assert failures, "the failure was not reported"
    kinds = [(r.exc_info[1].__class__ if r.exc_info else None, r.args[0]) for r in failures]
    assert len(kinds) == len(set(kinds)), f"reported more than once per kind: {kinds}"
    assert all(r.exc_info and isinstance(r.exc_info[1], Boom) for r in failures)


def _cid_of(span: Any) -> str | None:
    if not span.is_recording():
        return None
    return format(span.get_span_context().trace_id, "032x")


@pytest.mark.parametrize("where", ["on_start", "on_end"])
@pytest.mark.parametrize("kind", ["invoke", "ainvoke", "stream", "astream"])
def test_a_failing_call_raises_its_own_error_with_a_raising_processor(
    install: Callable[..., Faulty], parent: Any, kind: str, where: str
) -> None:
    faulty = install(RaisingProcessor(where))
    model = _fake({"error": "rate_limited", "message": "slow down"})
    with pytest.raises(chatmodels.RateLimitError):
        CALLS[kind](model)
    assert trace.get_current_span() is parent
    assert telemetry.current_correlation_id() == _cid_of(parent)
    assert faulty.all_ended()


@pytest.mark.parametrize("where", ["on_start", "on_end"])
@pytest.mark.parametrize("kind", ["ainvoke", "astream"])
def test_a_cancelled_async_call_restores_the_callers_context(
    install: Callable[..., Faulty], parent: Any, kind: str, where: str
) -> None:
    faulty = install(RaisingProcessor(where))
    model = _fake("slow", latency=30.0)

    async def run() -> None:
        if kind == "ainvoke":
            task = asyncio.ensure_future(model.ainvoke("hi"))
        else:
            task = asyncio.ensure_future(_astream_text(model))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert trace.get_current_span() is parent

    asyncio.run(run())
    assert trace.get_current_span() is parent
    assert telemetry.current_correlation_id() == _cid_of(parent)
    assert faulty.all_ended()


@pytest.mark.parametrize("where", ["on_start", "on_end"])
def test_a_stream_closed_early_with_a_raising_processor(
    install: Callable[..., Faulty], parent: Any, where: str
) -> None:
    faulty = install(RaisingProcessor(where))
    model = _fake("one two three four")
    with model.stream("hi") as stream:
        assert next(stream).text.strip() == "one"
    assert trace.get_current_span() is parent
    assert faulty.all_ended()


@pytest.mark.parametrize("where", ["on_start", "on_end"])
def test_the_loopback_server_with_a_raising_processor_and_a_retry(
    install: Callable[..., Faulty], parent: Any, where: str
) -> None:
    """The real transport: a retried attempt (an event on the span), invoke and stream."""
    faulty = install(RaisingProcessor(where))
    with OpenAICompatibleServer([ScriptedError(500), ScriptedReply(text="Hello there")]) as server:
        model = chatmodels.new_registry_provider(
            "openai", {"api_key": KEY, "base_url": server.base_url, "max_retries": 1}
        )
        with model:
            assert model.invoke("hi").text == "Hello there"
            assert trace.get_current_span() is parent
            server.enqueue(ScriptedReply(text="Hello there"))
            assert _stream_text(model) == "Hello there"
            assert asyncio.run(model.ainvoke("hi")).text == "Echo: hi"  # the server's echo
    assert trace.get_current_span() is parent
    assert faulty.all_ended()


class RaisingExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        raise Boom("export")


def test_a_raising_exporter_never_fails_a_call(install: Callable[..., Faulty]) -> None:
    faulty = install(SimpleSpanProcessor(RaisingExporter()))
    assert _fake("Hello").invoke("hi").text == "Hello"
    assert _stream_text(_fake("Hello")) == "Hello"
    assert len(faulty.spans("chat ")) == 2


# -- metrics -------------------------------------------------------------------------------


class RaisingMeterProvider(MeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        raise Boom("get_meter")


def test_a_raising_meter_provider_costs_the_metrics_only(
    install: Callable[..., Faulty], reports: list[logging.LogRecord]
) -> None:
    faulty = install(meter_provider=RaisingMeterProvider())
    for _ in range(3):
        assert _fake("Hello").invoke("hi").text == "Hello"
    assert len(faulty.spans("chat ")) == 3  # the spans are unaffected
    (failure,) = _failures(reports)
    assert failure.args[0] == "metrics setup"


@pytest.mark.parametrize("tokens", [2**70, "12"])
@pytest.mark.parametrize("kind", ["invoke", "stream"])
def test_token_counts_the_metrics_cannot_take_never_fail_a_call(
    install: Callable[..., Faulty], backend: str, kind: str, tokens: Any
) -> None:
    """What a reply carries is the parsers' to check; whatever gets through, the metrics
    aggregator (Rust or Python) raising on it is telemetry's failure, not the call's."""
    import chatmodels.telemetry._metrics as metrics_module

    faulty = install()
    runtime = faulty.container.runtime()
    runtime.call_metrics = runtime.metrics = metrics_module.OTelMetrics(
        faulty.meter_provider.get_meter("t"), metrics_module.new_aggregator(backend)
    )
    usage = Usage(tokens, 1, 2)
    reply = ChatResponse(Message("assistant", "Hello"), model="fake-1", usage=usage)
    text = CALLS[kind](_fake(reply))
    assert text == "Hello"
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert faulty.all_ended()


# -- logging -------------------------------------------------------------------------------


class RaisingHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        raise Boom("handler")


@pytest.fixture
def raising_handler() -> Iterator[None]:
    handler = RaisingHandler()
    logger = logging.getLogger("chatmodels")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.parametrize("kind", ["invoke", "ainvoke", "stream", "astream"])
def test_a_raising_log_handler_never_fails_a_call_nor_leaves_its_span_current(
    install: Callable[..., Faulty],
    raising_handler: None,
    reports: list[logging.LogRecord],
    parent: Any,
    kind: str,
) -> None:
    """A failed call writes a log record while its span is current: a handler raising there
    must neither replace the call's error nor skip ending the span."""
    faulty = install()
    with pytest.raises(chatmodels.RateLimitError):
        CALLS[kind](_fake({"error": "rate_limited", "message": "slow down"}))
    assert trace.get_current_span() is parent
    assert telemetry.current_correlation_id() == _cid_of(parent)
    assert faulty.all_ended()
    assert len(faulty.spans("chat ")) == 1
    assert [r.args[0] for r in _failures(reports)] == ["log"]


def test_a_raising_log_record_processor_behind_the_logging_bridge(
    install: Callable[..., Faulty], parent: Any
) -> None:
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor

    class RaisingLogProcessor(LogRecordProcessor):
        def on_emit(self, log_record: Any) -> None:
            raise Boom("on_emit")

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    faulty = install()
    provider = LoggerProvider()
    provider.add_log_record_processor(RaisingLogProcessor())
    handler = LoggingHandler(logger_provider=provider)
    logger = logging.getLogger("chatmodels")
    logger.addHandler(handler)
    try:
        with pytest.raises(chatmodels.RateLimitError):
            _fake({"error": "rate_limited", "message": "slow down"}).invoke("hi")
        with OpenAICompatibleServer([ScriptedError(500), ScriptedReply(text="ok")]) as server:
            model = chatmodels.new_registry_provider(
                "openai", {"api_key": KEY, "base_url": server.base_url, "max_retries": 1}
            )
            with model:
                logger.setLevel(logging.INFO)  # the retried attempt's record too
                assert model.invoke("hi").text == "ok"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        provider.shutdown()
    assert trace.get_current_span() is parent
    assert faulty.all_ended()


# -- the registry --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["on_start", "on_end"])
def test_registry_operations_with_a_raising_processor(
    install: Callable[..., Faulty], backend: str, parent: Any, where: str
) -> None:
    faulty = install(RaisingProcessor(where))
    from chatmodels._providers._fake import FakeChatModel

    registry = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    registry.register("echo", lambda options: FakeChatModel(None, options))
    model = registry.create("echo", {"model": "e-1"})
    assert model.invoke("hi").text == "hi"
    model = asyncio.run(registry.acreate("echo", {"model": "e-1"}))
    assert model.invoke("hi").text == "hi"
    with pytest.raises(chatmodels.ProviderNotFoundError) as missing:
        registry.create("nope")
    assert missing.value.correlation_id is not None
    registry.unregister("echo")
    assert trace.get_current_span() is parent
    assert telemetry.current_correlation_id() == _cid_of(parent)
    assert faulty.all_ended()
    if where == "on_end":
        assert len(faulty.spans("chatmodels.registry.")) == 5


@pytest.mark.parametrize("where", ["on_start", "on_end"])
def test_new_registry_provider_with_a_raising_processor(
    install: Callable[..., Faulty], parent: Any, where: str
) -> None:
    faulty = install(RaisingProcessor(where))
    model = chatmodels.new_registry_provider("fake", {"provider_specific": {"responses": ["x"]}})
    assert model.invoke("hi").text == "x"
    model = asyncio.run(chatmodels.anew_registry_provider("fake"))
    assert model.invoke("hi").text == "hi"
    assert trace.get_current_span() is parent
    assert faulty.all_ended()


@pytest.mark.parametrize("where", ["on_start", "on_end"])
def test_health_checks_with_a_raising_processor(
    install: Callable[..., Faulty], parent: Any, where: str
) -> None:
    faulty = install(RaisingProcessor(where))
    report = chatmodels.health_check(["fake"])
    assert report["fake"].status == "healthy"
    report = asyncio.run(chatmodels.ahealth_check(["fake"]))
    assert report["fake"].status == "healthy"
    assert _fake("x").health_check().status == "healthy"
    assert trace.get_current_span() is parent
    assert faulty.all_ended()


def test_a_raising_meter_provider_never_fails_the_registry(
    install: Callable[..., Faulty], backend: str
) -> None:
    faulty = install(meter_provider=RaisingMeterProvider())
    from chatmodels._providers._fake import FakeChatModel

    registry = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    registry.register("echo", lambda options: FakeChatModel(None, options))
    assert registry.create("echo", {"model": "e-1"}).invoke("hi").text == "hi"
    assert (
        chatmodels.health_check(["echo"], registry=registry)["echo"].status == "unknown"
    )  # (no probe registered), not an error
    assert faulty.spans("chatmodels.registry.create")
