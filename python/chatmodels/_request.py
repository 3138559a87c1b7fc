"""Request preparation: what a chat call's messages and parameters become before any I/O.

`prepare` turns a call's messages and keyword parameters into the `ChatRequest` a provider
receives, refusing what the provider's capabilities and parameters do not allow
(invalid_config, capability_not_supported); `parse_reply` parses a reply as its
`ResponseFormat` asks.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ._errors import CapabilityNotSupportedError, InvalidConfigError, InvalidResponseError, suggest
from ._metadata import _CHECKS, Capability, ProviderMetadata
from ._tools import Tool, to_tools
from ._types import ImagePart, Message, MessagesLike, to_messages

__all__ = [
    "KNOWN_PARAMS",
    "SAMPLING_PARAMS",
    "ChatRequest",
    "ResponseFormat",
    "check_concurrency",
    "parse_reply",
    "prepare",
]

# Sampling parameters: sent to the provider when set, reported to the observer.
SAMPLING_PARAMS = (
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "n",
)
_OTHER_PARAMS = (
    "model",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "timeout",
    "conversation_id",
    "provider_specific",
)
KNOWN_PARAMS = frozenset(SAMPLING_PARAMS + _OTHER_PARAMS)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_PARAM_CHECKS: dict[str, tuple[Any, str]] = {
    **{k: _CHECKS[k] for k in ("model", "temperature", "max_tokens", "top_p", "stop", "seed")},
    "timeout": _CHECKS["timeout"],
    "top_k": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive int"),
    "n": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive int"),
    "frequency_penalty": (lambda v: _is_number(v) and -2 <= v <= 2, "a number from -2 to 2"),
    "presence_penalty": (lambda v: _is_number(v) and -2 <= v <= 2, "a number from -2 to 2"),
    "parallel_tool_calls": (lambda v: isinstance(v, bool), "a bool"),
    "conversation_id": (lambda v: isinstance(v, str), "a str"),
    "provider_specific": (lambda v: isinstance(v, Mapping), "a mapping"),
    "tool_choice": (
        lambda v: isinstance(v, (str, Mapping)),
        "'auto', 'none', 'required', a tool name or a dict",
    ),
}


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseFormat:
    """The reply format asked for: ``text``, ``json_object`` or ``json_schema`` (with its
    `name`, `schema` and `strict`); `model_class` is the pydantic class to parse into."""

    type: str
    name: str | None = None
    schema: Mapping[str, Any] | None = None
    strict: bool | None = None
    model_class: Any = None


@dataclasses.dataclass(slots=True)
class ChatRequest:
    """One validated call, as providers receive it.

    `params` holds only the sampling parameters that are set (from the call, else from the
    instance's options).
    """

    messages: tuple[Message, ...]
    model: str
    params: dict[str, Any]
    tools: tuple[Tool, ...] = ()
    tool_choice: str | Mapping[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    timeout: float | None = None
    conversation_id: str | None = None
    provider_specific: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    stream: bool = False
    #: the text of each system message, for telemetry's content capture
    system_instructions: tuple[str, ...] = ()


def prepare(
    messages: MessagesLike,
    params: Mapping[str, Any],
    stream: bool,
    op: str,
    metadata: ProviderMetadata,
    defaults: Mapping[str, Any],
    model: str | None,
    supported: frozenset[str],
) -> ChatRequest:
    """Normalise and check one call: `messages` and `params` against the provider's
    `metadata` (its capabilities) and `supported` sampling parameters, before anything is
    sent. `defaults` are the instance's sampling options, `model` its default model.

    Raises invalid_config or capability_not_supported (with `op`).
    """
    provider = metadata.name
    msgs = to_messages(messages, op)
    caps = metadata.capabilities
    sampling = dict(defaults) if defaults else {}
    tools: tuple[Tool, ...] = ()
    request = ChatRequest(msgs, "", sampling, stream=stream)
    for key, value in params.items():
        if value is None:
            continue
        check = _PARAM_CHECKS.get(key)
        if check is None and key not in KNOWN_PARAMS:
            hint = suggest(key, sorted(KNOWN_PARAMS))
            raise InvalidConfigError(
                f"unknown parameter {key!r}" + (f"; did you mean {hint!r}?" if hint else ""),
                op=op,
                provider=provider,
            )
        if check is not None and not check[0](value):
            raise InvalidConfigError(
                f"parameter {key!r} must be {check[1]}, got {value!r}", op=op, provider=provider
            )
        if key in SAMPLING_PARAMS:
            if key not in supported:
                raise CapabilityNotSupportedError(
                    f"provider {provider!r} does not support parameter {key!r}",
                    op=op,
                    provider=provider,
                )
            sampling[key] = list(value) if key == "stop" and not isinstance(value, str) else value
        elif key == "model":
            model = value
        elif key == "tools":
            tools = to_tools(value, op)
        elif key == "response_format":
            request.response_format = _response_format(value, op, provider)
        else:
            setattr(request, key, value)
    if isinstance(sampling.get("stop"), tuple):
        sampling["stop"] = list(sampling["stop"])
    if not model:
        raise InvalidConfigError(
            f"no model: pass model=... or create provider {provider!r} with a model",
            op=op,
            provider=provider,
        )
    request.model = model
    if tools:
        request.tools = tools
        _require(caps, Capability.TOOL_CALLING, "tools", provider, op)
    elif request.tool_choice is not None:
        raise InvalidConfigError("tool_choice given without tools", op=op, provider=provider)
    fmt = request.response_format
    if fmt is not None:
        if fmt.type == "json_object":
            _require(caps, Capability.JSON_MODE, "response_format json_object", provider, op)
        elif fmt.type == "json_schema":
            _require(
                caps, Capability.STRUCTURED_OUTPUT, "response_format json_schema", provider, op
            )
    if stream:
        _require(caps, Capability.STREAMING, "streaming", provider, op)
    system: list[str] | None = None
    for msg in msgs:
        if msg.role == "system":
            _require(caps, Capability.SYSTEM_PROMPT, "system messages", provider, op)
            if system is None:
                system = []
            system.append(msg.text)
        elif not isinstance(msg.content, str) and any(
            isinstance(p, ImagePart) for p in msg.content
        ):
            _require(caps, Capability.VISION, "image input", provider, op)
    if system is not None:
        request.system_instructions = tuple(system)
    return request


def _require(
    caps: frozenset[Capability], cap: Capability, what: str, provider: str, op: str
) -> None:
    if cap not in caps:
        raise CapabilityNotSupportedError(
            f"provider {provider!r} does not support {what} (capability {cap.value!r})",
            op=op,
            provider=provider,
        )


def check_concurrency(value: object, op: str) -> None:
    """Refuse a `max_concurrency` that is not a positive int (invalid_config)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidConfigError("max_concurrency must be a positive int", op=op)


def _response_format(value: Any, op: str, provider: str) -> ResponseFormat:
    schema_of = getattr(value, "model_json_schema", None)
    if isinstance(value, type) and callable(schema_of):
        return ResponseFormat("json_schema", value.__name__, schema_of(), None, model_class=value)
    if isinstance(value, str):
        value = {"type": value}
    if isinstance(value, Mapping):
        kind = value.get("type")
        if kind in ("text", "json_object"):
            return ResponseFormat(kind)
        if kind == "json_schema":
            spec = value.get("json_schema", value)
            if not isinstance(spec, Mapping):
                raise InvalidConfigError(
                    "a json_schema response_format's 'json_schema' must be an object, got "
                    f"{type(spec).__name__}",
                    op=op,
                    provider=provider,
                )
            schema = spec.get("schema")
            if not isinstance(schema, Mapping):
                raise InvalidConfigError(
                    "a json_schema response_format needs a 'schema' object",
                    op=op,
                    provider=provider,
                )
            return ResponseFormat(
                "json_schema", spec.get("name") or "response", schema, spec.get("strict")
            )
    raise InvalidConfigError(
        "response_format must be {'type': 'json_object'}, a json_schema dict, or a pydantic "
        f"model class; got {value!r}",
        op=op,
        provider=provider,
    )


def parse_reply(text: str, fmt: ResponseFormat, provider: str) -> Any:
    """`text` parsed as `fmt` asks (into its pydantic class, else as JSON); invalid_response
    when it is not."""
    try:
        if fmt.model_class is not None:
            return fmt.model_class.model_validate_json(text)
        return json.loads(text)
    except Exception as exc:
        raise InvalidResponseError(
            f"the reply is not valid for the requested response_format: {exc}",
            op="parse",
            provider=provider,
            err=exc,
        ) from exc
