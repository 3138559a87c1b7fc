"""Reasoning ("thinking") content as values: `ReasoningPart`, `Message.reasoning`, the
reasoning fields of `ChatChunk`, and how `accumulate` folds them (provider wire formats are
tested in tests/providers/test_chat_<provider>.py)."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chatmodels
import pytest
from chatmodels import (
    ChatChunk,
    ChatResponse,
    Message,
    ReasoningPart,
    TextPart,
    ToolCall,
    ToolCallDelta,
)
from chatmodels._types import to_messages
from chatmodels.testing import ReplayServer
from replay_helpers import json_interaction, new_model


def test_reasoning_part_is_a_frozen_value_exported_lazily() -> None:
    part = ReasoningPart("think", "sig")
    assert (part.text, part.signature, part.redacted, part.type) == (
        "think",
        "sig",
        None,
        "reasoning",
    )
    assert ReasoningPart() == ReasoningPart("", None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        part.text = "other"  # type: ignore[misc]
    assert "ReasoningPart" in chatmodels.__all__
    script = textwrap.dedent(
        """
        import sys, chatmodels
        assert "chatmodels._types" not in sys.modules, "eager"
        from chatmodels import ReasoningPart
        assert ReasoningPart.__module__ == "chatmodels._types"
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_message_text_is_the_reply_and_reasoning_is_apart() -> None:
    message = Message(
        "assistant",
        (ReasoningPart("first "), ReasoningPart(redacted="opaque"), ReasoningPart("second")),
    )
    assert message.text == ""
    assert message.reasoning == "first second"
    message = Message("assistant", (ReasoningPart("why", "s"), TextPart("answer")))
    assert message.text == "answer"
    assert message.reasoning == "why"
    assert Message("assistant", "plain").reasoning is None
    assert Message("user", (TextPart("a"),)).reasoning is None
    response = ChatResponse(message=message)
    assert (response.text, response.reasoning) == ("answer", "why")
    assert ChatResponse(message=Message("assistant", "x")).reasoning is None


def test_reasoning_parts_from_dicts() -> None:
    (message,) = to_messages(
        [
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig1"},
                    {"type": "reasoning", "text": "more"},
                    {"type": "redacted_thinking", "data": "blob"},
                    ReasoningPart("kept"),
                    {"type": "text", "text": "done"},
                ],
            }
        ]
    )
    assert message.content == (
        ReasoningPart("hmm", "sig1"),
        ReasoningPart("more"),
        ReasoningPart(redacted="blob"),
        ReasoningPart("kept"),
        TextPart("done"),
    )


def test_chunk_reasoning_fields_come_last_with_empty_defaults() -> None:
    names = [f.name for f in dataclasses.fields(ChatChunk)]
    assert names == [
        "text",
        "tool_call_deltas",
        "finish_reason",
        "raw_finish_reason",
        "usage",
        "id",
        "model",
        "provider",
        "reasoning",
        "reasoning_signature",
    ]
    plain = ChatChunk("w", (), None, None, None, "id", "m", "openai")
    assert (plain.reasoning, plain.reasoning_signature) == ("", None)
    chunk = ChatChunk(reasoning="think", reasoning_signature="sig", id="c")
    assert (chunk.text, chunk.reasoning, chunk.reasoning_signature) == ("", "think", "sig")
    assert chunk != ChatChunk(reasoning="think", id="c")
    for copied in (copy.copy(chunk), copy.deepcopy(chunk), pickle.loads(pickle.dumps(chunk))):
        assert copied == chunk
        assert copied.reasoning_signature == "sig"
    assert dataclasses.replace(chunk, reasoning="other").reasoning == "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        chunk.reasoning = "x"  # type: ignore[misc]

    class Tagged(ChatChunk):
        pass

    tagged = Tagged("a", reasoning="r", reasoning_signature="s")
    assert (type(tagged), tagged.text, tagged.reasoning, tagged.reasoning_signature) == (
        Tagged,
        "a",
        "r",
        "s",
    )
    assert pickle.loads(pickle.dumps(ChatChunk("a", reasoning="r"))) == ChatChunk(
        "a", reasoning="r"
    )


def test_accumulate_puts_signed_reasoning_parts_before_the_text() -> None:
    chunks = [
        ChatChunk(reasoning="17*19 ", id="m1"),
        ChatChunk(reasoning="= 323"),
        ChatChunk(reasoning_signature="sig-a"),
        ChatChunk(reasoning="check"),
        ChatChunk(reasoning_signature="sig-b"),
        ChatChunk("It is "),
        ChatChunk("323."),
    ]
    response = chatmodels.accumulate(chunks)
    assert response.message.content == (
        ReasoningPart("17*19 = 323", "sig-a"),
        ReasoningPart("check", "sig-b"),
        TextPart("It is 323."),
    )
    assert response.text == "It is 323."
    assert response.reasoning == "17*19 = 323check"


def test_accumulate_keeps_unsigned_reasoning_and_plain_replies_stay_str() -> None:
    response = chatmodels.accumulate(
        [
            ChatChunk(reasoning="thinking"),
            ChatChunk(tool_call_deltas=(ToolCallDelta(0, "c1", "f", "{}"),)),
        ]
    )
    assert response.message.content == (ReasoningPart("thinking"),)
    assert response.text == ""
    assert [c.name for c in response.tool_calls] == ["f"]
    plain = chatmodels.accumulate([ChatChunk("a"), ChatChunk("b")])
    assert plain.message.content == "ab"
    assert plain.reasoning is None


# -- requests: only Anthropic and Bedrock take reasoning back --------------------------------

THOUGHT = "private chain of thought 8c1f"
HISTORY = [
    Message.user("What is 17*19?"),
    Message("assistant", (ReasoningPart(THOUGHT, "sig-1"), TextPart("323"))),
    Message.user("And with a tool?"),
    Message(
        "assistant",
        (ReasoningPart(THOUGHT), ReasoningPart(redacted="opaque-9d")),
        (ToolCall("call_1", "multiply", {"a": 17, "b": 19}),),
    ),
    Message.tool("call_1", "323", name="multiply"),
]


def _openai_turns(body: dict[str, Any]) -> list[Any]:
    return [body["messages"][1], body["messages"][3]]


def _gemini_turns(body: dict[str, Any]) -> list[Any]:
    return [body["contents"][1], body["contents"][3]]


def _ollama_turns(body: dict[str, Any]) -> list[Any]:
    return [
        {k: v for k, v in body["messages"][i].items() if k in ("role", "content")} for i in (1, 3)
    ]


OPENAI_TURNS = [
    {"role": "assistant", "content": "323"},
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "multiply", "arguments": '{"a":17,"b":19}'},
            }
        ],
    },
]

SKIPPING = [
    ("openai", {"api_key": "k"}, _openai_turns, OPENAI_TURNS),
    ("deepseek", {"api_key": "k"}, _openai_turns, OPENAI_TURNS),
    ("mistral", {"api_key": "k"}, _openai_turns, OPENAI_TURNS),
    (
        "azure_openai",
        {"api_key": "k", "api_version": "2024-06-01"},
        _openai_turns,
        OPENAI_TURNS,
    ),
    (
        "cohere",
        {"api_key": "k"},
        _openai_turns,
        [OPENAI_TURNS[0], {**OPENAI_TURNS[1], "role": "assistant"}],
    ),
    (
        "ollama",
        {},
        _ollama_turns,
        [{"role": "assistant", "content": "323"}, {"role": "assistant", "content": ""}],
    ),
    (
        "gemini",
        {"api_key": "k"},
        _gemini_turns,
        [
            {"role": "model", "parts": [{"text": "323"}]},
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "multiply", "args": {"a": 17, "b": 19}}}],
            },
        ],
    ),
]


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Static fake credentials for bedrock; nothing read from the machine's AWS setup."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize(("provider", "options", "turns", "expected"), SKIPPING)
@pytest.mark.usefixtures("fake_aws")
def test_other_providers_never_send_reasoning(
    provider: str,
    options: dict[str, Any],
    turns: Callable[[dict[str, Any]], list[Any]],
    expected: list[Any],
) -> None:
    """The assistant turns go out as if they had no reasoning: their text and tool calls."""
    with ReplayServer([]) as server:  # answers 404: only the request matters here
        model = new_model(provider, server.base_url, model="m1", **options)
        with model, pytest.raises(chatmodels.ChatModelError):
            model.invoke(HISTORY)
        (sent,) = server.requests
    assert turns(sent.json) == expected
    assert THOUGHT.encode() not in sent.body
    assert b"opaque-9d" not in sent.body
    assert b"sig-1" not in sent.body


def test_anthropic_sends_reasoning_back_first() -> None:
    with ReplayServer([]) as server:
        model = new_model("anthropic", server.base_url, api_key="k", model="m1")
        with model, pytest.raises(chatmodels.ChatModelError):
            model.invoke(HISTORY)
        (sent,) = server.requests
    messages = sent.json["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": THOUGHT, "signature": "sig-1"},
            {"type": "text", "text": "323"},
        ],
    }
    assert messages[3]["content"] == [
        {"type": "thinking", "thinking": THOUGHT, "signature": ""},
        {"type": "redacted_thinking", "data": "opaque-9d"},
        {"type": "tool_use", "id": "call_1", "name": "multiply", "input": {"a": 17, "b": 19}},
    ]


@pytest.mark.usefixtures("fake_aws")
def test_bedrock_sends_reasoning_back_first() -> None:
    """Converse reasoningContent blocks first in the assistant turn (Claude on Bedrock wants
    its thinking back unmodified); tool results and user turns carry none."""
    with ReplayServer([]) as server:
        model = new_model("bedrock", server.base_url, model="m1")
        with model, pytest.raises(chatmodels.ChatModelError):
            model.invoke(HISTORY)
        (sent,) = server.requests
    messages = sent.json["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [
            {"reasoningContent": {"reasoningText": {"text": THOUGHT, "signature": "sig-1"}}},
            {"text": "323"},
        ],
    }
    assert messages[3] == {
        "role": "assistant",
        "content": [
            {"reasoningContent": {"reasoningText": {"text": THOUGHT}}},
            {"reasoningContent": {"redactedContent": "opaque-9d"}},
            {"toolUse": {"toolUseId": "call_1", "name": "multiply", "input": {"a": 17, "b": 19}}},
        ],
    }
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert THOUGHT.encode() not in json.dumps([messages[0], messages[2], messages[4]]).encode()


# -- OpenAI-compatible: DeepSeek's reasoning_content -----------------------------------------
# Shapes from https://api-docs.deepseek.com/guides/reasoning_model (deepseek-reasoner): the
# reasoning arrives as message.reasoning_content, and streamed as delta.reasoning_content
# with content null, before the content deltas (which carry reasoning_content null).

DEEPSEEK_THOUGHT = "17*19 = 17*20 - 17 = 340 - 17 = 323."
DEEPSEEK_USAGE = {
    "prompt_tokens": 15,
    "completion_tokens": 40,
    "total_tokens": 55,
    "completion_tokens_details": {"reasoning_tokens": 30},
}


def _deepseek_event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    obj = {
        "id": "ds-0a1b",
        "object": "chat.completion.chunk",
        "created": 1740000000,
        "model": "deepseek-reasoner",
        "system_fingerprint": "fp_5417b77867_prod0225",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


DEEPSEEK_STREAM = b"".join(
    [
        _deepseek_event({"role": "assistant", "content": None, "reasoning_content": ""}),
        _deepseek_event({"content": None, "reasoning_content": "17*19 = 17*20 - 17"}),
        _deepseek_event({"content": None, "reasoning_content": " = 340 - 17 = 323."}),
        _deepseek_event({"content": "17 \u00d7 19 ", "reasoning_content": None}),
        _deepseek_event({"content": "= 323.", "reasoning_content": None}),
        _deepseek_event({"content": "", "reasoning_content": None}, "stop", usage=DEEPSEEK_USAGE),
        b"data: [DONE]\n\n",
    ]
)
DEEPSEEK_WHOLE = {
    "id": "ds-0a1b",
    "object": "chat.completion",
    "created": 1740000000,
    "model": "deepseek-reasoner",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "17 \u00d7 19 = 323.",
                "reasoning_content": DEEPSEEK_THOUGHT,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": DEEPSEEK_USAGE,
}


def test_deepseek_reasoning_content_whole_and_streamed() -> None:
    whole = json_interaction("/chat/completions", DEEPSEEK_WHOLE)
    streamed = json_interaction(
        "/chat/completions",
        None,
        raw=DEEPSEEK_STREAM,
        headers=(("Content-Type", "text/event-stream"),),
    )
    with ReplayServer([whole, streamed]) as server:
        with new_model("deepseek", server.base_url, api_key="k") as model:
            invoked = model.invoke("What is 17*19?", model="deepseek-reasoner")
            chunks = list(model.stream("What is 17*19?", model="deepseek-reasoner"))
        server.check_requests()
    assert invoked.message.content == (
        ReasoningPart(DEEPSEEK_THOUGHT),
        TextPart("17 \u00d7 19 = 323."),
    )
    assert invoked.text == "17 \u00d7 19 = 323."
    assert invoked.reasoning == DEEPSEEK_THOUGHT
    assert [(c.reasoning, c.text) for c in chunks if c.reasoning or c.text] == [
        ("17*19 = 17*20 - 17", ""),
        (" = 340 - 17 = 323.", ""),
        ("", "17 \u00d7 19 "),
        ("", "= 323."),
    ]
    assert all(c.reasoning_signature is None for c in chunks)
    accumulated = chatmodels.accumulate(chunks)
    assert accumulated == dataclasses.replace(invoked, latency=None)


def test_deepseek_reasoning_in_a_final_chunk_is_kept() -> None:
    """A delta with reasoning and a finish reason takes the slow path: still reasoning."""
    adapter = new_model("deepseek", "http://127.0.0.1:9", api_key="k").adapter  # type: ignore[attr-defined]
    obj = json.loads(_deepseek_event({"reasoning_content": "last"}, "length")[6:])
    (chunk,) = adapter.parse_chunk(obj, {})
    assert (chunk.reasoning, chunk.text, chunk.raw_finish_reason) == ("last", "", "length")
    plain = adapter.parse_chunk(json.loads(_deepseek_event({"content": "hi"})[6:]), {})
    assert plain == ChatChunk("hi", id="ds-0a1b", model="deepseek-reasoner", provider="deepseek")
