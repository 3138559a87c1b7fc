"""The values a chat call takes and returns: messages, responses, chunks, usage (tools and
tool calls are in `_tools`).

Every type here is a small immutable value (frozen, slotted dataclasses) with no I/O. The
`to_messages` normaliser accepts what users write (a str, OpenAI-style dicts) and turns it
into these types once, before any request.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from ._errors import InvalidConfigError
from ._tools import ToolCall, tool_call_from_dict

__all__ = [
    "ChatChunk",
    "ChatResponse",
    "ContentPart",
    "FinishReason",
    "HealthStatus",
    "ImagePart",
    "Message",
    "ReasoningPart",
    "Role",
    "TextPart",
    "ToolCallDelta",
    "Usage",
    "accumulate",
    "normalize_finish_reason",
    "reply_content",
    "to_messages",
]

Role = Literal["system", "user", "assistant", "tool"]
_ROLES = frozenset(("system", "user", "assistant", "tool"))


class FinishReason(str, enum.Enum):
    """Why the model stopped, normalised across providers."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


# Raw finish reasons of every wire format we speak, lower-cased.
_FINISH: dict[str, FinishReason] = {
    # OpenAI family, Mistral, Ollama
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
    "model_length": FinishReason.LENGTH,
    "error": FinishReason.ERROR,
    # Anthropic, Bedrock
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
    "pause_turn": FinishReason.STOP,
    "guardrail_intervened": FinishReason.CONTENT_FILTER,
    "content_filtered": FinishReason.CONTENT_FILTER,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "malformed_model_output": FinishReason.ERROR,
    "malformed_tool_use": FinishReason.ERROR,
    # Gemini
    "finish_reason_unspecified": FinishReason.STOP,
    "safety": FinishReason.CONTENT_FILTER,
    "recitation": FinishReason.CONTENT_FILTER,
    "blocklist": FinishReason.CONTENT_FILTER,
    "prohibited_content": FinishReason.CONTENT_FILTER,
    "spii": FinishReason.CONTENT_FILTER,
    "image_safety": FinishReason.CONTENT_FILTER,
    "malformed_function_call": FinishReason.ERROR,
    "unexpected_tool_call": FinishReason.ERROR,
    "too_many_tool_calls": FinishReason.ERROR,
    "missing_thought_signature": FinishReason.ERROR,
    "model_armor": FinishReason.CONTENT_FILTER,
    "image_prohibited_content": FinishReason.CONTENT_FILTER,
    "image_recitation": FinishReason.CONTENT_FILTER,
    "other": FinishReason.STOP,
    "language": FinishReason.STOP,
    # Cohere
    "complete": FinishReason.STOP,
    "tool_call": FinishReason.TOOL_CALLS,
    "error_toxic": FinishReason.CONTENT_FILTER,
    "error_limit": FinishReason.LENGTH,
    "user_cancel": FinishReason.STOP,
    "timeout": FinishReason.ERROR,
    # Ollama's done_reason
    "load": FinishReason.STOP,
    "unload": FinishReason.STOP,
}


def normalize_finish_reason(raw: str | None) -> FinishReason | None:
    """Map a provider's finish reason to a `FinishReason`; None stays None.

    A value no provider is known to send maps to ``stop``: the model ended its turn.
    """
    if raw is None:
        return None
    found = _FINISH.get(raw)
    if found is None:
        found = _FINISH.get(raw.lower(), FinishReason.STOP)
    return found


# -- content -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class TextPart:
    """A piece of text in a message."""

    text: str
    type: Literal["text"] = "text"


@dataclasses.dataclass(frozen=True, slots=True)
class ImagePart:
    """An image, by URL or as base64 data with its media type."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None
    type: Literal["image"] = "image"

    def __post_init__(self) -> None:
        for field in ("url", "data", "media_type", "detail"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, str):
                raise InvalidConfigError(
                    f"an ImagePart's {field} must be a str, got {type(value).__name__}",
                    op="ImagePart",
                )
        if (self.url is None) == (self.data is None):
            raise InvalidConfigError("an ImagePart takes either url or data", op="ImagePart")
        if self.data is not None and not self.media_type:
            raise InvalidConfigError("an ImagePart with data needs media_type", op="ImagePart")

    @classmethod
    def from_bytes(cls, raw: bytes, media_type: str, *, detail: str | None = None) -> ImagePart:
        """An image from its bytes."""
        return cls(data=base64.b64encode(raw).decode("ascii"), media_type=media_type, detail=detail)

    def as_data_url(self) -> str:
        """The image as a URL: its own, or a ``data:`` URL of its bytes."""
        if self.url is not None:
            return self.url
        return f"data:{self.media_type};base64,{self.data}"


@dataclasses.dataclass(frozen=True, slots=True)
class ReasoningPart:
    """The model's reasoning ("thinking") before its reply; not part of the reply's text.

    `signature` is the provider's seal over the text (Anthropic requires it back with the
    thinking block when a conversation continues); `redacted` holds the opaque data of a
    reasoning block the provider redacted (its `text` is then empty).
    """

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    type: Literal["reasoning"] = "reasoning"


ContentPart = TextPart | ImagePart | ReasoningPart


def reply_content(
    text: str, reasoning: Sequence[ReasoningPart] = ()
) -> str | tuple[ContentPart, ...]:
    """An assistant reply's content: its text, after its reasoning parts when it has any."""
    if not reasoning:
        return text
    return (*reasoning, TextPart(text)) if text else tuple(reasoning)


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation.

    `content` is a str or a tuple of parts (`TextPart`, `ImagePart`, and in assistant replies
    `ReasoningPart`). Assistant messages may carry `tool_calls`; tool results carry the
    `tool_call_id` they answer.
    """

    role: Role
    content: str | tuple[ContentPart, ...] = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    # Every call makes some (from the caller's dicts). Filled through the slots' own
    # descriptors, captured once below: saves 3,900 instructions per Message (6,600 against
    # 10,500 through the frozen dataclass __init__ + __post_init__; 7,700 per fake invoke),
    # callgrind, CPython 3.11; the checks ride along.
    def __init__(
        self,
        role: Role,
        content: str | tuple[ContentPart, ...] = "",
        tool_calls: tuple[ToolCall, ...] = (),
        tool_call_id: str | None = None,
        name: str | None = None,
    ) -> None:
        # The usual message (a known role, str content, nothing else) costs one check each.
        if type(role) is not str or role not in _ROLES:
            role = _checked_role(role)
        if type(content) is not str:
            content = _checked_content(content)
        if tool_calls:
            tool_calls = _checked_calls(tool_calls)
        if tool_call_id is not None and type(tool_call_id) is not str:
            raise _not_a_str("tool_call_id", tool_call_id)
        if name is not None and type(name) is not str:
            raise _not_a_str("name", name)
        _set_role(self, role)
        _set_content(self, content)
        _set_tool_calls(self, tool_calls)
        _set_tool_call_id(self, tool_call_id)
        _set_name(self, name)

    @property
    def text(self) -> str:
        """The message's text (its text parts joined)."""
        content = self.content
        if isinstance(content, str):
            return content
        return "".join(p.text for p in content if isinstance(p, TextPart))

    @property
    def reasoning(self) -> str | None:
        """The text of the message's reasoning parts joined, or None when it has none."""
        content = self.content
        if isinstance(content, str):
            return None
        parts = [p.text for p in content if isinstance(p, ReasoningPart)]
        return "".join(parts) if parts else None

    @classmethod
    def system(cls, text: str) -> Message:
        """A system message."""
        return cls("system", text)

    @classmethod
    def user(cls, content: str | Sequence[ContentPart]) -> Message:
        """A user message: text, or parts such as text and images."""
        return cls("user", content if isinstance(content, str) else tuple(content))

    @classmethod
    def assistant(cls, text: str = "", tool_calls: Sequence[ToolCall] = ()) -> Message:
        """An assistant message, possibly with tool calls."""
        return cls("assistant", text, tuple(tool_calls))

    @classmethod
    def tool(cls, tool_call_id: str, content: str | Any, name: str | None = None) -> Message:
        """A tool result; a non-str result is sent as JSON."""
        text = content if isinstance(content, str) else json.dumps(content)
        return cls("tool", text, tool_call_id=tool_call_id, name=name)


_set_role, _set_content, _set_tool_calls, _set_tool_call_id, _set_name = (
    Message.__dict__[f.name].__set__ for f in dataclasses.fields(Message)
)


def _construct_unfrozen(cls: type[Any]) -> None:
    """Make the frozen slotted dataclass `cls` construct as fast as a plain class: a new
    instance is filled as an instance of a twin (a plain slotted dataclass made from the same
    fields: the same layout), then given its class. The frozen `__init__` fills each slot
    through object.__setattr__ instead. Counted by callgrind (instructions per construction,
    CPython 3.11): a ChatChunk of three fields 17,700 through the frozen `__init__`, 9,900
    this way; a 20-chunk fake stream 550,300 against 392,300. A stream makes a chunk per
    event. (A
    hand-written fill took 4,700 per chunk, and five edits per new field: the twin is made
    from the fields.)"""
    fields = dataclasses.fields(cls)
    twin: Any = dataclasses.make_dataclass(
        f"_Unfrozen{cls.__name__}",
        [
            (f.name, f.type, dataclasses.field(default=f.default))
            if f.default is not dataclasses.MISSING
            else (f.name, f.type)
            for f in fields
        ],
        slots=True,
    )

    def __new__(kind: type[Any], *args: Any, **kwargs: Any) -> Any:
        made = twin(*args, **kwargs)
        if kind is cls:
            made.__class__ = kind
            return made
        other = object.__new__(kind)  # a subclass may have another layout: field by field
        for f in fields:
            object.__setattr__(other, f.name, getattr(made, f.name))
        return other

    def __reduce__(self: Any) -> tuple[Any, ...]:  # copy and pickle: made again, by __new__
        return type(self), tuple(getattr(self, f.name) for f in fields)

    cls.__reduce__ = __reduce__  # type: ignore[assignment]
    __new__.__wrapped__ = twin.__init__  # type: ignore[attr-defined]  # (its signature)
    setattr(cls, "__new__", __new__)  # noqa: B010 - (mypy: a method of a class)
    del cls.__init__  # object's: the instance is complete when __new__ returns it


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"a {type(value).__name__}"


def _checked_role(role: object, op: str = "Message") -> Role:
    if isinstance(role, str) and role in _ROLES:
        return str.__str__(role)  # type: ignore[return-value]  # a str subclass, as a str
    raise InvalidConfigError(
        f"message role must be one of system, user, assistant, tool; got {_shown(role)}", op=op
    )


def _checked_content(content: object, op: str = "Message") -> str | tuple[ContentPart, ...]:
    """Content that is not a str: a sequence of parts, as a tuple."""
    if isinstance(content, str):
        return str.__str__(content)
    if not isinstance(content, (tuple, list)):
        raise InvalidConfigError(
            f"message content must be a str or a list of parts, got {type(content).__name__}",
            op=op,
        )
    for part in content:
        kind = type(part)
        if kind is TextPart:
            if type(part.text) is not str:
                raise InvalidConfigError(
                    f"a text part's text must be a str, got {type(part.text).__name__}", op=op
                )
        elif not isinstance(part, (TextPart, ImagePart, ReasoningPart)):
            raise InvalidConfigError(
                "message content parts must be TextPart, ImagePart or ReasoningPart, got "
                f"{kind.__name__}",
                op=op,
            )
    return tuple(content)


def _checked_calls(calls: object, op: str = "Message") -> tuple[ToolCall, ...]:
    if not isinstance(calls, (tuple, list)) or not all(isinstance(c, ToolCall) for c in calls):
        raise InvalidConfigError("a message's tool_calls must be a list of ToolCall", op=op)
    return tuple(calls)


def _not_a_str(field: str, value: object, op: str = "Message") -> InvalidConfigError:
    return InvalidConfigError(
        f"a message's {field} must be a str, got {type(value).__name__}", op=op
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call; the optional ones are None when the API does not report them."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ChatResponse:
    """The result of `invoke`.

    `model` is the model as the API named it; `latency` the call's wall time in seconds;
    `parsed` the reply parsed into the pydantic model given as `response_format`, if any.
    """

    message: Message
    id: str | None = None
    model: str | None = None
    provider: str | None = None
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None
    usage: Usage | None = None
    latency: float | None = None
    parsed: Any = None

    @property
    def text(self) -> str:
        """The reply's text."""
        return self.message.text

    @property
    def reasoning(self) -> str | None:
        """The reply's reasoning text, or None when the model sent none."""
        return self.message.reasoning

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls the model asked for."""
        return self.message.tool_calls


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a streamed tool call; fragments with the same `index` make one call."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class ChatChunk:
    """One streamed piece of a reply: a text delta, tool-call fragments, and at the end the
    finish reason and usage. `reasoning` is a delta of the model's reasoning text and
    `reasoning_signature` the signature that closes a reasoning block."""

    text: str = ""
    tool_call_deltas: tuple[ToolCallDelta, ...] = ()
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None
    usage: Usage | None = None
    id: str | None = None
    model: str | None = None
    provider: str | None = None
    reasoning: str = ""
    reasoning_signature: str | None = None


_construct_unfrozen(ChatChunk)


@dataclasses.dataclass(frozen=True, slots=True)
class HealthStatus:
    """The result of a health probe.

    `status` is healthy, degraded (answered, but slowly or rate-limited), unhealthy, or
    unknown (the provider has no probe). `error_code` is set when the probe failed.
    """

    status: Literal["healthy", "degraded", "unhealthy", "unknown"]
    latency: float | None = None
    detail: str = ""
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the provider answered."""
        return self.status in ("healthy", "degraded")


# -- accumulate ----------------------------------------------------------------------------


class Accumulator:
    """Folds chunks into a `ChatResponse` one at a time (what `accumulate` uses)."""

    __slots__ = (
        "_calls",
        "_finish",
        "_id",
        "_model",
        "_provider",
        "_raw_finish",
        "_reasoning",
        "_text",
        "_thinking",
        "_usage",
    )

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, list[Any]] = {}
        self._finish: FinishReason | None = None
        self._raw_finish: str | None = None
        self._usage: Usage | None = None
        self._id: str | None = None
        self._model: str | None = None
        self._provider: str | None = None
        self._reasoning: list[ReasoningPart] = []
        self._thinking: list[str] | None = None  # the open reasoning part's deltas

    def add(self, chunk: ChatChunk) -> None:
        """Fold one chunk in."""
        if chunk.text:
            self._text.append(chunk.text)
        if chunk.reasoning:
            if self._thinking is None:
                self._thinking = []
            self._thinking.append(chunk.reasoning)
        if chunk.reasoning_signature is not None:
            thinking = "".join(self._thinking or ())
            self._reasoning.append(ReasoningPart(thinking, chunk.reasoning_signature))
            self._thinking = None
        for delta in chunk.tool_call_deltas:
            slot = self._calls.get(delta.index)
            if slot is None:
                slot = self._calls[delta.index] = [None, None, []]
            if delta.id:
                slot[0] = delta.id
            if delta.name:
                slot[1] = delta.name
            if delta.arguments:
                slot[2].append(delta.arguments)
        if chunk.finish_reason is not None:
            self._finish = chunk.finish_reason
            self._raw_finish = chunk.raw_finish_reason
        if chunk.usage is not None:
            self._usage = chunk.usage
        if chunk.id and self._id is None:
            self._id = chunk.id
        if chunk.model and self._model is None:
            self._model = chunk.model
        if chunk.provider and self._provider is None:
            self._provider = chunk.provider

    def response(self, provider: str | None = None, latency: float | None = None) -> ChatResponse:
        """The response the chunks so far make."""
        calls = tuple(
            ToolCall.from_wire(slot[0] or "", slot[1] or "", "".join(slot[2]))
            for _, slot in sorted(self._calls.items())
        )
        reasoning = self._reasoning
        if self._thinking is not None:  # a reasoning part the stream never signed
            reasoning = [*reasoning, ReasoningPart("".join(self._thinking))]
        return ChatResponse(
            message=Message("assistant", reply_content("".join(self._text), reasoning), calls),
            id=self._id,
            model=self._model,
            provider=provider or self._provider,
            finish_reason=self._finish,
            raw_finish_reason=self._raw_finish,
            usage=self._usage,
            latency=latency,
        )


def accumulate(chunks: Iterable[ChatChunk], *, provider: str | None = None) -> ChatResponse:
    """Turn a finished stream into the `ChatResponse` the same call would have returned whole.

    Example:
        >>> response = chatmodels.accumulate(model.stream("Hi"))
    """
    acc = Accumulator()
    for chunk in chunks:
        acc.add(chunk)
    return acc.response(provider or getattr(chunks, "provider", None))


# -- normalising user input ----------------------------------------------------------------

MessagesLike = str | Message | Mapping[str, Any] | Sequence[Message | Mapping[str, Any]]


def to_messages(messages: MessagesLike, op: str = "invoke") -> tuple[Message, ...]:
    """A str (one user message), `Message` objects or OpenAI-style dicts, as `Message`s."""
    if isinstance(messages, str):
        return (Message("user", messages),)
    if type(messages) is not list:  # the usual case skips the ABC checks
        if isinstance(messages, (Message, Mapping)):
            messages = [messages]
        if not isinstance(messages, Sequence):
            messages = ()
    if not messages:
        raise InvalidConfigError(
            "messages must be a str or a non-empty list of Message objects or dicts", op=op
        )
    out = []
    for item in messages:
        if type(item) is dict:
            out.append(_message_from_dict(item, op))
        elif isinstance(item, Message):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(_message_from_dict(item, op))
        else:
            raise InvalidConfigError(
                f"a message must be a Message or a dict, got {type(item).__name__}", op=op
            )
    return tuple(out)


def _message_from_dict(raw: Mapping[str, Any], op: str) -> Message:
    role = raw.get("role")
    if role == "developer":
        role = "system"
    if type(role) is not str or role not in _ROLES:
        role = _checked_role(role, op)
    content = raw.get("content")
    if content is None:
        parsed: str | tuple[ContentPart, ...] = ""
    elif isinstance(content, str):
        parsed = content
    elif isinstance(content, (list, tuple)):
        parsed = tuple(_part_from_dict(p, op) for p in content)
    else:
        raise InvalidConfigError(
            f"message content must be a str or a list of parts, got {type(content).__name__}",
            op=op,
        )
    raw_calls = raw.get("tool_calls")
    calls: tuple[ToolCall, ...] = ()
    if raw_calls:
        if not isinstance(raw_calls, (list, tuple)):
            raise InvalidConfigError(
                f"tool_calls must be a list, got {type(raw_calls).__name__}", op=op
            )
        calls = tuple(tool_call_from_dict(c, op) for c in raw_calls)
    call_id = raw.get("tool_call_id")
    if role == "tool":
        if not call_id:
            raise InvalidConfigError("a tool message needs its tool_call_id", op=op)
        if content is None:
            raise InvalidConfigError("a tool message needs its content (the result)", op=op)
    elif content is None and not calls:
        raise InvalidConfigError(
            f"a {role} message needs content (or, from the assistant, tool_calls)", op=op
        )
    if call_id is not None and type(call_id) is not str:
        raise _not_a_str("tool_call_id", call_id, op)
    name = raw.get("name")
    if name is not None and type(name) is not str:
        raise _not_a_str("name", name, op)
    return Message(typing.cast(Role, role), parsed, calls, call_id, name)


def _part_from_dict(raw: Any, op: str) -> ContentPart:
    if isinstance(raw, (TextPart, ImagePart, ReasoningPart)):
        return raw
    if isinstance(raw, str):
        return TextPart(raw)
    kind = raw.get("type") if isinstance(raw, Mapping) else None
    if kind == "text":
        text = raw.get("text")
        if type(text) is not str:
            raise InvalidConfigError(
                f"a text part's text must be a str, got {type(text).__name__}", op=op
            )
        return TextPart(text)
    if kind in ("thinking", "reasoning"):
        text = raw.get("thinking", raw.get("text", raw.get("content", "")))
        return ReasoningPart(str(text or ""), _opaque(raw, "signature", op))
    if kind == "redacted_thinking":
        return ReasoningPart(redacted=_opaque(raw, "data", op))
    if kind in ("image_url", "image"):
        image = raw.get("image_url", raw)
        if isinstance(image, str):
            return _image_from_url(image, None)
        if not isinstance(image, Mapping):
            raise InvalidConfigError(
                f"an image_url must be a str or a dict, got {type(image).__name__}", op=op
            )
        if "url" in image:
            url = image["url"]
            if not isinstance(url, str):
                raise InvalidConfigError(
                    f"an image's url must be a str, got {type(url).__name__}", op=op
                )
            return _image_from_url(url, image.get("detail"))
        if "data" in image:
            return ImagePart(data=image["data"], media_type=image.get("media_type"))
    raise InvalidConfigError(f"unsupported content part {_shown(raw)}", op=op)


def _opaque(raw: Mapping[str, Any], key: str, op: str) -> str | None:
    """A provider's opaque str (a thinking signature, redacted data), sent back as it came."""
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidConfigError(
            f"a reasoning part's {key} must be a str, got {type(value).__name__}", op=op
        )
    return value


_DATA_URL = re.compile(r"data:(?P<type>[\w.+/-]+);base64,(?P<data>.*)", re.DOTALL)


def _image_from_url(url: str, detail: str | None) -> ImagePart:
    found = _DATA_URL.fullmatch(url)
    if found:
        return ImagePart(data=found["data"], media_type=found["type"], detail=detail)
    return ImagePart(url=url, detail=detail)
