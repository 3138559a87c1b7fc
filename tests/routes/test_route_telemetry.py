"""Route telemetry with the SDK's in-memory exporter and metric reader injected through a
registry's own container: the route span over its attempts' chat spans, failover and
rate-limit events, the route metrics, the circuit log records and their correlation ids
(both backends, loopback servers only)."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import chatmodels
import pytest
from chatmodels import (
    Breaker,
    ChatModelError,
    Deployment,
    ProviderRegistry,
    ProviderUnavailableError,
    RateLimitError,
    RoutedModel,
    telemetry,
)
from chatmodels._providers._builtins import register_builtins
from chatmodels._routes import _model as routes_model
from chatmodels._routes import _telemetry as route_telemetry
from chatmodels.testing import OpenAICompatibleServer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

KINDS = ("invoke", "stream", "ainvoke", "astream")


class Own:
    """A registry container of its own over in-memory SDK providers (never global)."""

    def __init__(self, level: str = "standard", tracer_provider: Any = None) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.container = (
            telemetry.Container()
            .with_tracer_provider(tracer_provider or self.tracer_provider)
            .with_meter_provider(self.meter_provider)
            .with_observability_level(level)
        )

    def spans(self, prefix: str = "") -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            (dict(p.attributes or {}), p.value)  # type: ignore[union-attr]
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for p in m.data.data_points
        ]

    def close(self) -> None:
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()


@pytest.fixture
def own() -> Iterator[Own]:
    made = Own()
    yield made
    made.close()


@pytest.fixture
def reg(backend: str, own: Own) -> Iterator[ProviderRegistry]:
    registry = ProviderRegistry(backend=backend, container=own.container)  # type: ignore[arg-type]
    register_builtins(registry)
    yield registry
    registry.clear()


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer() as srv:
        yield srv


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def dep(url: str, model: str, **kw: Any) -> Deployment:
    return Deployment("openai", {"model": model, "api_key": "sk-test", "base_url": url}, **kw)


def down(model: str = "down-m", **kw: Any) -> Deployment:
    return dep(f"http://127.0.0.1:{closed_port()}/v1", model, **kw)


def call(model: chatmodels.ChatModel, kind: str, text: str = "hi") -> str:
    if kind == "invoke":
        return model.invoke(text).text
    if kind == "stream":
        return "".join(c.text for c in model.stream(text))
    if kind == "ainvoke":
        return asyncio.run(model.ainvoke(text)).text

    async def run() -> str:
        return "".join([c.text async for c in model.astream(text)])

    return asyncio.run(run())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# -- spans ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_failover_is_one_route_span_over_each_attempts_chat_span(
    reg: ProviderRegistry, own: Own, server: OpenAICompatibleServer, kind: str
) -> None:
    reg.register_route("chat", [down(), dep(server.base_url, "up-m")], timeout=10)
    assert call(reg.create("chat"), kind) == "Echo: hi"

    (route,) = own.spans("route ")
    assert route.name == "route chat"
    assert route.kind is SpanKind.INTERNAL
    assert route.status.status_code is StatusCode.UNSET
    assert attrs(route) == {
        "chatmodels.route.name": "chat",
        "chatmodels.route.strategy": "priority",
        "chatmodels.route.operation": "stream" if "stream" in kind else "invoke",
        "chatmodels.route.attempts": 2,
        "chatmodels.route.deployment": "openai/up-m",
        "chatmodels.route.deployment.index": 1,
    }
    (failover,) = route.events
    assert failover.name == "chatmodels.route.failover"
    assert dict(failover.attributes or {}) == {
        "chatmodels.route.deployment": "openai/down-m",
        "chatmodels.route.deployment.index": 0,
        "chatmodels.route.attempt": 1,
        "error.type": "network",
    }

    first, second = own.spans("chat ")
    assert (first.name, second.name) == ("chat down-m", "chat up-m")
    assert route.context is not None
    for number, span in enumerate((first, second), 1):
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == route.context.span_id
        assert span.context is not None
        assert span.context.trace_id == route.context.trace_id
        a = attrs(span)
        assert a["chatmodels.route.name"] == "chat"
        assert a["chatmodels.route.attempt"] == number
        assert a["chatmodels.route.deployment.index"] == number - 1
        # every GenAI attribute of an unrouted call is still there
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "openai"
        assert a["server.address"] == "127.0.0.1"
        assert "server.port" in a
    assert attrs(first)["chatmodels.route.deployment"] == "openai/down-m"
    assert attrs(first)["error.type"] == "network"
    assert first.status.status_code is StatusCode.ERROR
    b = attrs(second)
    assert b["chatmodels.route.deployment"] == "openai/up-m"
    assert b["gen_ai.request.model"] == "up-m"
    assert b["gen_ai.response.model"] == "up-m"
    assert b["gen_ai.usage.output_tokens"] == 2
    assert ("gen_ai.request.stream" in b) == ("stream" in kind)
    # the route span is the whole call: it ends after its last attempt (a stream's end)
    assert route.start_time is not None
    assert first.start_time is not None
    assert route.end_time is not None
    assert second.end_time is not None
    assert route.start_time <= first.start_time
    assert route.end_time >= second.end_time


def test_an_unrouted_call_after_a_routed_one_has_no_route_attributes(
    reg: ProviderRegistry, own: Own, server: OpenAICompatibleServer
) -> None:
    reg.register_route("chat", [dep(server.base_url, "up-m")])
    reg.create("chat").invoke("hi")
    plain = reg.create("openai", {"model": "plain", "api_key": "k", "base_url": server.base_url})
    with plain:
        plain.invoke("hi")
        list(plain.stream("hi"))
    routed, *unrouted = own.spans("chat ")
    assert attrs(routed)["chatmodels.route.attempt"] == 1
    assert len(unrouted) == 2
    for span in unrouted:
        assert span.parent is None
        assert not any(k.startswith("chatmodels.route") for k in attrs(span))


@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_routed_call_marks_the_route_span_error_and_shares_its_correlation_id(
    reg: ProviderRegistry, own: Own, kind: str
) -> None:
    reg.register_route("chat", [down("a"), down("b")], timeout=10)
    with pytest.raises(ProviderUnavailableError) as info:
        call(reg.create("chat"), kind)
    (route,) = own.spans("route ")
    assert route.status.status_code is StatusCode.ERROR
    assert attrs(route)["error.type"] == "provider_unavailable"
    assert "chatmodels.route.deployment" not in attrs(route)  # nobody answered
    assert [e.name for e in route.events] == ["chatmodels.route.failover"] * 2 + ["exception"]
    assert (route.events[2].attributes or {})["exception.type"].endswith("ProviderUnavailableError")
    assert route.context is not None
    trace_id = format(route.context.trace_id, "032x")
    error = info.value
    assert error.correlation_id == trace_id
    assert [a.correlation_id for a in error.attempts] == [trace_id, trace_id]


def test_at_level_metrics_the_attempts_share_one_generated_correlation_id(
    backend: str,
) -> None:
    own = Own("metrics")
    try:
        reg = ProviderRegistry(backend=backend, container=own.container)  # type: ignore[arg-type]
        register_builtins(reg)
        reg.register_route("chat", [down("a"), down("b")])
        with pytest.raises(ProviderUnavailableError) as info:
            reg.create("chat").invoke("hi")
        cid = info.value.correlation_id
        assert cid is not None
        assert len(cid) == 32
        assert [a.correlation_id for a in info.value.attempts] == [cid, cid]
        assert own.spans() == []  # no tracer at level metrics
        assert len(own.points("chatmodels.route.attempts")) == 2
        # and the context's id does not outlive the call
        assert telemetry.current_correlation_id() is None
        reg.clear()
    finally:
        own.close()


def test_an_enclosing_correlation_id_is_the_routed_calls(reg: ProviderRegistry, own: Own) -> None:
    reg.register_route("chat", [down("a")])
    with telemetry.correlation_scope("f" * 32), pytest.raises(ProviderUnavailableError) as info:
        reg.create("chat").invoke("hi")
    assert info.value.correlation_id == "f" * 32
    (route,) = own.spans("route ")
    assert attrs(route)["chatmodels.correlation_id"] == "f" * 32


# -- metrics --------------------------------------------------------------------------------


def _by(points: list[tuple[dict[str, Any], Any]], *keys: str) -> dict[tuple[Any, ...], Any]:
    return {tuple(a[k] for k in keys): v for a, v in points}


def test_attempts_failovers_and_the_circuit_state_gauge(
    reg: ProviderRegistry, own: Own, server: OpenAICompatibleServer
) -> None:
    clock = Clock()
    reg.register_route(
        "chat",
        [down("a"), dep(server.base_url, "up-m")],
        breaker=Breaker(failures=1, cooldown=5.0),
        clock=clock,
    )
    model = reg.create("chat")
    model.invoke("hi")  # a fails (its circuit opens), up-m answers
    model.invoke("hi")  # a is open: straight to up-m
    attempts = _by(
        own.points("chatmodels.route.attempts"),
        "chatmodels.route.name",
        "chatmodels.route.deployment",
        "chatmodels.route.deployment.index",
        "chatmodels.outcome",
    )
    assert attempts == {
        ("chat", "openai/a", 0, "network"): 1,
        ("chat", "openai/up-m", 1, "success"): 2,
    }
    failovers = _by(
        own.points("chatmodels.route.failovers"), "chatmodels.route.deployment", "error.type"
    )
    assert failovers == {("openai/a", "network"): 1}

    def circuits() -> dict[int, int]:
        return dict(
            _by(own.points("chatmodels.route.circuit_state"), "chatmodels.route.deployment.index")
        )

    assert {k[0]: v for k, v in circuits().items()} == {0: 2, 1: 0}  # 2 open, 0 closed
    clock.now += 5.0
    assert {k[0]: v for k, v in circuits().items()} == {0: 1, 1: 0}  # half open


def test_the_gauge_forgets_a_dropped_route(
    reg: ProviderRegistry, own: Own, server: OpenAICompatibleServer
) -> None:
    reg.register_route("chat", [dep(server.base_url, "up-m")])
    model = reg.create("chat")
    assert isinstance(model, RoutedModel)
    model.invoke("hi")
    old = weakref.ref(model.route)
    ((a, value),) = own.points("chatmodels.route.circuit_state")
    assert (a["chatmodels.route.deployment"], value) == ("openai/up-m", 0)
    reg.register_route("chat", [dep(server.base_url, "other")], replace=True)
    # the old route is retired, its successor known from its registration (not called yet)
    ((a, value),) = own.points("chatmodels.route.circuit_state")
    assert (a["chatmodels.route.deployment"], value) == ("openai/other", 0)
    metrics: Any = own.container.runtime().metrics
    del model
    gc.collect()
    assert old() is None
    current = reg.create("chat")
    assert isinstance(current, RoutedModel)
    # the weak reference let the old route go: only the current one is watched
    assert [ref() for ref in metrics._routes.values()] == [current.route]
    current.invoke("hi")
    ((a, value),) = own.points("chatmodels.route.circuit_state")
    assert (a["chatmodels.route.deployment"], value) == ("openai/other", 0)


def test_a_registered_route_never_called_reports_each_deployment_closed(
    reg: ProviderRegistry, own: Own, server: OpenAICompatibleServer
) -> None:
    reg.register_route("idle", [dep(server.base_url, "a"), dep(server.base_url, "b")])
    points = own.points("chatmodels.route.circuit_state")
    seen = sorted(
        (
            a["chatmodels.route.name"],
            a["chatmodels.route.deployment.index"],
            a["chatmodels.route.deployment"],
            value,
        )
        for a, value in points
    )
    assert seen == [("idle", 0, "openai/a", 0), ("idle", 1, "openai/b", 0)]
    assert server.requests == []  # nothing was called to learn them


class FakeTime:
    """What `_routes._model` reads of `time`, with `sleep` advancing the route's clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.slept: list[float] = []
        self.monotonic = __import__("time").monotonic
        self.perf_counter = __import__("time").perf_counter

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.now += seconds


def test_rate_limited_calls_delayed_and_rejected(
    reg: ProviderRegistry, own: Own, server: OpenAICompatibleServer, monkeypatch: Any
) -> None:
    clock = Clock()
    fake = FakeTime(clock)
    monkeypatch.setattr(routes_model, "time", fake)
    reg.register_route("waits", [dep(server.base_url, "w", rpm=1)], clock=clock, max_wait=120)
    reg.register_route("refuses", [dep(server.base_url, "r", rpm=1)], clock=clock)
    waits, refuses = reg.create("waits"), reg.create("refuses")
    waits.invoke("hi")
    waits.invoke("hi")  # waits 60 s of the injected clock, then goes
    assert fake.slept
    assert fake.slept[0] == pytest.approx(60.0)
    refuses.invoke("hi")
    with pytest.raises(RateLimitError):
        refuses.invoke("hi")
    limited = _by(
        own.points("chatmodels.route.rate_limited"),
        "chatmodels.route.name",
        "chatmodels.route.deployment",
        "chatmodels.route.decision",
    )
    assert limited == {("waits", "openai/w", "delayed"): 1, ("refuses", "openai/r", "rejected"): 1}
    events = {
        name: [
            [(e.name, dict(e.attributes or {})) for e in span.events]
            for span in own.spans(f"route {name}")
        ]
        for name in ("waits", "refuses")
    }
    assert events["waits"][0] == []
    assert events["refuses"][0] == []
    ((name, delayed),) = events["waits"][1]
    assert name == "chatmodels.route.rate_limited"
    assert delayed["chatmodels.route.decision"] == "delayed"
    assert delayed["chatmodels.route.wait"] == pytest.approx(60.0)
    (name, rejected), (last, _) = events["refuses"][1]
    assert (name, last) == ("chatmodels.route.rate_limited", "exception")
    assert rejected["chatmodels.route.decision"] == "rejected"
    failed = own.spans("route refuses")[-1]
    assert attrs(failed)["error.type"] == "rate_limited"
    assert attrs(failed)["chatmodels.route.attempts"] == 0


# -- circuit log records --------------------------------------------------------------------


def test_circuit_opening_and_closing_are_logged_with_the_calls_correlation_id(
    reg: ProviderRegistry,
    own: Own,
    server: OpenAICompatibleServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    flaky = OpenAICompatibleServer().start()
    try:
        from chatmodels.testing import ScriptedError

        flaky.enqueue(ScriptedError(503))
        reg.register_route(
            "chat",
            [dep(flaky.base_url, "flaky"), dep(server.base_url, "up-m")],
            breaker=Breaker(failures=1, cooldown=7.0),
            clock=clock,
        )
        model = reg.create("chat")
        with caplog.at_level(logging.INFO, logger="chatmodels.routes"):
            model.invoke("hi")  # flaky's 503 opens its circuit; up-m answers
            clock.now += 7.0
            model.invoke("hi")  # the half-open trial goes to flaky, which answers now
    finally:
        flaky.stop()
    records = [r for r in caplog.records if r.name == "chatmodels.routes"]
    opened, closed = records
    first, second = own.spans("route ")
    assert first.context is not None
    assert second.context is not None
    assert opened.levelno == logging.WARNING
    assert "opened" in opened.getMessage()
    assert "openai/flaky" in opened.getMessage()
    fields = opened.__dict__
    assert fields["chatmodels.deployment"] == "openai/flaky"
    assert fields["chatmodels.reason"] == "provider_unavailable"
    assert fields["chatmodels.cooldown"] == pytest.approx(7.0)
    assert fields["correlation_id"] == format(first.context.trace_id, "032x")
    assert fields["trace_id"] == format(first.context.trace_id, "032x")
    assert fields["span_id"] == format(first.context.span_id, "016x")
    assert closed.levelno == logging.INFO
    assert "closed" in closed.getMessage()
    assert closed.__dict__["chatmodels.deployment"] == "openai/flaky"
    assert closed.__dict__["correlation_id"] == format(second.context.trace_id, "032x")
    assert attrs(second)["chatmodels.route.deployment"] == "openai/flaky"


# -- no cost, no raise ----------------------------------------------------------------------


def test_without_opentelemetry_loaded_the_scope_is_the_noop_one(
    reg: ProviderRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg.register_route("chat", [down("a")])
    route: Any = reg.create("chat")
    monkeypatch.delitem(sys.modules, "opentelemetry")
    assert route_telemetry.start(route.route, "invoke") is route_telemetry.NOOP_ROUTE_SCOPE


class _Broken:
    """A span whose every method raises (but that says it records)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def is_recording(self) -> bool:
        return True

    def get_span_context(self) -> Any:
        return self._real.get_span_context()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def boom(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"broken SDK: {name}")

        return boom


class _BreaksRouteSpans:
    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        tracer = self._provider.get_tracer(*args, **kwargs)

        class Tracer:
            def start_span(self, name: str, *a: Any, **k: Any) -> Any:
                span = tracer.start_span(name, *a, **k)
                return _Broken(span) if name.startswith("route ") else span

            def __getattr__(self, name: str) -> Any:
                return getattr(tracer, name)

        return Tracer()


@pytest.mark.parametrize("kind", KINDS)
def test_a_broken_sdk_never_breaks_a_routed_call(
    backend: str, server: OpenAICompatibleServer, kind: str
) -> None:
    base = Own()
    own = Own(tracer_provider=_BreaksRouteSpans(base.tracer_provider))
    try:
        reg = ProviderRegistry(backend=backend, container=own.container)  # type: ignore[arg-type]
        register_builtins(reg)
        reg.register_route("chat", [down("a"), dep(server.base_url, "up-m")])
        assert call(reg.create("chat"), kind) == "Echo: hi"
        reg.register_route("dead", [down("b")])
        with pytest.raises(ChatModelError):
            call(reg.create("dead"), kind)
        assert len(base.spans("chat ")) == 3
        reg.clear()
    finally:
        own.close()
        base.close()


# -- streams closed early, level off, routes of routes ---------------------------------------


@pytest.mark.parametrize("kind", ["stream", "astream"])
def test_a_stream_closed_early_ends_its_route_span_without_error(
    reg: ProviderRegistry, own: Own, kind: str
) -> None:
    from chatmodels.testing import ScriptedReply

    with OpenAICompatibleServer([ScriptedReply(text="one two three four")]) as srv:
        reg.register_route("chat", [dep(srv.base_url, "up-m")])
        model = reg.create("chat")
        if kind == "stream":
            stream = model.stream("hi")
            next(stream)
            stream.close()
        else:

            async def run() -> None:
                stream = model.astream("hi")
                await anext(stream)
                await stream.aclose()

            asyncio.run(run())
        (route,) = own.spans("route ")
    assert route.status.status_code is StatusCode.UNSET
    assert attrs(route)["chatmodels.stream.closed_early"] is True
    assert attrs(route)["chatmodels.route.deployment"] == "openai/up-m"
    (chat,) = own.spans("chat ")
    assert route.end_time is not None
    assert chat.end_time is not None
    assert route.end_time >= chat.end_time
    outcomes = _by(own.points("chatmodels.route.attempts"), "chatmodels.outcome")
    assert outcomes == {("success",): 1}


def test_level_off_records_nothing(backend: str, server: OpenAICompatibleServer) -> None:
    own = Own("off")
    try:
        reg = ProviderRegistry(backend=backend, container=own.container)  # type: ignore[arg-type]
        register_builtins(reg)
        reg.register_route("chat", [down("a"), dep(server.base_url, "up-m")])
        route: Any = reg.create("chat")
        assert route_telemetry.start(route.route, "invoke") is route_telemetry.NOOP_ROUTE_SCOPE
        assert route.invoke("hi").text == "Echo: hi"
        assert own.spans() == []
        assert own.points("chatmodels.route.attempts") == []
        reg.clear()
    finally:
        own.close()


def test_a_route_of_routes_nests_its_spans(
    reg: ProviderRegistry, own: Own, server: OpenAICompatibleServer
) -> None:
    reg.register_route("inner", [down("a"), dep(server.base_url, "up-m")])
    reg.register_route("outer", [Deployment("inner")])
    assert reg.create("outer").invoke("hi").text == "Echo: hi"
    (outer,) = own.spans("route outer")
    (inner,) = own.spans("route inner")
    assert outer.context is not None
    assert inner.context is not None
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
    chats = own.spans("chat ")
    assert [attrs(s)["chatmodels.route.name"] for s in chats] == ["inner", "inner"]
    assert all(s.parent is not None and s.parent.span_id == inner.context.span_id for s in chats)
    assert attrs(outer)["chatmodels.route.deployment"] == "inner"


QUIET = r"""
import socket, sys
import chatmodels
from chatmodels import Deployment, ProviderRegistry, ProviderUnavailableError
from chatmodels._providers._builtins import register_builtins

def down(model):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return Deployment("openai", {"model": model, "api_key": "k",
                                 "base_url": f"http://127.0.0.1:{port}/v1"})

reg = ProviderRegistry(backend=sys.argv[1])
register_builtins(reg)
reg.register_route("chat", [down("a"), down("b")])
model = reg.create("chat")
for _ in range(2):  # the first call loads OpenTelemetry (the API only: no SDK)
    try:
        model.invoke("hi")
    except ProviderUnavailableError as exc:
        error = exc
assert "opentelemetry.sdk" not in sys.modules
ids = [error.correlation_id] + [a.correlation_id for a in error.attempts]
print(" ".join(map(str, ids)))
reg.clear()
"""


def test_without_an_sdk_the_attempts_still_share_the_calls_correlation_id(
    backend: str,
) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", QUIET, backend],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "", "PYTHONPATH": ":".join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) == 3
    assert len(set(ids)) == 1
    assert len(ids[0]) == 32
