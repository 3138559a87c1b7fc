"""The OpenAI Chat Completions wire format: `openai`, `azure_openai` and the
OpenAI-compatible family (groq, deepseek, xai, together, fireworks, openrouter, perplexity,
vllm, lmstudio, openai_compatible).

Reference: https://platform.openai.com/docs/api-reference/chat (request, response, the
``chat.completion.chunk`` stream with ``stream_options.include_usage``) and, for Azure, the
data-plane reference (``/openai/deployments/{deployment}/chat/completions?api-version=``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from .._errors import ChatModelError
from .._metadata import ProviderMetadata, ProviderOptions
from .._request import ChatRequest
from .._transport._framing import SSEDecoder
from .._transport._wire import Headers, WireRequest
from .._types import (
    ChatChunk,
    ChatResponse,
    ImagePart,
    Message,
    ReasoningPart,
    ToolCallDelta,
    Usage,
)
from ._common import (
    NO_HEADERS,
    JSONRequests,
    arr,
    bad,
    bearer,
    count,
    finish_reason,
    function_tool,
    image_url,
    index,
    obj,
    openai_tool_calls,
    opt_arr,
    opt_obj,
    opt_str,
    reply,
    text,
    tool_calls_of_openai,
    without_reasoning,
)
from ._http import (
    HTTPChatModel,
    ReplyShapeError,
    StreamEnd,
    error_from_response,
    json_body,
    loads,
    loads_many,
)

__all__ = ["AzureOpenAIAdapter", "OpenAIAdapter", "create"]

AZURE_API_VERSION = "2024-10-21"

# Models that take max_completion_tokens and refuse max_tokens.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def _wire_message(msg: Message) -> dict[str, Any]:
    content = msg.content if isinstance(msg.content, str) else without_reasoning(msg.content)
    out: dict[str, Any] = {"role": msg.role}
    if isinstance(content, str):
        out["content"] = content
    else:
        parts: list[dict[str, Any]] = []
        for part in content:
            if isinstance(part, ImagePart):
                parts.append({"type": "image_url", "image_url": image_url(part)})
            else:
                parts.append({"type": "text", "text": part.text})
        out["content"] = parts
    if msg.tool_calls:
        if not content:
            del out["content"]  # an assistant turn that only calls tools has no content
        out["tool_calls"] = openai_tool_calls(msg.tool_calls)
    if msg.tool_call_id is not None:
        out["tool_call_id"] = msg.tool_call_id
    if msg.name is not None and msg.role != "tool":
        out["name"] = msg.name
    return out


def _usage(raw: Any, path: str = "usage") -> Usage | None:
    if raw is None:
        return None
    raw = obj(raw, path)
    if not raw:
        return None
    prompt = count(raw, "prompt_tokens", path) or 0
    completion = count(raw, "completion_tokens", path) or 0
    prompt_details = opt_obj(raw.get("prompt_tokens_details"), f"{path}.prompt_tokens_details")
    completion_details = opt_obj(
        raw.get("completion_tokens_details"), f"{path}.completion_tokens_details"
    )
    cached = count(prompt_details, "cached_tokens", f"{path}.prompt_tokens_details")
    if cached is None:
        cached = count(raw, "prompt_cache_hit_tokens", path)  # DeepSeek
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=count(raw, "total_tokens", path) or prompt + completion,
        cache_read_input_tokens=cached,
        reasoning_tokens=count(
            completion_details, "reasoning_tokens", f"{path}.completion_tokens_details"
        ),
    )


def _call_delta(raw: Any, path: str) -> ToolCallDelta:
    call = obj(raw, path)
    fn = opt_obj(call.get("function"), f"{path}.function")
    return ToolCallDelta(
        index=index(call.get("index"), f"{path}.index"),
        id=opt_str(call.get("id"), f"{path}.id"),
        name=opt_str(fn.get("name"), f"{path}.function.name"),
        arguments=text(fn.get("arguments"), f"{path}.function.arguments"),
    )


class OpenAIAdapter:
    """Chat Completions over ``POST {base_url}/chat/completions`` with a Bearer key."""

    supported_params: ClassVar[frozenset[str]] = frozenset(
        {
            "temperature",
            "max_tokens",
            "top_p",
            "stop",
            "seed",
            "frequency_penalty",
            "presence_penalty",
            "n",
        }
    )
    path = "/chat/completions"
    models_path = "/models"

    def __init__(self, provider: str, api_key: str | None, *, probe: bool = True) -> None:
        self.provider = provider
        self.probe = probe
        self._http = JSONRequests(self._auth_headers(api_key))

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        return bearer(api_key)

    def _path(self, request: ChatRequest) -> str:
        return self.path

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of a chat completion request."""
        body: dict[str, Any] = {
            "messages": [_wire_message(m) for m in request.messages],
            "model": request.model,
        }
        params = request.params
        if params:
            for key, value in params.items():
                if key == "max_tokens" and request.model.startswith(_REASONING_PREFIXES):
                    body["max_completion_tokens"] = value
                else:
                    body[key] = value
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if request.tools:
            body["tools"] = [function_tool(tool, strict=True) for tool in request.tools]
            choice = request.tool_choice
            if isinstance(choice, str) and choice not in ("auto", "none", "required"):
                choice = {"type": "function", "function": {"name": choice}}
            if choice is not None:
                body["tool_choice"] = choice
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
        fmt = request.response_format
        if fmt is not None:
            if fmt.type == "json_schema":
                spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema}
                if fmt.strict is not None:
                    spec["strict"] = fmt.strict
                body["response_format"] = {"type": "json_schema", "json_schema": spec}
            else:
                body["response_format"] = {"type": fmt.type}
        if request.provider_specific:
            body.update(request.provider_specific)
        return body

    def build_request(self, request: ChatRequest) -> WireRequest:
        """``POST /chat/completions``."""
        return self._http.post(self._path(request), self.build_body(request), stream=request.stream)

    def parse_response(self, body: bytes, request: ChatRequest) -> ChatResponse:
        """A ``chat.completion`` object (its first choice); a DeepSeek-style
        ``reasoning_content`` is the reply's reasoning."""
        return self._reply_of(loads(body), body)

    def _reply_of(self, decoded: Any, body: bytes) -> ChatResponse:
        """`parse_response` of the decoded `body`."""
        data = obj(decoded, "the body")
        if "error" in data and "choices" not in data:
            raise self.parse_error(500, NO_HEADERS, body)
        choices = arr(data.get("choices"), "choices")
        if not choices:
            raise ReplyShapeError("choices is an empty array")
        choice = obj(choices[0], "choices[0]")
        msg = opt_obj(choice.get("message"), "choices[0].message")
        thought = text(msg.get("reasoning_content"), "choices[0].message.reasoning_content")
        return reply(
            self.provider,
            text(msg.get("content"), "choices[0].message.content"),
            tool_calls_of_openai(msg.get("tool_calls"), "choices[0].message.tool_calls"),
            raw_finish=opt_str(choice.get("finish_reason"), "choices[0].finish_reason"),
            usage=_usage(data.get("usage")),
            id=opt_str(data.get("id"), "id"),
            model=opt_str(data.get("model"), "model"),
            reasoning=(ReasoningPart(thought),) if thought else (),
        )

    def new_decoder(self) -> SSEDecoder:
        """Chat Completions streams are server-sent events."""
        return SSEDecoder()

    def parse_event(
        self, event: tuple[str | None, bytes], state: dict[str, Any]
    ) -> ChatChunk | Iterable[ChatChunk]:
        """One ``chat.completion.chunk``; ``[DONE]`` ends the stream."""
        data = event[1]
        if data == b"[DONE]":
            raise StreamEnd
        return self.parse_chunk(loads(data), state)

    def parse_events(
        self,
        events: Sequence[tuple[str | None, bytes]],
        state: dict[str, Any],
        out: list[ChatChunk],
    ) -> None:
        """The events of one network read into `out`, their JSON decoded in one pass (a
        third faster than one by one on a stream's many small events)."""
        datas = [event[1] for event in events]
        done = b"[DONE]" in datas
        if done:
            datas = datas[: datas.index(b"[DONE]")]
        decoded = loads_many(datas)
        # Not one JSON value each: one by one, up to the event in error.
        objs: Iterable[Any] = map(loads, datas) if decoded is None else decoded
        parse = self.parse_chunk
        append = out.append
        for item in objs:
            chunks = parse(item, state)
            if type(chunks) is ChatChunk:
                append(chunks)
            else:
                out.extend(chunks)  # type: ignore[arg-type]
        if done:
            raise StreamEnd

    def parse_chunk(self, data: Any, state: dict[str, Any]) -> ChatChunk | Iterable[ChatChunk]:
        """The chunk in one decoded ``chat.completion.chunk`` (none for an empty one); a
        delta's DeepSeek-style ``reasoning_content`` is the chunk's reasoning."""
        if type(data) is not dict:
            raise bad("the event", "an object", data)
        # The usual event first: a text delta of choice 0 and nothing else to read.
        choices = data.get("choices")
        if (
            type(choices) is list
            and len(choices) == 1
            and data.get("usage") is None
            and "x_groq" not in data
            and type(choices[0]) is dict
        ):
            choice = choices[0]
            delta = choice.get("delta")
            at = choice.get("index")
            if (
                choice.get("finish_reason") is None
                and (at is None or (type(at) is int and at == 0))
                and type(delta) is dict
                and not delta.get("tool_calls")
            ):
                content = delta.get("content")
                thought = delta.get("reasoning_content")  # DeepSeek and vLLM reasoning models
                chunk_id = data.get("id")
                model = data.get("model")
                if type(content) is not str:
                    content = text(content, "choices[0].delta.content")
                if type(thought) is not str:
                    thought = (
                        ""
                        if thought is None
                        else text(thought, "choices[0].delta.reasoning_content")
                    )
                if chunk_id is not None and type(chunk_id) is not str:
                    raise bad("id", "a string", chunk_id)
                if model is not None and type(model) is not str:
                    raise bad("model", "a string", model)
                return ChatChunk(
                    content, (), None, None, None, chunk_id, model, self.provider, thought
                )
        if "error" in data and "choices" not in data:
            raise self.parse_error(500, NO_HEADERS, json_body(data))
        usage_raw = data.get("usage")
        path = "usage"
        if usage_raw is None:
            extra = opt_obj(data.get("x_groq"), "x_groq")  # Groq reports stream usage here
            usage_raw = extra.get("usage")
            path = "x_groq.usage"
        usage = _usage(usage_raw, path)
        content = thought = ""
        deltas: tuple[ToolCallDelta, ...] = ()
        raw_finish = None
        seen = False
        for i, item in enumerate(opt_arr(choices, "choices")):
            choice = obj(item, f"choices[{i}]")
            if index(choice.get("index"), f"choices[{i}].index") != 0:
                continue
            seen = True
            delta = opt_obj(choice.get("delta"), f"choices[{i}].delta")
            content = text(delta.get("content"), f"choices[{i}].delta.content")
            thought = text(delta.get("reasoning_content"), f"choices[{i}].delta.reasoning_content")
            calls = delta.get("tool_calls")
            if calls:
                deltas = tuple(
                    _call_delta(call, f"choices[{i}].delta.tool_calls[{j}]")
                    for j, call in enumerate(opt_arr(calls, f"choices[{i}].delta.tool_calls"))
                )
            raw_finish = opt_str(choice.get("finish_reason"), f"choices[{i}].finish_reason")
        if not seen and usage is None:
            return ()
        return (
            ChatChunk(
                text=content,
                tool_call_deltas=deltas,
                finish_reason=finish_reason(raw_finish),
                raw_finish_reason=raw_finish,
                usage=usage,
                id=opt_str(data.get("id"), "id"),
                model=opt_str(data.get("model"), "model"),
                provider=self.provider,
                reasoning=thought,
            ),
        )

    def parse_error(self, status: int, headers: Headers, body: bytes) -> ChatModelError:
        """``{"error": {"message", "type", "code"}}``, mapped by status and code."""
        return error_from_response(status, headers, body, provider=self.provider)

    def health_request(self) -> WireRequest | None:
        """``GET /models``: lists models, spends no tokens."""
        return self._http.get(self.models_path) if self.probe else None


class AzureOpenAIAdapter(OpenAIAdapter):
    """Azure OpenAI: the deployment in the path, ``api-version`` in the query, the key in
    the ``api-key`` header."""

    def __init__(self, provider: str, api_key: str | None, api_version: str) -> None:
        self.api_version = api_version
        super().__init__(provider, api_key)

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"api-key": api_key} if api_key else {}

    def _path(self, request: ChatRequest) -> str:
        deployment = quote(request.model, safe="")
        return f"/openai/deployments/{deployment}/chat/completions?api-version={self.api_version}"

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        """The OpenAI body without `model`: the deployment names it."""
        body = super().build_body(request)
        del body["model"]
        return body

    def health_request(self) -> WireRequest | None:
        """``GET /openai/models``."""
        return self._http.get(f"/openai/models?api-version={self.api_version}")


def create(metadata: ProviderMetadata, options: ProviderOptions) -> HTTPChatModel:
    """An instance of any provider of the OpenAI family."""
    key = options.api_key_value()
    adapter: OpenAIAdapter
    if metadata.name == "azure_openai":
        version = options.provider_specific.get("api_version") or AZURE_API_VERSION
        adapter = AzureOpenAIAdapter(metadata.name, key, str(version))
    else:
        probe = bool(metadata.provider_specific.get("health_probe", True))
        adapter = OpenAIAdapter(metadata.name, key, probe=probe)
    return HTTPChatModel(metadata, options, adapter)
