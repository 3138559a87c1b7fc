"""The ChatModel interface through the public API: input forms, validation before any request,
tools from functions, structured output, the observer seam, the fake provider, lazy imports."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import chatmodels
import pydantic
import pytest
from chatmodels import ChatChunk, ChatResponse, FinishReason, Message, Tool, ToolCall
from chatmodels._observe import CallSite, set_observer
from chatmodels._request import ChatRequest
from chatmodels.testing import ReplayServer
from replay_helpers import json_interaction

OK = {
    "id": "chatcmpl-1",
    "model": "m-1",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": '{"city": "Paris", "degrees": 21}'},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12},
}


def _replaying_ok() -> ReplayServer:
    """A server answering every chat completion with `OK`."""
    return ReplayServer([json_interaction("/chat/completions", OK)], repeat=True)


def _on(server: ReplayServer, provider: str = "openai") -> chatmodels.ChatModel:
    return chatmodels.new_registry_provider(provider, {"api_key": "k", "base_url": server.base_url})


def _fake(*responses: Any, **options: Any) -> chatmodels.ChatModel:
    return chatmodels.new_registry_provider("fake", {"responses": list(responses), **options})


# -- input forms and validation ---------------------------------------------------------


def test_str_messages_and_dicts_send_the_same_body() -> None:
    with _replaying_ok() as server:
        model = _on(server)
        model.invoke("hello")
        model.invoke([Message.user("hello")])
        model.invoke([{"role": "user", "content": "hello"}])
        model.close()
    bodies = [r.json for r in server.requests]
    assert (
        bodies[0]
        == bodies[1]
        == bodies[2]
        == {
            "messages": [{"role": "user", "content": "hello"}],
            "model": "gpt-4o-mini",
        }
    )


def test_parts_images_tool_results_reach_the_wire() -> None:
    with _replaying_ok() as server:
        model = _on(server)
        call = ToolCall("call_1", "weather", {"city": "Paris"})
        model.invoke(
            [
                Message.system("be brief"),
                Message.user(
                    [
                        chatmodels.TextPart("what is this?"),
                        chatmodels.ImagePart.from_bytes(b"\x89PNG", "image/png"),
                    ]
                ),
                Message.assistant(tool_calls=[call]),
                Message.tool("call_1", {"degrees": 21}),
            ],
            temperature=0.2,
            stop=["x"],
        )
        model.close()
    sent = server.requests[0].json
    assert sent["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw=="},
    }
    assert sent["messages"][2] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert sent["messages"][3] == {
        "role": "tool",
        "content": '{"degrees": 21}',
        "tool_call_id": "call_1",
    }
    assert sent["temperature"] == 0.2
    assert sent["stop"] == ["x"]


@pytest.mark.parametrize(
    ("provider", "params", "error"),
    [
        ("openai", {"temprature": 1}, chatmodels.InvalidConfigError),
        ("openai", {"temperature": 3}, chatmodels.InvalidConfigError),
        ("openai", {"max_tokens": 0}, chatmodels.InvalidConfigError),
        ("openai", {"top_k": 5}, chatmodels.CapabilityNotSupportedError),
        ("openai", {"response_format": {"type": "xml"}}, chatmodels.InvalidConfigError),
        ("openai", {"tool_choice": "auto"}, chatmodels.InvalidConfigError),
        ("perplexity", {"tools": [{"name": "f"}]}, chatmodels.CapabilityNotSupportedError),
        (
            "deepseek",
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {}},
                }
            },
            chatmodels.CapabilityNotSupportedError,
        ),
        ("deepseek", {"messages_extra": 1}, chatmodels.InvalidConfigError),
    ],
)
def test_bad_params_fail_before_any_request(
    provider: str, params: dict[str, Any], error: type[Exception]
) -> None:
    with _replaying_ok() as server:
        model = _on(server, provider)
        with pytest.raises(error):
            model.invoke("hi", **params)
        with pytest.raises(error):
            model.stream("hi", **params)
        model.close()
    assert server.requests == []


def test_unknown_param_suggests_the_right_name() -> None:
    with pytest.raises(chatmodels.InvalidConfigError, match="did you mean 'temperature'"):
        _fake().invoke("hi", temprature=0.1)


def test_capabilities_gate_streaming_images_and_system_prompts() -> None:
    registry = chatmodels.ProviderRegistry()
    from chatmodels._providers._fake import FakeChatModel

    registry.register(
        "plain",
        lambda opts: FakeChatModel(registry.metadata("plain"), opts),
        metadata={"capabilities": ["chat"], "default_model": "x"},
    )
    model = registry.create("plain")
    assert model.invoke("hi").text == "hi"
    with pytest.raises(chatmodels.CapabilityNotSupportedError, match="streaming"):
        model.stream("hi")
    with pytest.raises(chatmodels.CapabilityNotSupportedError, match="system"):
        model.invoke([Message.system("s"), Message.user("u")])
    with pytest.raises(chatmodels.CapabilityNotSupportedError, match="image"):
        model.invoke([Message.user([chatmodels.ImagePart(url="https://x/y.png")])])


# -- tools and structured output ---------------------------------------------------------


def get_weather(
    city: Annotated[str, "The city"], unit: Literal["c", "f"] = "c", days: list[int] | None = None
) -> str:
    """Get the weather.

    Args:
        city: ignored, the Annotated note wins
        unit: the temperature unit
    """
    return ""


def test_tool_from_typed_function() -> None:
    tool = Tool.from_function(get_weather)
    assert tool.name == "get_weather"
    assert tool.description == "Get the weather."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city"},
            "unit": {"enum": ["c", "f"], "description": "the temperature unit"},
            "days": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["city"],
    }


def test_tools_as_functions_and_dicts_reach_the_wire() -> None:
    with _replaying_ok() as server:
        model = _on(server)
        model.invoke(
            "hi",
            tools=[
                get_weather,
                {"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}},
            ],
            tool_choice="g",
        )
        model.close()
    sent = server.requests[0].json
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "g"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "g"}}


class Weather(pydantic.BaseModel):
    city: str
    degrees: int


def test_pydantic_response_format_is_sent_and_parsed() -> None:
    with _replaying_ok() as server:
        model = _on(server)
        response = model.invoke("weather?", response_format=Weather)
        as_dict = model.invoke("weather?", response_format={"type": "json_object"})
        model.close()
    assert response.parsed == Weather(city="Paris", degrees=21)
    assert as_dict.parsed == {"city": "Paris", "degrees": 21}
    fmt = server.requests[0].json["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Weather"
    assert fmt["json_schema"]["schema"]["required"] == ["city", "degrees"]


def test_unparseable_structured_reply_is_invalid_response() -> None:
    with pytest.raises(chatmodels.InvalidResponseError):
        _fake("not json").invoke("x", response_format=Weather)


# -- the fake provider --------------------------------------------------------------------


def test_fake_scripts_replies_tool_calls_errors_then_echoes() -> None:
    model = _fake(
        "Hello there",
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"error": "rate_limited", "message": "injected"},
    )
    assert model.invoke("hi").text == "Hello there"
    called = model.invoke("weather?")
    assert called.finish_reason is FinishReason.TOOL_CALLS
    assert [(c.name, c.arguments) for c in called.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    with pytest.raises(chatmodels.RateLimitError, match="injected"):
        model.invoke("again")
    assert model.invoke("echo this").text == "echo this"
    assert [r.messages[-1].text for r in model.requests] == ["hi", "weather?", "again", "echo this"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "script",
    ["one two  three", {"text": "a b", "tool_calls": [{"name": "f", "arguments": {"x": [1, 2]}}]}],
)
def test_fake_stream_accumulates_to_invoke(script: Any) -> None:
    invoked = _fake(script).invoke("q")
    streamed = chatmodels.accumulate(_fake(script).stream("q"))
    assert streamed == ChatResponse(
        **{**{f: getattr(invoked, f) for f in ChatResponse.__dataclass_fields__}, "latency": None}
    )


def test_fake_async_batch_and_latency() -> None:
    model = _fake(latency=0.01)

    async def run() -> list[Any]:
        chunks = [c async for c in model.astream("a b")]
        assert "".join(c.text for c in chunks) == "a b"
        return await model.abatch(["x", "y", "z"], max_concurrency=2)

    results = asyncio.run(run())
    assert [r.text for r in results] == ["x", "y", "z"]
    assert all(r.latency >= 0.01 for r in results)
    assert [r.text for r in model.batch(["p", "q"], max_concurrency=2)] == ["p", "q"]
    errors = _fake({"error": "timeout"}).batch(["p"], return_exceptions=True)
    assert isinstance(errors[0], chatmodels.TimeoutError)
    assert model.health_check().status == "healthy"


# -- the observer seam ----------------------------------------------------------------------


class Recorder:
    observes_chunks = True

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def start(self, site: CallSite, request: ChatRequest) -> Recorder:
        self.events.append(("start", (site, request)))
        return self

    def attempt(self, number: int, error: Any) -> None:
        self.events.append(("attempt", (number, error)))

    def chunk(self, chunk: ChatChunk) -> None:
        self.events.append(("chunk", chunk.text))

    def chunk_batch(self, chunks: Sequence[ChatChunk]) -> None:
        for chunk in chunks:
            self.chunk(chunk)

    def end(self, response: ChatResponse | None) -> None:
        assert response is not None  # this scope observes chunks: a stream accumulates for it
        self.events.append(("end", response.text))

    def fail(self, error: chatmodels.ChatModelError) -> None:
        error.correlation_id = "corr-1"
        self.events.append(("fail", error.code.value))

    def close(self) -> None:
        self.events.append(("close", None))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events if k not in ("chunk", "attempt")]


@pytest.fixture
def recorder() -> Any:
    rec = Recorder()
    previous = set_observer(rec)
    yield rec
    set_observer(previous)


def test_observer_sees_one_scope_per_call(recorder: Recorder) -> None:
    model = _fake("a b c", {"error": "network"})
    model.invoke("hi", temperature=0.5, conversation_id="conv-9")
    site, request = recorder.events[0][1]
    assert (site.provider, site.gen_ai_provider_name, request.model) == ("fake", "fake", "fake-1")
    assert request.params == {"temperature": 0.5}
    assert request.conversation_id == "conv-9"
    assert recorder.kinds() == ["start", "end"]
    with pytest.raises(chatmodels.NetworkError) as caught:
        model.invoke("hi")
    assert caught.value.correlation_id == "corr-1"
    assert recorder.kinds() == ["start", "end", "start", "fail"]
    assert recorder.events[2][1][0] is site  # one CallSite per model instance


@pytest.mark.parametrize("how", ["exhaust", "close", "break", "gc", "error"])
def test_stream_scope_ends_exactly_once(recorder: Recorder, how: str) -> None:
    model = _fake({"error": "network"} if how == "error" else "one two three")
    stream = model.stream("hi")
    if how == "exhaust":
        list(stream)
    elif how == "close":
        next(stream)
        stream.close()
        stream.close()
    elif how == "break":
        with stream:
            for _ in stream:
                break
    elif how == "gc":
        next(stream)
        del stream
        gc.collect()
    else:
        with pytest.raises(chatmodels.NetworkError):
            next(stream)
    ends = [k for k in recorder.kinds() if k in ("end", "fail", "close")]
    assert len(ends) == 1
    assert ends == {"error": ["fail"], "exhaust": ["end"]}.get(how, ["close"])
    if how == "exhaust":
        assert recorder.events[-1] == ("end", "one two three")
    else:  # what arrived before the end was observed, once per chunk
        assert [k for k, _ in recorder.events].count("chunk") == (0 if how == "error" else 1)


def test_async_stream_scope_ends_once(recorder: Recorder) -> None:
    async def run() -> None:
        stream = _fake("x y").astream("hi")
        async with stream:
            await stream.__anext__()

    asyncio.run(run())
    assert recorder.kinds() == ["start", "close"]


# -- registration and imports ---------------------------------------------------------------


def test_import_is_lazy_and_providers_load_on_first_create() -> None:
    script = textwrap.dedent(
        """
        import sys, chatmodels
        assert not [m for m in sys.modules if m.startswith("chatmodels._providers")], "eager"
        assert "aiohttp" not in sys.modules and "pydantic" not in sys.modules
        assert "openai" in chatmodels.list_providers()
        chatmodels.new_registry_provider("openai", {"api_key": "k"})
        assert "chatmodels._providers._openai" in sys.modules
        assert "aiohttp" not in sys.modules
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_builtin_metadata_is_truthful() -> None:
    meta = chatmodels.get_provider_metadata
    assert meta("openai").gen_ai_provider_name == "openai"
    assert meta("azure_openai").gen_ai_provider_name == "azure.ai.openai"
    assert meta("xai").gen_ai_provider_name == "x_ai"
    assert meta("groq").default_base_url == "https://api.groq.com/openai/v1"
    assert meta("openai").api_key_env == "OPENAI_API_KEY"
    assert "tool_calling" not in {c.value for c in meta("perplexity").capabilities}
    assert set(chatmodels.get_providers_by_capability("tool_calling")) >= {"openai", "groq", "fake"}
    with pytest.raises(chatmodels.InvalidConfigError, match="base_url"):
        chatmodels.new_registry_provider("openai_compatible", {})


def test_api_key_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-abcdef")
    model = chatmodels.new_registry_provider("openai")
    wire = model.adapter.build_request(model._prepare("hi", {}, False, "invoke"))  # type: ignore[attr-defined]
    assert wire.headers["Authorization"] == "Bearer sk-from-env-abcdef"
    for text in (repr(model), repr(model.options), repr(wire), repr(model.transport)):  # type: ignore[attr-defined]
        assert "sk-from-env" not in text


@pytest.mark.parametrize("kind", [ChatChunk, Message])
def test_chunks_and_messages_are_frozen_dataclasses_that_copy_and_pickle(kind: type) -> None:
    import copy
    import dataclasses
    import pickle

    value = kind("hi") if kind is ChatChunk else kind("user", "hi")
    same = kind("hi") if kind is ChatChunk else kind("user", "hi")
    assert dataclasses.is_dataclass(value)
    assert type(value) is kind
    assert value == same
    assert hash(value) == hash(same)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, "text" if kind is ChatChunk else "role", "changed")
    for copied in (copy.copy(value), copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
        assert copied == value
        assert type(copied) is kind
    field = "text" if kind is ChatChunk else "content"
    changed = dataclasses.replace(value, **{field: "bye"})
    assert changed.text == "bye"
    assert value.text == "hi"


def test_a_chunk_has_its_defaults_and_subclasses_keep_their_type() -> None:
    chunk = ChatChunk()
    assert (chunk.text, chunk.tool_call_deltas, chunk.usage, chunk.provider) == ("", (), None, None)

    class Tagged(ChatChunk):  # a subclass with a __dict__ of its own
        pass

    tagged = Tagged("a", id="c1")
    assert type(tagged) is Tagged
    assert (tagged.text, tagged.id, tagged.model) == ("a", "c1", None)
    assert tagged == Tagged("a", id="c1")
    assert tagged != ChatChunk("a", id="c1")  # dataclass equality compares the classes
