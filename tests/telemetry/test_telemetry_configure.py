"""`configure`: each call changes only what it names; ``reset=True`` starts over."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import chatmodels
import pytest
from chatmodels import telemetry
from chatmodels.telemetry import Container, Level, Settings
from chatmodels.telemetry._container import MeterProviderKey, TracerProviderKey
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

CONFIGURES: dict[str, Callable[..., Container]] = {
    "chatmodels.configure": chatmodels.configure,
    "chatmodels.telemetry.configure": telemetry.configure,
}


@pytest.fixture(params=sorted(CONFIGURES))
def configure(request: pytest.FixtureRequest) -> Iterator[Callable[..., Container]]:
    previous = telemetry.get_container()
    telemetry.set_container(Container())
    yield CONFIGURES[str(request.param)]
    telemetry.set_container(previous)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_SDK_DISABLED",
        "CHATMODELS_OBSERVABILITY_LEVEL",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        "OTEL_SEMCONV_STABILITY_OPT_IN",
    ):
        monkeypatch.delenv(name, raising=False)


def _state(container: Container) -> dict[str, Any]:
    settings = container.resolve(Settings)
    return {
        "tracer_provider": container.resolve(TracerProviderKey),
        "meter_provider": container.resolve(MeterProviderKey),
        "logger": container.resolve(logging.Logger),
        "level": settings.level,
        "capture_content": settings.capture_content,
    }


@pytest.mark.usefixtures("clean_env")
def test_a_second_call_keeps_what_the_first_set(configure: Callable[..., Container]) -> None:
    tp, mp = TracerProvider(), MeterProvider()
    logger = logging.getLogger("chatmodels.test_configure")
    configure(tracer_provider=tp)
    configure(capture_content=True)
    configure(meter_provider=mp, level="metrics")
    configure(logger=logger)
    built = configure(level="debug")
    assert telemetry.get_container() is built
    assert _state(built) == {
        "tracer_provider": tp,
        "meter_provider": mp,
        "logger": logger,
        "level": Level.DEBUG,
        "capture_content": True,
    }
    # The spans of a call go to `tp`, not to the global no-op provider.
    assert built.runtime().tracer is not None
    assert type(built.runtime().tracer).__module__.startswith("opentelemetry.sdk")


@pytest.mark.usefixtures("clean_env")
def test_reset_starts_over_from_the_defaults(configure: Callable[..., Container]) -> None:
    tp = TracerProvider()
    configure(tracer_provider=tp, level="metrics", capture_content=True)
    built = configure(reset=True)
    assert _state(built) == {
        "tracer_provider": trace.get_tracer_provider(),
        "meter_provider": metrics.get_meter_provider(),
        "logger": telemetry.get_logger(),
        "level": Level.STANDARD,
        "capture_content": False,
    }
    configure(tracer_provider=tp, level="metrics")
    again = configure(reset=True, capture_content=True)
    assert _state(again)["tracer_provider"] is trace.get_tracer_provider()
    assert _state(again)["level"] is Level.STANDARD
    assert _state(again)["capture_content"] is True


@pytest.mark.usefixtures("clean_env")
def test_configure_never_changes_an_installed_container_in_place(
    configure: Callable[..., Container],
) -> None:
    """A container someone kept (a test's saved one, a model's own) is left as it was."""
    tp = TracerProvider()
    first = configure(tracer_provider=tp, level="metrics")
    second = configure(level="debug")
    assert second is not first
    assert first.resolve(Settings).level is Level.METRICS
    assert second.resolve(TracerProviderKey) is tp


@pytest.mark.usefixtures("clean_env")
def test_an_explicit_container_is_installed_and_later_calls_build_on_it(
    configure: Callable[..., Container],
) -> None:
    tp = TracerProvider()
    mine = Container().with_tracer_provider(tp).with_observability_level("metrics")
    assert configure(container=mine) is mine
    later = configure(capture_content=True)
    assert _state(later)["tracer_provider"] is tp
    assert _state(later)["level"] is Level.METRICS
    assert _state(later)["capture_content"] is True


@pytest.mark.usefixtures("clean_env")
def test_a_settings_singleton_is_kept_too(configure: Callable[..., Container]) -> None:
    configure(container=Container().singleton(Settings(level=Level.DEBUG)))
    assert _state(configure(capture_content=True))["level"] is Level.DEBUG


def test_the_instrumentor_states_the_whole_set_up(clean_env: None) -> None:
    from chatmodels._observe import get_observer, set_observer
    from chatmodels.telemetry import ChatModelsInstrumentor

    previous = telemetry.get_container()
    previous_observer = get_observer()
    instrumentor = ChatModelsInstrumentor()
    try:
        chatmodels.configure(level="metrics")
        instrumentor.instrument()
        assert telemetry.get_container().resolve(Settings).level is Level.STANDARD
        instrumentor.uninstrument()
        assert telemetry.get_container().resolve(Settings).level is Level.OFF
        instrumentor.instrument()
        assert telemetry.get_container().resolve(Settings).level is Level.STANDARD
    finally:
        instrumentor.uninstrument()
        set_observer(previous_observer)
        telemetry.set_container(previous)
