"""Registry telemetry on both backends: INTERNAL spans for register, create, unregister and
health; the creation, size, health and resolution metrics; nothing on the lookup path; and no
OpenTelemetry import before anything could record."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import chatmodels
import pytest
from chatmodels import ProviderRegistry, telemetry
from chatmodels._providers._fake import FakeChatModel
from opentelemetry.trace import SpanKind, StatusCode
from sdk_helpers import SDK


@pytest.fixture
def reg(backend: str, sdk: SDK) -> ProviderRegistry:
    return ProviderRegistry(backend=backend)  # type: ignore[arg-type]


def _fake(options: Any) -> FakeChatModel:
    return FakeChatModel(None, options)


def _broken(options: Any) -> FakeChatModel:
    raise RuntimeError("no luck")


def test_registry_operation_spans(reg: ProviderRegistry, sdk: SDK, backend: str) -> None:
    reg.register("echo", _fake, metadata={"default_model": "e-1"})
    reg.create("echo")
    with pytest.raises(chatmodels.ProviderNotFoundError) as missing:
        reg.create("nope")
    reg.unregister("echo")
    spans = sdk.spans("chatmodels.registry.")
    assert [s.name for s in spans] == [
        "chatmodels.registry.register",
        "chatmodels.registry.create",
        "chatmodels.registry.create",
        "chatmodels.registry.unregister",
    ]
    assert all(s.kind is SpanKind.INTERNAL for s in spans)
    register, created, failed, unregister = spans
    assert dict(register.attributes or {}) == {
        "chatmodels.operation": "register",
        "chatmodels.provider": "echo",
        "chatmodels.backend": backend,
        "chatmodels.api": "register",
    }
    assert created.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "provider_not_found"
    assert missing.value.correlation_id == format(failed.context.trace_id, "032x")
    assert (unregister.attributes or {})["chatmodels.operation"] == "unregister"


def test_global_functions_name_their_api(sdk: SDK, global_registry: ProviderRegistry) -> None:
    chatmodels.register_global("echo", _fake, metadata={"default_model": "e-1"})
    chatmodels.new_registry_provider("echo").invoke("hi")
    chatmodels.unregister_provider("echo")
    apis = [(s.name, (s.attributes or {}).get("chatmodels.api")) for s in sdk.spans("chat")]
    assert apis == [
        ("chatmodels.registry.register", "register_global"),
        ("chatmodels.registry.create", "new_registry_provider"),
        ("chat e-1", None),
        ("chatmodels.registry.unregister", "unregister_provider"),
    ]


def test_async_create_span(reg: ProviderRegistry, sdk: SDK) -> None:
    import asyncio

    reg.register("echo", _fake, metadata={"default_model": "e-1"})
    asyncio.run(reg.acreate("echo"))
    (span,) = sdk.spans("chatmodels.registry.create")
    assert (span.attributes or {})["chatmodels.api"] == "acreate"


def test_creation_metrics_by_outcome(reg: ProviderRegistry, sdk: SDK) -> None:
    reg.register("echo", _fake, metadata={"default_model": "e-1"})
    reg.register("broken", _broken)
    reg.create("echo")
    reg.create("echo")
    with pytest.raises(chatmodels.CreationError):
        reg.create("broken")
    telemetry._hooks.watch_registry("mine", reg)
    metrics = sdk.metrics()
    creations = metrics["chatmodels.registry.creations"]
    assert creations.unit == "{creation}"
    counts = {
        (p.attributes["chatmodels.provider"], p.attributes["chatmodels.outcome"]): p.value
        for p in creations.data.data_points
    }
    assert counts == {("echo", "success"): 2, ("broken", "creation_failed"): 1}
    duration = metrics["chatmodels.registry.creation.duration"]
    assert duration.unit == "s"
    assert sum(p.count for p in duration.data.data_points) == 3
    sizes = {
        p.attributes["chatmodels.registry"]: p.value
        for p in metrics["chatmodels.registry.providers"].data.data_points
    }
    assert sizes["mine"] == 2


def test_health_span_and_gauge(reg: ProviderRegistry, sdk: SDK) -> None:
    reg.register("up", _fake, metadata={"supports_health_check": True, "default_model": "m"})
    reg.register(
        "slow",
        lambda options: FakeChatModel(None, options, health="degraded"),
        metadata={"supports_health_check": True, "default_model": "m"},
    )
    report = chatmodels.health_check(registry=reg)
    assert report["slow"].status == "degraded"
    (health,) = sdk.spans("chatmodels.registry.health")
    assert health.kind is SpanKind.INTERNAL
    creates = sdk.spans("chatmodels.registry.create")
    assert len(creates) == 2
    assert all(c.parent is not None and c.parent.span_id == health.context.span_id for c in creates)
    gauge = sdk.metrics()["chatmodels.provider.health"]
    values = {p.attributes["chatmodels.provider"]: p.value for p in gauge.data.data_points}
    assert values == {"up": 1.0, "slow": 0.5}


def test_lookups_add_nothing(reg: ProviderRegistry, sdk: SDK) -> None:
    reg.register("echo", _fake)
    sdk.exporter.clear()
    for _ in range(3):
        assert reg.is_registered("echo")
        reg.metadata("echo")
        assert "echo" in reg
    assert sdk.spans() == []
    for method in (ProviderRegistry.is_registered, ProviderRegistry.metadata):
        assert not hasattr(method, "__wrapped__")


class CountingTable:
    """A table exposing the resolution counts the real tables are to gain."""

    def __init__(self, inner: Any, resolutions: int, misses: int | None) -> None:
        self._inner = inner
        self.resolutions = resolutions
        self.resolution_misses = misses  # None: read as absent (the real tables have it now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __len__(self) -> int:
        return len(self._inner)


@pytest.mark.parametrize("misses", [None, 3])
def test_resolutions_are_read_from_the_table(
    reg: ProviderRegistry, sdk: SDK, misses: int | None
) -> None:
    reg._table = CountingTable(reg._table, 10, misses)  # type: ignore[assignment]
    telemetry._hooks.watch_registry("mine", reg)
    points = sdk.metrics()["chatmodels.registry.resolutions"].data.data_points
    # The global registry is watched too, and its real table now counts: keep "mine".
    points = [p for p in points if p.attributes["chatmodels.registry"] == "mine"]
    got = {tuple(sorted(p.attributes.items())): p.value for p in points}
    if misses is None:
        assert got == {(("chatmodels.registry", "mine"),): 10}
    else:
        assert got == {
            (("chatmodels.outcome", "found"), ("chatmodels.registry", "mine")): 7,
            (("chatmodels.outcome", "not_found"), ("chatmodels.registry", "mine")): 3,
        }


def test_tables_count_resolutions(backend: str) -> None:
    table = ProviderRegistry(backend=backend)._table  # type: ignore[arg-type]
    before = table.resolutions
    table.contains("x", "is_registered")
    assert table.resolutions == before + 1


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_and_registry_use_do_not_import_opentelemetry() -> None:
    code = (
        "import sys, chatmodels\n"
        "a = 'opentelemetry' in sys.modules\n"
        "chatmodels.list_providers()\n"
        "chatmodels.register_global('x', lambda o: None)\n"
        "chatmodels.is_provider_registered('x'); chatmodels.unregister_provider('x')\n"
        "print(a, 'opentelemetry' in sys.modules)"
    )
    assert _run(code) == "False False"


def test_first_chat_call_loads_telemetry_at_level_standard() -> None:
    code = (
        "import sys, chatmodels\n"
        "from chatmodels import _observe\n"
        "chatmodels.new_registry_provider('fake', {}).invoke('hi')\n"
        "from chatmodels.telemetry import TelemetryObserver, get_container\n"
        "print(type(_observe.get_observer()).__name__, get_container().runtime().settings.level)"
    )
    assert _run(code) == "TelemetryObserver standard"
