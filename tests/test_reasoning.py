"""Reasoning ("thinking") content as values: `ReasoningPart`, `Message.reasoning`, the
reasoning fields of `ChatChunk`, and how `accumulate` folds them (provider wire formats are
tested in tests/test_chat_<provider>.py)."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys
import textwrap

import chatmodels
import pytest
from chatmodels import ChatChunk, ChatResponse, Message, ReasoningPart, TextPart, ToolCallDelta
from chatmodels._types import to_messages


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
