"""OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT in both its forms, and the conventions'
``gen_ai.client.inference.operation.details`` event that the enum's event modes emit."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import chatmodels
import pytest
from chatmodels import ChatModel, telemetry
from chatmodels._observe import set_observer
from chatmodels.telemetry import Settings
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
EVENT = "gen_ai.client.inference.operation.details"
CONTENT_KEYS = {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (CAPTURE, OPT_IN, "OTEL_SDK_DISABLED", "CHATMODELS_OBSERVABILITY_LEVEL"):
        monkeypatch.delenv(name, raising=False)


def _where(value: str, opt_in: str | None, monkeypatch: pytest.MonkeyPatch) -> tuple[bool, bool]:
    monkeypatch.setenv(CAPTURE, value)
    if opt_in is not None:
        monkeypatch.setenv(OPT_IN, opt_in)
    settings = Settings.from_env()
    return settings.capture_content, settings.capture_content_events


@pytest.mark.parametrize(
    ("value", "opt_in", "expected"),
    [
        ("true", None, (True, False)),
        ("TRUE", None, (True, False)),
        ("1", None, (True, False)),
        ("false", None, (False, False)),
        ("", None, (False, False)),
        ("true", "gen_ai_latest_experimental", (True, False)),
        ("NO_CONTENT", "gen_ai_latest_experimental", (False, False)),
        ("SPAN_ONLY", "gen_ai_latest_experimental", (True, False)),
        ("span_only", "gen_ai_latest_experimental", (True, False)),
        ("EVENT_ONLY", "gen_ai_latest_experimental", (False, True)),
        ("SPAN_AND_EVENT", "gen_ai_latest_experimental", (True, True)),
        ("SPAN_AND_EVENT", "http, gen_ai_latest_experimental", (True, True)),
    ],
)
def test_both_forms_of_the_variable(
    value: str, opt_in: str | None, expected: tuple[bool, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _where(value, opt_in, monkeypatch) == expected


@pytest.mark.parametrize(
    ("value", "opt_in", "says"),
    [
        ("SPAN_ONLY", None, "is ignored without OTEL_SEMCONV_STABILITY_OPT_IN"),
        ("SPAN_ONLY", "http", "is ignored without OTEL_SEMCONV_STABILITY_OPT_IN"),
        ("everything", "gen_ai_latest_experimental", "is not true, false or one of"),
        ("maybe", None, "is not true, false or one of"),
    ],
)
def test_an_unknown_or_unopted_value_warns_and_means_no_content(
    value: str,
    opt_in: str | None,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="chatmodels.telemetry"):
        assert _where(value, opt_in, monkeypatch) == (False, False)
    (record,) = [r for r in caplog.records if r.name == "chatmodels.telemetry"]
    assert record.levelno == logging.WARNING
    assert says in record.getMessage()
    assert value in record.getMessage()


def test_the_argument_takes_the_enum_names_too(caplog: pytest.LogCaptureFixture) -> None:
    """As an argument the names need no opt-in: the caller asked for them by name."""
    assert Settings.from_env(capture_content="SPAN_AND_EVENT").capture_content_events
    assert not Settings.from_env(capture_content="EVENT_ONLY").capture_content
    assert Settings.from_env(capture_content=True).capture_content
    with caplog.at_level(logging.WARNING, logger="chatmodels.telemetry"):
        assert Settings.from_env(capture_content="loud").capture_content is False
    assert "capture_content='loud'" in caplog.text


class Exported:
    """Spans and log records in memory, installed as chatmodels' telemetry."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.logs = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))

    def install(self) -> None:
        chatmodels.configure(
            reset=True, tracer_provider=self.tracer_provider, logger_provider=self.logger_provider
        )

    def span(self) -> ReadableSpan:
        (span,) = [s for s in self.spans.get_finished_spans() if s.name.startswith("chat ")]
        return span

    def events(self) -> list[Any]:
        return [
            r.log_record for r in self.logs.get_finished_logs() if r.log_record.event_name == EVENT
        ]


@pytest.fixture
def exported() -> Iterator[Exported]:
    previous_container = telemetry.get_container()
    previous_observer = set_observer(telemetry.TelemetryObserver())
    made = Exported()
    yield made
    set_observer(previous_observer)
    telemetry.set_container(previous_container)
    made.tracer_provider.shutdown()
    made.logger_provider.shutdown()


def _fake(*responses: Any, **options: Any) -> ChatModel:
    return chatmodels.new_registry_provider(
        "fake", {"provider_specific": {"responses": responses}, **options}
    )


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Paris?"}]


def _set(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(CAPTURE, value)
    monkeypatch.setenv(OPT_IN, "gen_ai_latest_experimental")


def test_span_only_puts_content_on_the_span_and_emits_no_event(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set(monkeypatch, "SPAN_ONLY")
    exported.install()
    _fake("Sunny.").invoke(MESSAGES)
    attrs = dict(exported.span().attributes or {})
    assert json.loads(str(attrs["gen_ai.input.messages"]))[-1]["parts"][0]["content"] == "Paris?"
    assert set(attrs) >= CONTENT_KEYS
    assert exported.events() == []


@pytest.mark.parametrize("kind", ["invoke", "stream"])
def test_event_only_puts_content_on_the_event_not_on_the_span(
    exported: Exported, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    _set(monkeypatch, "EVENT_ONLY")
    exported.install()
    model = _fake("Sunny today.")
    if kind == "invoke":
        response = model.invoke(MESSAGES, temperature=0.5)
    else:
        response = chatmodels.accumulate(model.stream(MESSAGES, temperature=0.5))
    span = exported.span()
    assert not CONTENT_KEYS & set(span.attributes or {})
    (event,) = exported.events()
    attrs = dict(event.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "fake"
    assert attrs["gen_ai.request.model"] == "fake-1"
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.output_tokens"] == response.usage.output_tokens  # type: ignore[union-attr]
    inputs = attrs["gen_ai.input.messages"]
    assert inputs[-1]["role"] == "user"
    assert inputs[-1]["parts"][0]["content"] == "Paris?"
    assert attrs["gen_ai.system_instructions"][0]["content"] == "Be brief."
    output = attrs["gen_ai.output.messages"][0]
    assert output["role"] == "assistant"
    assert output["parts"][0]["content"] == "Sunny today."
    # In the call's trace.
    assert (event.trace_id, event.span_id) == (span.context.trace_id, span.context.span_id)


def test_span_and_event_puts_content_on_both(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set(monkeypatch, "SPAN_AND_EVENT")
    exported.install()
    _fake("Sunny.").invoke(MESSAGES)
    assert set(exported.span().attributes or {}) >= CONTENT_KEYS
    (event,) = exported.events()
    assert set(event.attributes or {}) >= CONTENT_KEYS


def test_a_failed_call_has_an_event_with_its_error_type(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set(monkeypatch, "EVENT_ONLY")
    exported.install()
    with pytest.raises(chatmodels.RateLimitError):
        _fake({"error": "rate_limited", "message": "slow"}).invoke("hi")
    (event,) = exported.events()
    attrs = dict(event.attributes or {})
    assert attrs["error.type"] == "rate_limited"
    assert "gen_ai.output.messages" not in attrs


def test_no_content_and_the_boolean_form_emit_no_event(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    for value in ("NO_CONTENT", "true"):
        _set(monkeypatch, value)
        exported.install()
        _fake("Sunny.").invoke("hi")
    assert exported.events() == []


def test_enable_logging_false_emits_no_event(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set(monkeypatch, "EVENT_ONLY")
    exported.install()
    _fake("Sunny.", enable_logging=False).invoke("hi")
    assert exported.events() == []
