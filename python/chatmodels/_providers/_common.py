"""What several wire formats share: JSON request headers, OpenAI-shaped tool calls and
function tools, the assistant reply and its finish reason, stop lists, provider_specific
merging and request ids found in error bodies."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from .._tools import Tool, ToolCall
from .._transport._wire import Headers, WireRequest
from .._types import (
    ChatResponse,
    ContentPart,
    FinishReason,
    ImagePart,
    Message,
    ReasoningPart,
    TextPart,
    ToolCallDelta,
    Usage,
    normalize_finish_reason,
    reply_content,
)
from ._http import ReplyShapeError, json_body, loads

__all__ = [
    "MAX_COUNT",
    "NO_HEADERS",
    "JSONRequests",
    "arr",
    "bad",
    "bearer",
    "count",
    "finish_reason",
    "function_tool",
    "image_url",
    "index",
    "merge_specific",
    "obj",
    "openai_tool_calls",
    "opt_arr",
    "opt_obj",
    "opt_str",
    "reply",
    "request_id_in_body",
    "stop_list",
    "text",
    "tool_call",
    "tool_calls_of_openai",
    "whole_call_deltas",
    "without_reasoning",
]


class _NoHeaders:
    def get(self, name: str, /) -> str | None:
        return None


NO_HEADERS: Headers = _NoHeaders()
"""The headers of an error found in a successful body (or a stream): none."""


def bearer(api_key: str | None) -> dict[str, str]:
    """``Authorization: Bearer <key>``, or nothing without a key."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class JSONRequests:
    """An adapter's JSON requests: their headers for a plain call and for a stream, each with
    the `headers` every request carries (auth, API version)."""

    __slots__ = ("plain", "stream")

    def __init__(self, headers: Mapping[str, str], *, stream_accept: str = "text/event-stream"):
        base = {**headers, "Content-Type": "application/json"}
        self.plain = {**base, "Accept": "application/json"}
        self.stream = {**base, "Accept": stream_accept}

    def post(self, path: str, body: Mapping[str, Any], *, stream: bool) -> WireRequest:
        """``POST path`` with `body` as JSON."""
        return WireRequest("POST", path, self.stream if stream else self.plain, json_body(body))

    def get(self, path: str) -> WireRequest:
        """``GET path`` (a health probe)."""
        return WireRequest("GET", path, self.plain)


# -- checking replies ----------------------------------------------------------------------
# Each reads one field a parser already has in hand, with a `type(x) is T` test (what a
# schema library would cost the hot path is not paid), and names the field's path only on
# the error path.

MAX_COUNT = 2**53 - 1
"""The largest token count accepted: JSON's safe integers; a sum of a few stays an int64,
as OpenTelemetry attributes and metrics need."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        shown = repr(value)
        return f"a number ({shown if len(shown) <= 24 else shown[:20] + '...'})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def bad(path: str, expected: str, value: Any) -> ReplyShapeError:
    """The error for the field at `path` holding `value` where `expected` belongs."""
    return ReplyShapeError(f"{path} is {_kind(value)}, not {expected}")


def obj(value: Any, path: str) -> dict[str, Any]:
    """`value`, which must be a JSON object."""
    if type(value) is dict:
        return value
    raise bad(path, "an object", value)


def opt_obj(value: Any, path: str) -> dict[str, Any]:
    """`value`, a JSON object or null/absent (an empty dict then; do not mutate it)."""
    if type(value) is dict:
        return value
    if value is None:
        return _EMPTY
    raise bad(path, "an object", value)


_EMPTY: dict[str, Any] = {}


def arr(value: Any, path: str) -> list[Any]:
    """`value`, which must be a JSON array."""
    if type(value) is list:
        return value
    raise bad(path, "an array", value)


def opt_arr(value: Any, path: str) -> list[Any] | tuple[()]:
    """`value`, a JSON array or null/absent (empty then)."""
    if type(value) is list:
        return value
    if value is None:
        return ()
    raise bad(path, "an array", value)


def text(value: Any, path: str) -> str:
    """`value`, a string; null/absent is the empty string."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    raise bad(path, "a string", value)


def opt_str(value: Any, path: str) -> str | None:
    """`value`, a string or null/absent (None)."""
    if value is None or type(value) is str:
        return value
    raise bad(path, "a string", value)


def count(raw: Mapping[str, Any], key: str, path: str) -> int | None:
    """The token count ``raw[key]`` (None when absent or null): a non-negative int no
    larger than `MAX_COUNT`; a bool, float, string or negative number is refused."""
    value = raw.get(key)
    if value is None or (type(value) is int and 0 <= value <= MAX_COUNT):
        return value
    raise bad(f"{path}.{key}" if path else key, "a token count", value)


def index(value: Any, path: str) -> int:
    """A tool call's position in a stream (0 when absent): a non-negative int."""
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    if value is None:
        return 0
    raise bad(path, "an index", value)


def tool_call(
    id: str, name: Any, arguments: Any, path: str, *, arguments_key: str = "arguments"
) -> ToolCall:
    """A `ToolCall` from wire fields: `path` names the object holding its ``name`` (a
    non-empty string) and its arguments (``arguments_key``: a JSON string, an object or
    null)."""
    if type(name) is not str or not name:
        raise bad(f"{path}.name", "a function name", name)
    if arguments is not None and type(arguments) is not str and type(arguments) is not dict:
        raise bad(f"{path}.{arguments_key}", "a JSON string or an object", arguments)
    return ToolCall.from_wire(id, name, arguments)


# -- requests ------------------------------------------------------------------------------


def stop_list(stop: str | Iterable[str]) -> list[str]:
    """A ``stop`` parameter as the list of sequences most APIs take."""
    return [stop] if isinstance(stop, str) else list(stop)


def without_reasoning(
    content: str | tuple[ContentPart, ...],
) -> str | tuple[TextPart | ImagePart, ...]:
    """A message's content without its reasoning parts, for the APIs that take none back
    (reasoning is never sent as text): a reply of reasoning and text becomes its text, as
    the same reply without reasoning would have been sent."""
    if isinstance(content, str):
        return content
    kept = tuple(p for p in content if not isinstance(p, ReasoningPart))
    if len(kept) == len(content):
        return kept
    if all(isinstance(p, TextPart) for p in kept):
        return "".join(p.text for p in kept if isinstance(p, TextPart))
    return kept


def image_url(part: ImagePart) -> dict[str, Any]:
    """An OpenAI-shaped ``image_url`` object: the URL (or data URL) and the detail."""
    image: dict[str, Any] = {"url": part.as_data_url()}
    if part.detail:
        image["detail"] = part.detail
    return image


def openai_tool_calls(calls: Iterable[ToolCall]) -> list[dict[str, Any]]:
    """An assistant turn's tool calls as OpenAI-shaped ``tool_calls`` (JSON-string arguments)."""
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json()},
        }
        for call in calls
    ]


def function_tool(tool: Tool, *, strict: bool = False) -> dict[str, Any]:
    """A tool as ``{"type": "function", "function": {name, description, parameters}}``;
    ``strict`` sends the tool's strict flag when it is set."""
    fn: dict[str, Any] = {"name": tool.name}
    if tool.description:
        fn["description"] = tool.description
    fn["parameters"] = dict(tool.parameters)
    if strict and tool.strict is not None:
        fn["strict"] = tool.strict
    return {"type": "function", "function": fn}


def merge_specific(body: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge provider_specific entries into `body`, one level deep for objects (so that
    ``{"options": {...}}`` adds to the options the request set instead of replacing them)."""
    for key, value in extra.items():
        current = body.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            current.update(value)
        else:
            body[key] = value


# -- responses -----------------------------------------------------------------------------


def finish_reason(raw: str | None, *, tool_calls: bool = False) -> FinishReason | None:
    """`normalize_finish_reason`; with ``tool_calls`` (the turn called tools, and the API
    ends such a turn with a plain stop: Ollama, Gemini), a stop is tool_calls."""
    reason = normalize_finish_reason(raw)
    if tool_calls and reason is FinishReason.STOP:
        return FinishReason.TOOL_CALLS
    return reason


def reply(
    provider: str,
    text: str,
    calls: Iterable[ToolCall],
    *,
    raw_finish: str | None,
    usage: Usage | None,
    id: str | None = None,
    model: str | None = None,
    calls_end_with_stop: bool = False,
    reasoning: tuple[ReasoningPart, ...] = (),
) -> ChatResponse:
    """A whole reply: the assistant message (its `reasoning` parts before its text), its
    finish reason normalised from `raw_finish` (``calls_end_with_stop``: a stop with tool
    calls is tool_calls, see `finish_reason`)."""
    calls = tuple(calls)
    return ChatResponse(
        message=Message("assistant", reply_content(text, reasoning), calls),
        id=id,
        model=model,
        provider=provider,
        finish_reason=finish_reason(raw_finish, tool_calls=calls_end_with_stop and bool(calls)),
        raw_finish_reason=raw_finish,
        usage=usage,
    )


def tool_calls_of_openai(raw: Any, path: str) -> tuple[ToolCall, ...]:
    """OpenAI-shaped ``tool_calls`` of a reply (arguments as a JSON string) as `ToolCall`s;
    `path` names the ``tool_calls`` field."""
    calls = []
    for i, item in enumerate(opt_arr(raw, path)):
        call = obj(item, f"{path}[{i}]")
        fn = obj(call.get("function"), f"{path}[{i}].function")
        call_id = text(call.get("id"), f"{path}[{i}].id")
        calls.append(
            tool_call(call_id, fn.get("name"), fn.get("arguments"), f"{path}[{i}].function")
        )
    return tuple(calls)


def whole_call_deltas(calls: Iterable[ToolCall], first: int) -> tuple[ToolCallDelta, ...]:
    """Tool calls a stream sends whole, as one delta each, numbered from `first`."""
    return tuple(
        ToolCallDelta(first + i, call.id, call.name, call.arguments_json())
        for i, call in enumerate(calls)
    )


def request_id_in_body(body: bytes) -> str | None:
    """The ``request_id`` string of a JSON error body, if it has one."""
    with contextlib.suppress(ValueError):
        data = loads(body)
        if isinstance(data, dict) and isinstance(data.get("request_id"), str):
            return str(data["request_id"])
    return None
