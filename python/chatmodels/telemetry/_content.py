"""Message content in the GenAI conventions' JSON format, for the opt-in span attributes
gen_ai.input.messages, gen_ai.output.messages, gen_ai.system_instructions and
gen_ai.tool.definitions (recorded on spans as JSON strings, on the
gen_ai.client.inference.operation.details event as structured values: the `*_value` forms).

Accepts chatmodels objects (read by attribute) and OpenAI-style dicts alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "input_messages",
    "input_value",
    "output_messages",
    "output_value",
    "system_instructions",
    "system_value",
    "tool_definitions",
    "tools_value",
]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "content": part}
    kind = _get(part, "type") or "text"
    if kind == "text":
        return {"type": "text", "content": _get(part, "text", _get(part, "content", ""))}
    if kind in ("reasoning", "thinking", "redacted_thinking"):
        # The conventions' ReasoningPart; signatures and redacted data are not content.
        text = _get(part, "text", _get(part, "thinking", _get(part, "content")))
        return {"type": "reasoning", "content": text or ""}
    if kind in ("image_url", "image"):
        url = _get(part, "url")
        image = _get(part, "image_url")
        if url is None and image is not None:
            url = _get(image, "url", image if isinstance(image, str) else None)
        data = _get(part, "data")
        mime = _get(part, "mime_type") or _get(part, "media_type")
        if data is not None:
            return {"type": "blob", "modality": "image", "mime_type": mime, "content": data}
        if isinstance(url, str) and url.startswith("data:"):
            header, _, payload = url.partition(",")
            mime = header[5:].split(";")[0] or mime
            return {"type": "blob", "modality": "image", "mime_type": mime, "content": payload}
        return {"type": "uri", "modality": "image", "mime_type": mime, "uri": url}
    out = {"type": str(kind)}
    for name in ("content", "text"):
        if _get(part, name) is not None:
            out["content"] = _get(part, name)
            break
    return out


def _tool_call(call: Any) -> dict[str, Any]:
    function = _get(call, "function")
    name = _get(call, "name") or (_get(function, "name") if function is not None else None)
    args = _get(call, "arguments")
    if args is None and function is not None:
        args = _get(function, "arguments")
    return {
        "type": "tool_call",
        "id": _get(call, "id"),
        "name": name,
        "arguments": _arguments(args),
    }


def _message(message: Any) -> dict[str, Any]:
    if isinstance(message, str):
        return {"role": "user", "parts": [{"type": "text", "content": message}]}
    role = str(_get(message, "role", "user"))
    content = _get(message, "content")
    parts: list[dict[str, Any]] = []
    if role == "tool":
        parts.append(
            {"type": "tool_call_response", "id": _get(message, "tool_call_id"), "response": content}
        )
    elif isinstance(content, str):
        if content:
            parts.append({"type": "text", "content": content})
    elif content is not None:
        parts.extend(_part(p) for p in content)
    parts.extend(_tool_call(c) for c in _get(message, "tool_calls") or ())
    out: dict[str, Any] = {"role": role, "parts": parts}
    name = _get(message, "name")
    if name:
        out["name"] = name
    return out


def input_messages(messages: Any) -> str:
    """The input messages as the conventions' JSON (a str is one user message)."""
    return _dumps(input_value(messages))


def input_value(messages: Any) -> list[dict[str, Any]]:
    """The input messages in the conventions' structure (for an event's attribute)."""
    if isinstance(messages, str):
        messages = [messages]
    return [_message(m) for m in messages]


def output_messages(response: Any) -> str:
    """The reply as a one-element list of output messages with its finish_reason."""
    return _dumps(output_value(response))


def output_value(response: Any) -> list[dict[str, Any]]:
    """`output_messages` in the conventions' structure (for an event's attribute)."""
    message = _get(response, "message")
    if message is not None:
        out = _message(message)
    else:
        parts: list[dict[str, Any]] = [{"type": "text", "content": _get(response, "text", "")}]
        parts.extend(_tool_call(c) for c in _get(response, "tool_calls") or ())
        out = {"role": "assistant", "parts": parts}
    out["role"] = "assistant"
    out["finish_reason"] = str(_get(response, "finish_reason") or "stop")
    return [out]


def system_instructions(instructions: Any) -> str:
    """System instructions (a str or text parts) as the conventions' JSON."""
    return _dumps(system_value(instructions))


def system_value(instructions: Any) -> list[dict[str, Any]]:
    """`system_instructions` in the conventions' structure (for an event's attribute)."""
    if isinstance(instructions, str):
        instructions = [instructions]
    return [_part(p) for p in instructions]


def tool_definitions(tools: Iterable[Any]) -> str:
    """Tool definitions as the conventions' JSON: type, name, description, parameters."""
    return _dumps(tools_value(tools))


def tools_value(tools: Iterable[Any]) -> list[dict[str, Any]]:
    """`tool_definitions` in the conventions' structure (for an event's attribute)."""
    out = []
    for tool in tools:
        function = _get(tool, "function")
        src = function if function is not None else tool
        item: dict[str, Any] = {"type": "function", "name": _get(src, "name")}
        if _get(src, "description"):
            item["description"] = _get(src, "description")
        if _get(src, "parameters") is not None:
            item["parameters"] = _get(src, "parameters")
        out.append(item)
    return out
