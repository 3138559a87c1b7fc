"""The chatmodels demo: `make demo` runs it, end to end, on loopback only.

It registers providers with metadata, finds them by capability, creates instances, shows what
bad input gets (the error's message and code); then starts the local OpenAI-compatible test
server (`chatmodels.testing`), creates providers through the registry and chats with them:
a streamed reply, a tool call from a plain typed function, structured output into a pydantic
model, API errors mapped to their codes, health checks and the `chatmodels` command; a route
that fails over from a server that is down to one that answers, whose circuit opens and then
closes, with its spans and metrics. It ends with the benchmark tables (quick runs).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import chatmodels
from chatmodels import (
    Breaker,
    Capability,
    ChatModel,
    ChatModelError,
    Deployment,
    Message,
    ProviderMetadata,
    ProviderOptions,
)
from chatmodels.testing import (
    OpenAICompatibleServer,
    ScriptedError,
    ScriptedReply,
    ScriptedToolCall,
)

ROOT = Path(__file__).resolve().parents[1]


class EchoModel(ChatModel):
    """A stand-in provider instance for the registry part of the demo."""


def echo_creator(metadata: ProviderMetadata) -> Callable[[ProviderOptions], ChatModel]:
    """A creator of `EchoModel`s described by `metadata`."""
    return lambda options: EchoModel(metadata, options)


def caps(*names: str) -> frozenset[Capability]:
    """Capabilities by name."""
    return frozenset(Capability(n) for n in names)


def heading(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)))


def registry_tour() -> None:
    heading(f"registry (backend: {chatmodels.backend()})")
    catalogue = {
        "acme-chat": caps("chat", "streaming", "system_prompt"),
        "acme-tools": caps("chat", "tool_calling", "structured_output", "json_mode"),
        "acme-vision": caps("chat", "streaming", "vision"),
    }
    for name, capabilities in catalogue.items():
        metadata = ProviderMetadata(
            name=name,
            description=f"the {name} demo provider",
            capabilities=capabilities,
            gen_ai_provider_name="acme",
            default_model=f"{name}-1",
            required_options=("api_key",),
            optional_options=("region",),
        )
        chatmodels.register_global_with_metadata(name, echo_creator(metadata), metadata)
    print("registered:", ", ".join(n for n in chatmodels.list_providers() if n in catalogue))
    for cap in (Capability.STREAMING, Capability.TOOL_CALLING, Capability.VISION):
        found = [n for n in chatmodels.get_providers_by_capability(cap) if n in catalogue]
        print(f"  with {cap.value:<14}: {', '.join(found)}")

    model = chatmodels.new_registry_provider(
        "acme-tools", {"api_key": "sk-demo-secret", "region": "eu", "temperature": 0.2}
    )
    print("created:", model, "with", model.options)
    print("  (the API key is a Secret: it never shows in a repr, a log or an error)")

    chatmodels.register_global(
        "acme-chat",
        echo_creator(chatmodels.get_provider_metadata("acme-chat")),
        metadata=ProviderMetadata(name="acme-chat", capabilities=caps("chat"), version="2"),
        replace=True,
    )
    print(
        "replaced acme-chat atomically; now version",
        chatmodels.get_provider_metadata("acme-chat").version,
    )


def bad_input_tour() -> None:
    heading("bad input: a clear error with op and code, and the registry unchanged")
    before = chatmodels.list_providers()

    def slow_creator(options: ProviderOptions) -> ChatModel:
        time.sleep(1)
        return EchoModel(ProviderMetadata(name="slow"), options)

    echo = echo_creator(ProviderMetadata(name="echo"))
    chatmodels.register_global("slow", slow_creator)
    attempts: list[tuple[str, Callable[[], object]]] = [
        ("empty name", lambda: chatmodels.register_global("", echo)),
        ("name of 300 characters", lambda: chatmodels.register_global("x" * 300, echo)),
        ("name that is not a str", lambda: chatmodels.is_provider_registered(42)),  # type: ignore[arg-type]
        ("creator not callable", lambda: chatmodels.register_global("x", "nope")),  # type: ignore[arg-type]
        ("duplicate name", lambda: chatmodels.register_global("acme-tools", echo)),
        ("unknown provider", lambda: chatmodels.new_registry_provider("acme-tool")),
        ("unknown option", lambda: chatmodels.new_registry_provider("acme-tools", {"modle": "x"})),
        ("missing api_key", lambda: chatmodels.new_registry_provider("acme-vision")),
        (
            "creator past its timeout",
            lambda: chatmodels.new_registry_provider("slow", creation_timeout=0.05),
        ),
    ]
    for label, attempt in attempts:
        try:
            attempt()
        except ChatModelError as exc:
            print(f"  {label:<26} {type(exc).__name__}: code={exc.code.value}")
            print(f"  {'':<26} {exc}")
        else:
            raise SystemExit(f"the demo expected an error for: {label}")
    chatmodels.unregister_provider("slow")
    assert chatmodels.list_providers() == before, "a failed call changed the registry"
    print("  the registry is unchanged:", len(before), "providers")


# -- chatting with a local server -----------------------------------------------------------


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict[str, Any]:
    """The current weather in a city.

    Args:
        city: the city's name, such as "Paris".
        unit: the temperature unit.
    """
    celsius = 21
    value = celsius if unit == "celsius" else celsius * 9 // 5 + 32
    return {"city": city, "temperature": value, "unit": unit, "sky": "clear"}


def chat_tour(server: OpenAICompatibleServer) -> None:
    heading(f"chat: a local OpenAI-compatible server at {server.base_url}")
    # The same wire format under two registered names: the generic one, and `openai` itself
    # with its base_url pointed at the local server.
    local = chatmodels.new_registry_provider(
        "openai_compatible", {"base_url": server.base_url, "model": "test-model"}
    )
    openai = chatmodels.new_registry_provider(
        "openai", {"base_url": server.base_url, "api_key": "sk-demo-secret", "max_retries": 0}
    )
    print("created:", local, "and", openai)

    server.enqueue(
        ScriptedReply(
            text="Streaming, one word at a time, from a server on loopback.", chunk_delay=0.02
        )
    )
    print("stream: ", end="", flush=True)
    chunks = list(local.stream("Say something"))
    for chunk in chunks:
        print(chunk.text, end="", flush=True)
    whole = chatmodels.accumulate(chunks)
    print(f"\n  {len(chunks)} chunks; finish_reason={whole.finish_reason}; usage={whole.usage}")

    server.enqueue(ScriptedReply(text="Bonjour!"))
    reply = openai.invoke("Say hello in French", temperature=0)
    print(
        f"invoke: {reply.text!r} (model {reply.model}, {(reply.latency or 0) * 1000:.1f} ms,"
        f" {reply.usage.total_tokens if reply.usage else '?'} tokens)"
    )

    tool_tour(server, openai)
    structured_tour(server, openai)
    error_tour(server)
    asyncio.run(async_tour(server))
    local.close()
    openai.close()


def tool_tour(server: OpenAICompatibleServer, model: ChatModel) -> None:
    heading("a tool call: a plain typed Python function as the tool")
    question = "What's the weather in Paris?"
    server.enqueue(
        ScriptedReply(tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris"})]),
        ScriptedReply(text="It is 21 °C and clear in Paris."),
    )
    first = model.invoke(question, tools=[get_weather])
    tool_schema = server.requests[-1].json["tools"][0]["function"]
    print("the tool as sent:", tool_schema["name"], tool_schema["parameters"])
    call = first.tool_calls[0]
    print(f"finish_reason={first.finish_reason}; the parsed call: {call}")
    result = get_weather(**call.arguments)
    print("ran it locally:", result)
    messages = [Message.user(question), first.message, Message.tool(call.id, result)]
    final = model.invoke(messages, tools=[get_weather])
    server_tool = server.requests[-1].json["messages"][-1]
    print("the tool result as sent back:", server_tool)
    print("final answer:", final.text)


def structured_tour(server: OpenAICompatibleServer, model: ChatModel) -> None:
    heading("structured output into a pydantic model")
    try:
        import pydantic
    except ImportError:
        print("pydantic is not installed: `pip install pydantic` to see this part")
        return

    class Weather(pydantic.BaseModel):
        city: str
        temperature_c: float
        conditions: list[str]

    server.enqueue(
        ScriptedReply(text='{"city":"Paris","temperature_c":21.5,"conditions":["clear","calm"]}')
    )
    reply = model.invoke("Weather in Paris as JSON", response_format=Weather)
    sent = server.requests[-1].json["response_format"]
    print("response_format as sent:", sent["type"], "named", sent["json_schema"]["name"])
    print("parsed:", repr(reply.parsed))


def error_tour(server: OpenAICompatibleServer) -> None:
    heading("API errors mapped to codes (the provider's message and request id kept)")
    model = chatmodels.new_registry_provider(
        "openai", {"base_url": server.base_url, "api_key": "sk-demo-secret", "max_retries": 2}
    )
    server.enqueue(
        ScriptedError(429, "Rate limit reached for requests", retry_after=0.2),
        ScriptedError(401, "Incorrect API key provided: sk-demo-secret", code="invalid_api_key"),
    )
    start = time.perf_counter()
    try:
        model.invoke("hi")
    except ChatModelError as exc:
        waited = time.perf_counter() - start
        print(f"429 with Retry-After: 0.2 -> retried after {waited:.2f} s; then the 401:")
        print(f"  {type(exc).__name__}: code={exc.code.value} status={exc.status_code}")
        print(f"  request_id={exc.request_id} retryable={exc.retryable}")
        print(f"  {exc}")
        print("  (the key the server echoed back is scrubbed from the message)")
    quick = chatmodels.new_registry_provider(
        "openai", {"base_url": server.base_url, "api_key": "sk-demo", "max_retries": 0}
    )
    server.enqueue(ScriptedError(429, "Rate limit reached for requests", retry_after=1))
    try:
        quick.invoke("hi")
    except ChatModelError as exc:
        print(f"429 with no retries left -> {type(exc).__name__}: code={exc.code.value}")
    down = chatmodels.new_registry_provider(
        "openai_compatible", {"base_url": f"http://127.0.0.1:{_closed_port()}/v1", "model": "m"}
    )
    try:
        down.invoke("hi", timeout=2)
    except ChatModelError as exc:
        print(f"nothing listening -> {type(exc).__name__}: code={exc.code.value}")
    for m in (model, quick, down):
        m.close()


async def async_tour(server: OpenAICompatibleServer) -> None:
    heading("async: 20 concurrent astream calls")
    model = await chatmodels.anew_registry_provider(
        "openai_compatible", {"base_url": server.base_url, "model": "test-model"}
    )
    async with model:

        async def one(i: int) -> str:
            return "".join([c.text async for c in model.astream(f"request {i}")])

        start = time.perf_counter()
        texts = await asyncio.gather(*(one(i) for i in range(20)))
        print(f"{len(texts)} replies in {(time.perf_counter() - start) * 1000:.0f} ms;")
        print(f"  the first: {texts[0]!r}")


def fake_tour() -> None:
    heading("the `fake` provider: deterministic, in-process, for your own tests")
    model = chatmodels.new_registry_provider(
        "fake",
        {
            "responses": [
                "Hello from the fake model.",
                {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
                {"error": "rate_limited", "message": "scripted rate limit"},
            ]
        },
    )
    print("stream:", "|".join(c.text for c in model.stream("hi")))
    reply = model.invoke("weather in Oslo?", tools=[get_weather])
    print("tool call:", reply.tool_calls[0])
    try:
        model.invoke("again")
    except ChatModelError as exc:
        print(f"injected error: {type(exc).__name__}: code={exc.code.value}")


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def health_and_cli_tour(server: OpenAICompatibleServer) -> None:
    heading("health checks and the `chatmodels` command")
    local_meta = ProviderMetadata(
        name="local-server",
        description="the demo's loopback server",
        capabilities=caps("chat", "streaming"),
        supports_health_check=True,
    )
    down_meta = ProviderMetadata(
        name="local-down",
        description="a port nothing listens on",
        capabilities=caps("chat"),
        supports_health_check=True,
    )
    url, down_url = server.base_url, f"http://127.0.0.1:{_closed_port()}/v1"
    chatmodels.register_global(
        "local-server",
        lambda o: chatmodels.new_registry_provider(
            "openai_compatible", {"base_url": url, "model": "test-model"}
        ),
        metadata=local_meta,
    )
    chatmodels.register_global(
        "local-down",
        lambda o: chatmodels.new_registry_provider(
            "openai_compatible", {"base_url": down_url, "model": "m"}
        ),
        metadata=down_meta,
    )
    report = chatmodels.health_check(["local-server", "local-down", "fake", "acme-chat"], timeout=2)
    for name, status in report.items():
        latency = f"{status.latency * 1000:.1f} ms" if status.latency is not None else "-"
        print(f"  {name:<14} {status.status:<10} {latency:>9}  code={status.error_code}")
    print("  all healthy:", report.healthy)

    from chatmodels.__main__ import main as cli

    print("\n$ chatmodels health local-server fake")
    code = cli(["health", "local-server", "fake"])
    print(f"(exit status {code})")
    print(f"\n$ chatmodels chat -p openai_compatible --base-url {url} -m test-model 'Hi there'")
    cli(["chat", "-p", "openai_compatible", "--base-url", url, "-m", "test-model", "Hi there"])
    print("\n$ python -m chatmodels providers")
    sys.stdout.flush()
    subprocess.run([sys.executable, "-m", "chatmodels", "providers"], check=True)
    for name in ("local-server", "local-down"):
        chatmodels.unregister_provider(name)


class DemoClock:
    """The route's injected clock: the demo moves time on instead of waiting for a cooldown."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def routes_tour(server: OpenAICompatibleServer) -> None:
    heading("routes: failover, and a circuit that opens and closes")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from chatmodels import telemetry
    from chatmodels.__main__ import main as cli
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from telemetry_demo import _print_spans  # type: ignore[import-not-found,unused-ignore]

    port = int(_closed_port())
    clock = DemoClock()
    chatmodels.register_route(
        "demo-chat",
        [
            Deployment(
                "openai_compatible",
                {"base_url": f"http://127.0.0.1:{port}/v1", "model": "primary-model"},
            ),
            Deployment("openai_compatible", {"base_url": server.base_url, "model": "test-model"}),
        ],
        breaker=Breaker(failures=1, cooldown=30.0),
        clock=clock,
        timeout=10.0,
    )
    model = chatmodels.new_registry_provider("demo-chat")
    print("registered route demo-chat:", ", ".join(d.provider + "/" + str(d.model)
          for d in model.status()), f"(nothing listens on port {port})")  # fmt: skip

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    previous = telemetry.get_container()
    chatmodels.configure(tracer_provider=tracer_provider, meter_provider=meter_provider)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter("  log %(levelname)s %(message)s (correlation_id %(correlation_id)s)")
    )
    routes_logger = logging.getLogger("chatmodels.routes")
    routes_logger.addHandler(handler)
    routes_logger.setLevel(logging.INFO)
    try:
        reply = model.invoke("Hello, route")
        print(f"call 1: {reply.text!r} from {reply.model}: the primary refused the connection,"
              " the call failed over")  # fmt: skip
        reply = model.invoke("Hello again")
        print(f"call 2: {reply.text!r} from {reply.model}: the primary's circuit is open,"
              " so nothing was sent to it")  # fmt: skip
        data = reader.get_metrics_data()
        states = [
            f"{p.attributes['chatmodels.route.deployment']}={p.value}"
            for rm in (data.resource_metrics if data is not None else ())
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "chatmodels.route.circuit_state"
            for p in m.data.data_points  # type: ignore[union-attr]
        ]
        print("chatmodels.route.circuit_state (0 closed, 1 half_open, 2 open):", ", ".join(states))
        print("\n$ chatmodels routes")
        cli(["routes", "demo-chat"])

        print(f"\nthe primary comes back on port {port}; 30 s pass on the route's clock")
        with OpenAICompatibleServer(port=port, models=("primary-model",)):
            clock.now += 30.0
            reply = model.invoke("Are you back?")
            print(f"call 3: {reply.text!r} from {reply.model}: the half-open circuit's trial"
                  " call succeeded")  # fmt: skip
            print("\n$ chatmodels routes")
            cli(["routes", "demo-chat"])

        print("\n== the spans: one INTERNAL route span per call, each attempt's chat span below")
        spans = exporter.get_finished_spans()
        routes = {s.context.span_id for s in spans if s.name.startswith("route ")}
        _print_spans([s for s in spans if s.context.span_id in routes
                      or (s.parent is not None and s.parent.span_id in routes)])  # fmt: skip
        first, _, third = sorted((s for s in spans if s.name.startswith("route ")),
                                 key=lambda s: s.start_time or 0)  # fmt: skip
        print(f"(the WARNING's correlation_id is call 1's trace id {first.context.trace_id:032x};"
              f"\n the INFO's is call 3's, {third.context.trace_id:032x})")  # fmt: skip
        print("\n== the route metrics")
        data = reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if not metric.name.startswith("chatmodels.route."):
                        continue
                    print(metric.name)
                    for point in metric.data.data_points:
                        attrs = ", ".join(
                            f"{k.removeprefix('chatmodels.route.')}={v}"
                            for k, v in sorted(point.attributes.items())
                            if k != "chatmodels.route.name"
                        )
                        print(f"    {point.value}  {{{attrs}}}")  # type: ignore[union-attr]
    finally:
        routes_logger.removeHandler(handler)
        telemetry.set_container(previous)
        meter_provider.shutdown()
        tracer_provider.shutdown()
        chatmodels.unregister_provider("demo-chat")


def telemetry_tour() -> None:
    """The telemetry demo (examples/telemetry_demo.py), when it is there."""
    heading("telemetry")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from telemetry_demo import show_telemetry  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        print("examples/telemetry_demo.py is not there yet: nothing to show")
        return
    show_telemetry()


def benchmark_table() -> None:
    heading("benchmarks (quick runs; `make bench` for the full ones)")
    benches = ROOT / "benches"
    subprocess.run([sys.executable, str(benches / "bench_registry.py"), "--quick"], check=True)
    print()
    chat = [sys.executable, str(benches / "bench_chat.py"), "--quick", "--skip-concurrency"]
    subprocess.run(chat, check=True)


if __name__ == "__main__":
    started = time.perf_counter()
    registry_tour()
    bad_input_tour()
    with OpenAICompatibleServer(models=("test-model", "gpt-4o-mini")) as local_server:
        chat_tour(local_server)
        fake_tour()
        health_and_cli_tour(local_server)
        routes_tour(local_server)
    telemetry_tour()
    benchmark_table()
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s")
