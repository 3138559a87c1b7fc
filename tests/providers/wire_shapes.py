"""Each wire format's reply shapes, for the malformed-reply and parser-fuzz tests: a valid
whole reply and a valid stream (its events, framed as the API frames them), where each is
served, the model that asks for them, and what a parsed result must look like whatever the
reply was."""

from __future__ import annotations

import copy
import dataclasses
import json
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import chatmodels
from chatmodels.testing import RecordedInteraction, RecordedRequest, RecordedResponse
from replay_helpers import new_model

KEY = "sk-test-malformed-0123456789"
DELETE = object()  # `mutate`'s value that removes the key


def _sse(events: Sequence[Any]) -> bytes:
    """``data: <json>`` events (a str is sent as it is, as ``[DONE]``)."""
    out = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        out.append(f"data: {data}\n\n")
    return "".join(out).encode()


def _typed_sse(events: Sequence[Any]) -> bytes:
    """Events with an ``event:`` line naming their ``type`` (Anthropic, Cohere)."""
    out = []
    for event in events:
        if isinstance(event, str):
            out.append(f"data: {event}\n\n")
            continue
        kind = event.get("type") if isinstance(event, dict) else None
        head = f"event: {kind}\n" if isinstance(kind, str) else ""
        out.append(f"{head}data: {json.dumps(event)}\n\n")
    return "".join(out).encode()


def _ndjson(events: Sequence[Any]) -> bytes:
    return "".join(json.dumps(event) + "\n" for event in events).encode()


def frame(event_type: str, payload: Any, message_type: str = "event") -> bytes:
    """One AWS event stream message (prelude, string headers, JSON payload, CRC32s)."""
    headers = b""
    kind_header = ":event-type" if message_type == "event" else ":exception-type"
    for name, value in (
        (kind_header, event_type),
        (":content-type", "application/json"),
        (":message-type", message_type),
    ):
        raw = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def _event_stream(events: Sequence[Any]) -> bytes:
    """Bedrock: each event is ``[event_type, payload]``."""
    return b"".join(frame(str(kind), payload) for kind, payload in events)


@dataclasses.dataclass(frozen=True)
class WireFormat:
    """One wire format: where it is served, a valid reply and stream, how a stream is framed.

    ``end`` is how many trailing events make the stream's end (dropping them cuts it short);
    a stream's events are JSON values, except Bedrock's ``[event_type, payload]`` pairs.
    """

    provider: str
    model: str
    options: dict[str, Any]
    invoke_path: str
    stream_path: str
    stream_type: str
    reply: dict[str, Any]
    events: list[Any]
    end: int
    framing: Callable[[Sequence[Any]], bytes]

    def __str__(self) -> str:
        return self.provider

    def stream_body(self, events: Sequence[Any] | None = None) -> bytes:
        """The framed stream of `events` (the valid ones by default)."""
        return self.framing(self.events if events is None else events)

    def new_model(self, base_url: str) -> chatmodels.ChatModel:
        """A model of this format talking to `base_url`, without retries."""
        return new_model(self.provider, base_url, **self.options)

    def interaction(self, body: bytes, *, stream: bool, status: int = 200) -> RecordedInteraction:
        """Serve `body` at this format's invoke (or stream) path."""
        path = self.stream_path if stream else self.invoke_path
        content_type = self.stream_type if stream else "application/json"
        return RecordedInteraction(
            RecordedRequest("POST", f"https://api.example.com{path}", path, {}, b"", None),
            RecordedResponse(status, "", (("Content-Type", content_type),), body),
        )

    def good(self, *, stream: bool) -> RecordedInteraction:
        """The valid reply (or stream)."""
        body = self.stream_body() if stream else json.dumps(self.reply).encode()
        return self.interaction(body, stream=stream)


def _openai_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> Any:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


_OPENAI_REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-test",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 1},
        "completion_tokens_details": {"reasoning_tokens": 2},
    },
}
_OPENAI_EVENTS: list[Any] = [
    _openai_chunk({"role": "assistant", "content": ""}),
    _openai_chunk({"content": "Hel"}),
    _openai_chunk({"content": "lo"}),
    _openai_chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city"'},
                }
            ]
        }
    ),
    _openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': "Paris"}'}}]}),
    _openai_chunk({}, "tool_calls"),
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-test",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    },
    "[DONE]",
]

_ANTHROPIC_REPLY = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-test",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Hello"},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "usage": {
        "input_tokens": 5,
        "output_tokens": 7,
        "cache_read_input_tokens": 1,
        "cache_creation_input_tokens": 0,
    },
}
_ANTHROPIC_EVENTS: list[Any] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [],
            "usage": {"input_tokens": 5, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 7},
    },
    {"type": "message_stop"},
]

_GEMINI_REPLY = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Hello"},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12},
    "modelVersion": "gemini-test",
    "responseId": "resp-1",
}
_GEMINI_EVENTS: list[Any] = [
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}],
        "usageMetadata": {"trafficType": "ON_DEMAND"},
        "modelVersion": "gemini-test",
        "responseId": "resp-1",
    },
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}, "index": 0}],
        "modelVersion": "gemini-test",
        "responseId": "resp-1",
    },
    {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "P"}}}],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12},
        "modelVersion": "gemini-test",
        "responseId": "resp-1",
    },
]

_OLLAMA_REPLY = {
    "model": "llama-test",
    "message": {
        "role": "assistant",
        "content": "Hello",
        "thinking": "hmm",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    },
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 5,
    "eval_count": 7,
}
_OLLAMA_EVENTS: list[Any] = [
    {"model": "llama-test", "message": {"role": "assistant", "content": "Hel"}, "done": False},
    {"model": "llama-test", "message": {"role": "assistant", "content": "lo"}, "done": False},
    {
        "model": "llama-test",
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "P"}}}],
        },
        "done": False,
    },
    {
        "model": "llama-test",
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 5,
        "eval_count": 7,
    },
]

_BEDROCK_REPLY = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}},
                {"text": "Hello"},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {"inputTokens": 5, "outputTokens": 7, "totalTokens": 12, "cacheReadInputTokens": 1},
}
_BEDROCK_EVENTS: list[Any] = [
    ["messageStart", {"role": "assistant"}],
    ["contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}],
    ["contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}}],
    ["contentBlockStop", {"contentBlockIndex": 0}],
    [
        "contentBlockStart",
        {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "get_weather"}}},
    ],
    [
        "contentBlockDelta",
        {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city": "Paris"}'}}},
    ],
    ["contentBlockStop", {"contentBlockIndex": 1}],
    ["messageStop", {"stopReason": "tool_use"}],
    ["metadata", {"usage": {"inputTokens": 5, "outputTokens": 7, "totalTokens": 12}}],
]

_COHERE_REPLY = {
    "id": "c-1",
    "message": {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello"}],
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    "finish_reason": "TOOL_CALL",
    "usage": {
        "billed_units": {"input_tokens": 5, "output_tokens": 7},
        "tokens": {"input_tokens": 5, "output_tokens": 7},
    },
}
_COHERE_EVENTS: list[Any] = [
    {"type": "message-start", "id": "c-1", "delta": {"message": {"role": "assistant"}}},
    {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text"}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hel"}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "lo"}}}},
    {"type": "content-end", "index": 0},
    {
        "type": "tool-call-start",
        "index": 1,
        "delta": {
            "message": {
                "tool_calls": {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            }
        },
    },
    {
        "type": "tool-call-delta",
        "index": 1,
        "delta": {"message": {"tool_calls": {"function": {"arguments": '{"city": "P"}'}}}},
    },
    {"type": "tool-call-end", "index": 1},
    {
        "type": "message-end",
        "delta": {
            "finish_reason": "TOOL_CALL",
            "usage": {"tokens": {"input_tokens": 5, "output_tokens": 7}},
        },
    },
    "[DONE]",
]

_MISTRAL_REPLY = copy.deepcopy(_OPENAI_REPLY)
_MISTRAL_REPLY["choices"][0]["message"]["content"] = [
    {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
    {"type": "text", "text": "Hello"},
]

_SSE = "text/event-stream"
_BEDROCK_MODEL = "test-model-v1"

FORMATS: list[WireFormat] = [
    WireFormat(
        "openai",
        "gpt-test",
        {"api_key": KEY},
        "/chat/completions",
        "/chat/completions",
        _SSE,
        _OPENAI_REPLY,
        _OPENAI_EVENTS,
        1,
        _sse,
    ),
    WireFormat(
        "anthropic",
        "claude-test",
        {"api_key": KEY},
        "/v1/messages",
        "/v1/messages",
        _SSE,
        _ANTHROPIC_REPLY,
        _ANTHROPIC_EVENTS,
        1,
        _typed_sse,
    ),
    WireFormat(
        "gemini",
        "gemini-test",
        {"api_key": KEY},
        "/v1beta/models/gemini-test:generateContent",
        "/v1beta/models/gemini-test:streamGenerateContent?alt=sse",
        _SSE,
        _GEMINI_REPLY,
        _GEMINI_EVENTS,
        1,
        _sse,
    ),
    WireFormat(
        "ollama",
        "llama-test",
        {},
        "/api/chat",
        "/api/chat",
        "application/x-ndjson",
        _OLLAMA_REPLY,
        _OLLAMA_EVENTS,
        1,
        _ndjson,
    ),
    WireFormat(
        "bedrock",
        _BEDROCK_MODEL,
        {"api_key": "ABSKfake-bedrock-api-key-1234567890", "provider_specific": {"region": "x"}},
        f"/model/{_BEDROCK_MODEL}/converse",
        f"/model/{_BEDROCK_MODEL}/converse-stream",
        "application/vnd.amazon.eventstream",
        _BEDROCK_REPLY,
        _BEDROCK_EVENTS,
        2,
        _event_stream,
    ),
    WireFormat(
        "cohere",
        "command-test",
        {"api_key": KEY},
        "/v2/chat",
        "/v2/chat",
        _SSE,
        _COHERE_REPLY,
        _COHERE_EVENTS,
        2,
        _typed_sse,
    ),
    WireFormat(
        "mistral",
        "mistral-test",
        {"api_key": KEY},
        "/v1/chat/completions",
        "/v1/chat/completions",
        _SSE,
        _MISTRAL_REPLY,
        _OPENAI_EVENTS,
        1,
        _sse,
    ),
]
BY_NAME = {f.provider: f for f in FORMATS}


def mutate(value: Any, path: Sequence[str | int], new: Any) -> Any:
    """A deep copy of `value` with the field at `path` set to `new` (`DELETE`: removed)."""
    out = copy.deepcopy(value)
    target = out
    for step in path[:-1]:
        target = target[step]
    if new is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = new
    return out


# -- what any parsed result must look like -------------------------------------------------


def _opt_str(value: Any) -> bool:
    return value is None or type(value) is str


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value < 2**63


def check_usage(usage: chatmodels.Usage | None) -> None:
    """Every count an int (not a bool), non-negative, an int64."""
    if usage is None:
        return
    for name in ("input_tokens", "output_tokens", "total_tokens"):
        assert _count(getattr(usage, name)), (name, getattr(usage, name))
    for name in ("cache_read_input_tokens", "cache_creation_input_tokens", "reasoning_tokens"):
        value = getattr(usage, name)
        assert value is None or _count(value), (name, value)


def check_response(response: chatmodels.ChatResponse) -> None:
    """A response every field of which has its documented type."""
    assert type(response.text) is str
    reasoning = response.reasoning
    assert reasoning is None or type(reasoning) is str
    assert _opt_str(response.id)
    assert _opt_str(response.model)
    assert _opt_str(response.raw_finish_reason)
    assert response.finish_reason is None or isinstance(
        response.finish_reason, chatmodels.FinishReason
    )
    for call in response.tool_calls:
        assert type(call.id) is str
        assert type(call.name) is str
        assert isinstance(dict(call.arguments), dict)
        assert type(call.arguments_json()) is str
    check_usage(response.usage)


def check_chunks(chunks: Sequence[chatmodels.ChatChunk]) -> None:
    """Chunks of documented types, which accumulate to a well-typed response."""
    for chunk in chunks:
        assert type(chunk.text) is str
        assert type(chunk.reasoning) is str
        assert _opt_str(chunk.id)
        assert _opt_str(chunk.model)
        assert _opt_str(chunk.raw_finish_reason)
        assert _opt_str(chunk.reasoning_signature)
        for delta in chunk.tool_call_deltas:
            assert _count(delta.index)
            assert _opt_str(delta.id)
            assert _opt_str(delta.name)
            assert type(delta.arguments) is str
        check_usage(chunk.usage)
    check_response(chatmodels.accumulate(chunks))
