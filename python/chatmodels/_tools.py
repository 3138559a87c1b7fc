"""Tools: what the model may call (`Tool`, normalised by `to_tools` from dicts or typed
Python functions, whose hints and docstring become a JSON schema) and a call it asks for
(`ToolCall`)."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Union

from ._errors import InvalidConfigError

__all__ = ["Tool", "ToolCall", "ToolLike", "to_tools", "tool_call_from_dict"]


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asks for: `arguments` is parsed; `raw_arguments` is the wire text.

    When the model sends arguments that are not a JSON object, `arguments` is empty and
    `raw_arguments` keeps what it sent.
    """

    id: str
    name: str
    arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    raw_arguments: str | None = None

    @classmethod
    def from_wire(cls, id: str, name: str, raw: str | Mapping[str, Any] | None) -> ToolCall:
        """A tool call from arguments as a JSON string (or an already-parsed object)."""
        if raw is None or raw == "":
            return cls(id, name, {}, raw if raw is not None else None)
        if isinstance(raw, Mapping):
            return cls(id, name, dict(raw), json.dumps(raw, separators=(",", ":")))
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than json goes
            parsed = None
        return cls(id, name, parsed if isinstance(parsed, dict) else {}, raw)

    def arguments_json(self) -> str:
        """The arguments as the JSON text to send back to a provider."""
        if self.raw_arguments is not None and self.raw_arguments != "":
            return self.raw_arguments
        return json.dumps(self.arguments, separators=(",", ":"))


def tool_call_from_dict(raw: Any, op: str) -> ToolCall:
    """A `ToolCall` from an OpenAI-style dict (or itself), as a message given as a dict holds."""
    if isinstance(raw, ToolCall):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidConfigError("tool_calls items must be dicts or ToolCall objects", op=op)
    fn = raw.get("function", raw)
    if not isinstance(fn, Mapping):
        raise InvalidConfigError(
            f"a tool call's function must be a dict, got {type(fn).__name__}", op=op
        )
    call_id, name, arguments = raw.get("id", ""), fn.get("name", ""), fn.get("arguments")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise InvalidConfigError("a tool call's id and function name must be str", op=op)
    if arguments is not None and not isinstance(arguments, (str, Mapping)):
        raise InvalidConfigError(
            f"a tool call's arguments must be a JSON str or a dict, got {type(arguments).__name__}",
            op=op,
        )
    return ToolCall.from_wire(call_id, name, arguments)


@dataclasses.dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call: a name, a description and JSON-schema `parameters`."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidConfigError("a tool's name must be a non-empty str", op="Tool")
        if not isinstance(self.description, str):
            raise InvalidConfigError(
                f"tool {self.name!r}: description must be a str, got "
                f"{type(self.description).__name__}",
                op="Tool",
            )
        if not isinstance(self.parameters, Mapping):
            raise InvalidConfigError(
                f"tool {self.name!r}: parameters must be a JSON schema object (a dict), got "
                f"{type(self.parameters).__name__}",
                op="Tool",
            )
        if self.strict is not None and not isinstance(self.strict, bool):
            raise InvalidConfigError(f"tool {self.name!r}: strict must be a bool", op="Tool")

    @classmethod
    def from_function(cls, func: Callable[..., Any]) -> Tool:
        """A tool from a typed Python function: its name, docstring and parameter hints.

        Parameters may be described in a Google-style ``Args:`` section or with
        ``Annotated[T, "description"]``. Parameters without a default are required.
        """
        return _tool_from_function(func)


ToolLike = Tool | Mapping[str, Any] | Callable[..., Any]


def to_tools(tools: Iterable[ToolLike] | None, op: str = "invoke") -> tuple[Tool, ...]:
    """Tools given as `Tool`, dicts (OpenAI style or flat) or typed functions, as `Tool`s."""
    if tools is None:
        return ()
    if (
        isinstance(tools, (Mapping, str, bytes))
        or callable(tools)
        or not isinstance(tools, Iterable)
    ):
        raise InvalidConfigError(f"tools must be a list, got {type(tools).__name__}", op=op)
    out = []
    for tool in tools:
        if isinstance(tool, Tool):
            out.append(tool)
        elif isinstance(tool, Mapping):
            fn = tool.get("function", tool)
            name = fn.get("name") if isinstance(fn, Mapping) else None
            if not isinstance(name, str) or not name:
                raise InvalidConfigError(f"a tool needs a name: {tool!r}", op=op)
            params = fn.get("parameters")
            if params is None or (isinstance(params, Mapping) and not params):
                params = {"type": "object", "properties": {}}
            try:
                tool_ = Tool(name, fn.get("description") or "", params, fn.get("strict"))
            except InvalidConfigError as exc:
                raise InvalidConfigError(exc.detail, op=op) from None
            out.append(tool_)
        elif callable(tool):
            out.append(_tool_from_function(tool))
        else:
            raise InvalidConfigError(
                f"a tool must be a Tool, a dict or a function, got {type(tool).__name__}", op=op
            )
    return tuple(out)


def _tool_from_function(func: Callable[..., Any]) -> Tool:
    try:
        hints = typing.get_type_hints(func, include_extras=True)
        signature = inspect.signature(func)
    except (NameError, TypeError, ValueError) as exc:
        raise InvalidConfigError(
            f"cannot read the signature of tool {getattr(func, '__name__', func)!r}: {exc}",
            op="Tool.from_function",
        ) from exc
    summary, arg_docs = _parse_docstring(inspect.getdoc(func) or "")
    properties: dict[str, Any] = {}
    required = []
    for name, param in signature.parameters.items():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        hint = hints.get(name, Any)
        schema, note = _schema_of(hint)
        description = note or arg_docs.get(name)
        if description:
            schema = {**schema, "description": description}
        properties[name] = schema
        if param.default is inspect.Parameter.empty:
            required.append(name)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return Tool(func.__name__, summary, parameters)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section = "summary"
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            section, current = "args", None
            continue
        if stripped.endswith(":") and stripped[:-1] in ("Returns", "Raises", "Example", "Yields"):
            section = "other"
            continue
        if section == "summary":
            if not stripped and summary_lines:
                section = "body"
            elif stripped:
                summary_lines.append(stripped)
        elif section == "args" and stripped:
            found = re.match(r"(\w+)\s*(\([^)]*\))?\s*:\s*(.*)", stripped)
            if found and line.startswith((" ", "\t")) and not line.startswith(" " * 8):
                current = found[1]
                args[current] = found[3]
            elif current:
                args[current] = f"{args[current]} {stripped}".strip()
    return " ".join(summary_lines), args


_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    Any: {},
}


def _schema_of(hint: Any) -> tuple[dict[str, Any], str | None]:
    """The JSON schema of a type hint, and the description an `Annotated` hint carries."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(hint)
        schema, _ = _schema_of(base)
        note = next((e for e in extras if isinstance(e, str)), None)
        return schema, note
    if hint in _SCALARS:
        return dict(_SCALARS[hint]), None
    if origin is Literal:
        values = list(typing.get_args(hint))
        return {"enum": values}, None
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _schema_of(args[0])
        return {"anyOf": [_schema_of(a)[0] for a in args]}, None
    if origin in (list, tuple, set, frozenset, Sequence, Iterable) or hint in (list, tuple, set):
        items = typing.get_args(hint)
        item = _schema_of(items[0])[0] if items and items[0] is not Ellipsis else {}
        return ({"type": "array", "items": item} if item else {"type": "array"}), None
    if origin in (dict, Mapping) or hint in (dict,):
        return {"type": "object"}, None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}, None
    schema_of_model = getattr(hint, "model_json_schema", None)
    if callable(schema_of_model):
        return dict(schema_of_model()), None
    return {}, None
