"""The Google Gen AI ``generateContent`` wire format: `gemini` (the Gemini API, an API key)
and `vertex_ai` (Vertex AI, a project, a location and an OAuth access token).

Reference: https://ai.google.dev/api/generate-content (request, ``GenerateContentResponse``,
``streamGenerateContent?alt=sse``, ``usageMetadata``, ``FinishReason``) and the Vertex AI
``publishers.models.generateContent`` reference. Paths, API versions and base URLs follow the
official SDK (google-genai): ``https://generativelanguage.googleapis.com`` + ``/v1beta`` with
the ``x-goog-api-key`` header; ``https://{location}-aiplatform.googleapis.com`` (or
``https://aiplatform.googleapis.com`` for ``global``) + ``/v1beta1/projects/{project}/
locations/{location}`` with ``Authorization: Bearer``.

Parts marked ``"thought": true`` (thought summaries, sent with ``thinkingConfig.
includeThoughts``) are the reply's reasoning, never its text: consecutive thought parts make
one `ReasoningPart`, closed by a thought part's ``thoughtSignature`` (its signature); streamed,
a thought part's text is a chunk's ``reasoning`` and its signature the ``reasoning_signature``,
so that the stream accumulates to the whole reply. Requests leave reasoning out.
"""

from __future__ import annotations

import importlib
import json
import mimetypes
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Protocol
from urllib.parse import quote

from .._errors import ChatModelError, InvalidConfigError, make_error
from .._metadata import ProviderMetadata, ProviderOptions
from .._request import ChatRequest
from .._tools import ToolCall
from .._transport._framing import SSEDecoder
from .._transport._wire import Headers, WireRequest, request_id_of
from .._types import (
    ChatChunk,
    ChatResponse,
    FinishReason,
    ImagePart,
    Message,
    ReasoningPart,
    Usage,
    reply_content,
)
from ._common import (
    NO_HEADERS,
    count,
    finish_reason,
    merge_specific,
    obj,
    opt_arr,
    opt_obj,
    opt_str,
    stop_list,
    text,
    tool_call,
    whole_call_deltas,
    without_reasoning,
)
from ._http import ENDED, HTTPChatModel, error_from_response, json_body, loads

__all__ = ["GeminiAdapter", "create"]

GEMINI_API_VERSION = "v1beta"
VERTEX_API_VERSION = "v1beta1"

_SAMPLING = {
    "temperature": "temperature",
    "max_tokens": "maxOutputTokens",
    "top_p": "topP",
    "top_k": "topK",
    "seed": "seed",
    "frequency_penalty": "frequencyPenalty",
    "presence_penalty": "presencePenalty",
    "n": "candidateCount",
}
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# JSON-schema keywords outside the OpenAPI subset that `parameters` takes.
_JSON_SCHEMA_ONLY = ("$ref", "$defs", "definitions", "additionalProperties", "$schema")
_SIGNATURES_KEPT = 4096


class TokenSource(Protocol):
    """What authorizes Vertex calls: a fixed access token, or refreshed credentials."""

    def token(self) -> str:
        """A valid OAuth access token."""


class _StaticToken:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def token(self) -> str:
        return self._value


class _GoogleAuthToken:
    """Application Default Credentials through google-auth (imported only when used)."""

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials
        self._lock = threading.Lock()

    def token(self) -> str:
        creds = self._credentials
        with self._lock:
            if not creds.valid:
                requests = importlib.import_module("google.auth.transport.requests")
                creds.refresh(requests.Request())
            return str(creds.token)


def _adc_token(provider: str) -> TokenSource:
    try:
        google_auth: Any = importlib.import_module("google.auth")
    except ImportError as exc:
        raise InvalidConfigError(
            f"provider {provider!r} needs an access token: pass api_key=<OAuth access token> "
            "(such as `gcloud auth print-access-token` prints) or install google-auth for "
            "Application Default Credentials",
            op="create",
            provider=provider,
        ) from exc
    try:
        credentials, _project = google_auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
    except Exception as exc:
        raise InvalidConfigError(
            f"no Application Default Credentials for provider {provider!r}: {exc}",
            op="create",
            provider=provider,
        ) from exc
    return _GoogleAuthToken(credentials)


def _tool_result(text: str) -> dict[str, Any]:
    """A tool's result as the JSON object ``functionResponse.response`` must be."""
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return value if isinstance(value, dict) else {"output": value}


def _image_part(part: ImagePart) -> dict[str, Any]:
    if part.data is not None:
        return {"inlineData": {"mimeType": part.media_type, "data": part.data}}
    url = part.url or ""
    mime = part.media_type or mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _usage(raw: Any) -> Usage | None:
    """``usageMetadata``: thoughts count as output (they are billed as output), tool-use
    prompt tokens as input, so input + output = ``totalTokenCount``."""
    path = "usageMetadata"
    raw = opt_obj(raw, path)
    if "totalTokenCount" not in raw and "promptTokenCount" not in raw:
        return None  # stream events carry usageMetadata with only trafficType
    prompt = (count(raw, "promptTokenCount", path) or 0) + (
        count(raw, "toolUsePromptTokenCount", path) or 0
    )
    thoughts = count(raw, "thoughtsTokenCount", path)
    output = (count(raw, "candidatesTokenCount", path) or 0) + (thoughts or 0)
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        total_tokens=count(raw, "totalTokenCount", path) or prompt + output,
        cache_read_input_tokens=count(raw, "cachedContentTokenCount", path),
        reasoning_tokens=thoughts,
    )


def _block_reason(data: Mapping[str, Any]) -> str | None:
    """Why the prompt itself was blocked (a reply without candidates), if it was."""
    feedback = opt_obj(data.get("promptFeedback"), "promptFeedback")
    return opt_str(feedback.get("blockReason"), "promptFeedback.blockReason")


class GeminiAdapter:
    """``generateContent`` / ``streamGenerateContent?alt=sse`` on the Gemini API or Vertex AI."""

    supported_params: ClassVar[frozenset[str]] = frozenset(
        {
            "temperature",
            "max_tokens",
            "top_p",
            "top_k",
            "stop",
            "seed",
            "frequency_penalty",
            "presence_penalty",
            "n",
        }
    )

    def __init__(
        self,
        provider: str,
        *,
        api_key: str | None = None,
        token: TokenSource | None = None,
        project: str | None = None,
        location: str | None = None,
        api_version: str | None = None,
        default_model: str | None = None,
    ) -> None:
        self.provider = provider
        self.vertex = token is not None
        self._token = token
        self.default_model = default_model
        if self.vertex:
            if not project or not location:
                raise InvalidConfigError(
                    "Vertex AI needs a project and a location", op="create", provider=provider
                )
            self.api_version = api_version or VERTEX_API_VERSION
            self._prefix = (
                f"/{self.api_version}/projects/{quote(project, safe='')}"
                f"/locations/{quote(location, safe='')}"
            )
            self._auth: dict[str, str] = {}
        else:
            self.api_version = api_version or GEMINI_API_VERSION
            self._prefix = f"/{self.api_version}"
            self._auth = {"x-goog-api-key": api_key} if api_key else {}
        # Tool-call id → (thoughtSignature, whether the API gave the id): sent back with the
        # call when the conversation continues (Gemini 3 refuses function calls without it).
        self._calls: dict[str, tuple[str | None, bool]] = {}
        self._calls_lock = threading.Lock()

    # -- requests --------------------------------------------------------------------------

    def _headers(self, stream: bool) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.token()}"
        else:
            headers.update(self._auth)
        return headers

    def model_path(self, model: str) -> str:
        """The model's resource path, API version included."""
        if self.vertex:
            if model.startswith("projects/"):
                return f"/{self.api_version}/{quote(model, safe='/@')}"
            if model.startswith("models/"):
                model = model[len("models/") :]
            if not model.startswith("publishers/"):
                model = f"publishers/google/models/{model}"
            return f"{self._prefix}/{quote(model, safe='/@')}"
        if "/" not in model:
            model = f"models/{model}"  # else models/..., tunedModels/...
        return f"{self._prefix}/{quote(model, safe='/@')}"

    def _remember(self, call_id: str, signature: str | None, from_api: bool) -> None:
        if signature is None and not from_api:
            return
        with self._calls_lock:
            self._calls[call_id] = (signature, from_api)
            if len(self._calls) > _SIGNATURES_KEPT:
                del self._calls[next(iter(self._calls))]

    def _recall(self, call_id: str) -> tuple[str | None, bool]:
        with self._calls_lock:
            return self._calls.get(call_id, (None, False))

    def _contents(self, messages: Iterable[Message]) -> tuple[list[str], list[dict[str, Any]]]:
        system: list[str] = []
        contents: list[dict[str, Any]] = []
        names: dict[str, str] = {}
        for msg in messages:
            role = msg.role
            if role == "system":
                system.append(msg.text)
                continue
            if role == "tool":
                call_id = msg.tool_call_id or ""
                name = msg.name or names.get(call_id)
                if not name:
                    raise InvalidConfigError(
                        f"tool result {call_id!r} answers no earlier tool call: Gemini needs "
                        "the function's name (pass name= on the tool message)",
                        op="invoke",
                        provider=self.provider,
                    )
                response: dict[str, Any] = {"name": name, "response": _tool_result(msg.text)}
                if self._recall(call_id)[1]:
                    response["id"] = call_id
                result_part: dict[str, Any] = {"functionResponse": response}
                last = contents[-1] if contents else None
                if last is not None and last.get("_tool_results"):
                    last["parts"].append(result_part)
                else:
                    contents.append({"role": "user", "parts": [result_part], "_tool_results": True})
                continue
            parts: list[dict[str, Any]] = []
            sent = without_reasoning(msg.content)
            if isinstance(sent, str):
                if sent:
                    parts.append({"text": sent})
            else:
                for item in sent:
                    if isinstance(item, ImagePart):
                        parts.append(_image_part(item))
                    else:
                        parts.append({"text": item.text})
            for call in msg.tool_calls:
                names[call.id] = call.name
                signature, from_api = self._recall(call.id)
                fn: dict[str, Any] = {"name": call.name, "args": dict(call.arguments)}
                if from_api:
                    fn["id"] = call.id
                part: dict[str, Any] = {"functionCall": fn}
                if signature:
                    part["thoughtSignature"] = signature
                parts.append(part)
            if not parts:
                parts.append({"text": ""})
            contents.append({"role": "model" if role == "assistant" else "user", "parts": parts})
        for content in contents:
            content.pop("_tool_results", None)
        return system, contents

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of a ``generateContent`` request."""
        system, contents = self._contents(request.messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
        config: dict[str, Any] = {}
        for key, value in request.params.items():
            if key == "stop":
                config["stopSequences"] = stop_list(value)
            else:
                config[_SAMPLING[key]] = value
        fmt = request.response_format
        if fmt is not None and fmt.type != "text":
            config["responseMimeType"] = "application/json"
            if fmt.type == "json_schema" and fmt.schema is not None:
                config["responseJsonSchema"] = dict(fmt.schema)
        if config:
            body["generationConfig"] = config
        if request.tools:
            if request.parallel_tool_calls is False:
                raise make_error(
                    "capability_not_supported",
                    "Gemini cannot turn off parallel function calls",
                    op="invoke",
                    provider=self.provider,
                )
            declarations = []
            for tool in request.tools:
                decl: dict[str, Any] = {"name": tool.name}
                if tool.description:
                    decl["description"] = tool.description
                params = dict(tool.parameters)
                if params.get("properties") or params.get("type") != "object":
                    full = any(key in json.dumps(params) for key in _JSON_SCHEMA_ONLY)
                    decl["parametersJsonSchema" if full else "parameters"] = params
                declarations.append(decl)
            body["tools"] = [{"functionDeclarations": declarations}]
            choice = request.tool_choice
            if choice is not None:
                body["toolConfig"] = {"functionCallingConfig": self._calling_config(choice)}
        if request.provider_specific:
            merge_specific(body, request.provider_specific)
        return body

    def _calling_config(self, choice: str | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(choice, Mapping):
            if "mode" in choice:
                return dict(choice)  # already a functionCallingConfig
            name = (choice.get("function") or {}).get("name") or choice.get("name")
            return {"mode": "ANY", "allowedFunctionNames": [str(name)]}
        mode = _TOOL_MODES.get(choice)
        if mode is not None:
            return {"mode": mode}
        return {"mode": "ANY", "allowedFunctionNames": [choice]}

    def build_request(self, request: ChatRequest) -> WireRequest:
        """``POST …/models/{model}:generateContent`` (or ``:streamGenerateContent?alt=sse``)."""
        action = ":streamGenerateContent?alt=sse" if request.stream else ":generateContent"
        return WireRequest(
            "POST",
            self.model_path(request.model) + action,
            self._headers(request.stream),
            json_body(self.build_body(request)),
        )

    # -- responses -------------------------------------------------------------------------

    def _calls_of(
        self, candidate: Mapping[str, Any], response_id: str | None, first_index: int
    ) -> tuple[str, list[ToolCall], list[tuple[str, str | None]] | None]:
        """The first candidate's reply text, function calls and thought parts (text,
        signature)."""
        content = opt_obj(candidate.get("content"), "candidates[0].content")
        texts: list[str] = []
        calls: list[ToolCall] = []
        thoughts: list[tuple[str, str | None]] | None = None
        for i, item in enumerate(opt_arr(content.get("parts"), "candidates[0].content.parts")):
            part = obj(item, f"candidates[0].content.parts[{i}]")
            if "text" in part:
                value = text(part["text"], f"candidates[0].content.parts[{i}].text")
                if part.get("thought"):
                    if thoughts is None:
                        thoughts = []
                    signature = opt_str(
                        part.get("thoughtSignature"),
                        f"candidates[0].content.parts[{i}].thoughtSignature",
                    )
                    thoughts.append((value, signature))
                else:
                    texts.append(value)
                continue
            call = part.get("functionCall")
            if call is not None:
                path = f"candidates[0].content.parts[{i}].functionCall"
                call = obj(call, path)
                index = first_index + len(calls)
                api_id = opt_str(call.get("id"), f"{path}.id")
                call_id = api_id or (
                    f"call_{response_id}_{index}" if response_id else f"call_{index}"
                )
                signature = opt_str(
                    part.get("thoughtSignature"),
                    f"candidates[0].content.parts[{i}].thoughtSignature",
                )
                args = opt_obj(call.get("args"), f"{path}.args")
                made = tool_call(call_id, call.get("name"), args, path)
                self._remember(call_id, signature, bool(api_id))
                calls.append(made)
        return "".join(texts), calls, thoughts

    def parse_response(self, body: bytes, request: ChatRequest) -> ChatResponse:
        """A ``GenerateContentResponse``: its first candidate (thought parts as reasoning)."""
        data = obj(loads(body), "the body")
        if "error" in data and "candidates" not in data:
            raise self._error_in_body(data, body)
        response_id = opt_str(data.get("responseId"), "responseId")
        candidates = opt_arr(data.get("candidates"), "candidates")
        reasoning: list[ReasoningPart] = []
        if candidates:
            candidate = obj(candidates[0], "candidates[0]")
            reply_text, calls, thoughts = self._calls_of(candidate, response_id, 0)
            if thoughts:
                # As `accumulate` folds the streamed form: a signature closes a part.
                pending: list[str] = []
                for thought, signature in thoughts:
                    pending.append(thought)
                    if signature is not None:
                        reasoning.append(ReasoningPart("".join(pending), signature))
                        pending = []
                if pending:
                    reasoning.append(ReasoningPart("".join(pending)))
            raw_finish = opt_str(candidate.get("finishReason"), "candidates[0].finishReason")
            finish = finish_reason(raw_finish, tool_calls=bool(calls))  # Gemini says STOP
        else:  # the prompt itself was blocked
            reply_text, calls = "", []
            raw_finish = _block_reason(data)
            finish = FinishReason.CONTENT_FILTER if raw_finish else None
        return ChatResponse(
            message=Message("assistant", reply_content(reply_text, reasoning), tuple(calls)),
            id=response_id,
            model=opt_str(data.get("modelVersion"), "modelVersion"),
            provider=self.provider,
            finish_reason=finish,
            raw_finish_reason=raw_finish,
            usage=_usage(data.get("usageMetadata")),
        )

    def new_decoder(self) -> SSEDecoder:
        """``alt=sse``: one ``GenerateContentResponse`` per event; the body just ends."""
        return SSEDecoder()

    def parse_event(
        self, event: tuple[str | None, bytes], state: dict[str, Any]
    ) -> Iterable[ChatChunk]:
        """One streamed ``GenerateContentResponse``: text, whole function calls, and thought
        parts as reasoning (a signed thought part is a chunk of its own)."""
        data = obj(loads(event[1]), "the event")
        if "error" in data and "candidates" not in data:
            raise self._error_in_body(data, event[1])
        response_id = opt_str(data.get("responseId"), "responseId")
        usage = _usage(data.get("usageMetadata"))
        if usage is not None:
            state["usage"] = usage
            if state.get(ENDED):  # usage after the finish: its own chunk
                return (ChatChunk(usage=usage, provider=self.provider),)
        candidates = opt_arr(data.get("candidates"), "candidates")
        raw_finish: str | None = None
        reply_text = ""
        calls: list[ToolCall] = []
        thoughts: list[tuple[str, str | None]] | None = None
        first = state.get("calls", 0)
        if candidates:
            candidate = obj(candidates[0], "candidates[0]")
            reply_text, calls, thoughts = self._calls_of(candidate, response_id, first)
            raw_finish = opt_str(candidate.get("finishReason"), "candidates[0].finishReason")
            state["calls"] = first + len(calls)
        else:
            raw_finish = _block_reason(data)
        deltas = whole_call_deltas(calls, first)
        finish = None
        if raw_finish is not None:
            finish = (
                finish_reason(raw_finish, tool_calls=state.get("calls", 0) > 0)
                if candidates
                else FinishReason.CONTENT_FILTER
            )
        model = opt_str(data.get("modelVersion"), "modelVersion")
        signed: list[ChatChunk] = []
        thought = ""
        if thoughts:
            pending: list[str] = []
            for part_text, signature in thoughts:
                pending.append(part_text)
                if signature is not None:
                    signed.append(
                        ChatChunk(
                            id=response_id,
                            model=model,
                            provider=self.provider,
                            reasoning="".join(pending),
                            reasoning_signature=signature,
                        )
                    )
                    pending = []
            thought = "".join(pending)
        if finish is not None:
            state[ENDED] = True
        elif not reply_text and not deltas and not thought:
            return signed
        last = ChatChunk(
            text=reply_text,
            tool_call_deltas=deltas,
            finish_reason=finish,
            raw_finish_reason=raw_finish,
            usage=state.get("usage") if finish is not None else None,
            id=response_id,
            model=model,
            provider=self.provider,
            reasoning=thought,
        )
        if signed:
            signed.append(last)
            return signed
        return (last,)

    # -- errors and health -----------------------------------------------------------------

    def _error_in_body(self, data: Mapping[str, Any], body: bytes) -> ChatModelError:
        err = data.get("error") or {}
        status = err.get("code") if isinstance(err, Mapping) else None
        return self.parse_error(status if isinstance(status, int) else 500, NO_HEADERS, body)

    def parse_error(self, status: int, headers: Headers, body: bytes) -> ChatModelError:
        """``{"error": {"code", "message", "status", "details"}}`` (Vertex may wrap it in a
        list); an invalid API key (400 ``API_KEY_INVALID``) is an authentication error and
        an over-long prompt is context_length_exceeded."""
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, list) and data:
            data = data[0]
        err = data.get("error") if isinstance(data, dict) else None
        if not isinstance(err, dict):
            return error_from_response(status, headers, body, provider=self.provider)
        message = str(err.get("message") or "")
        grpc_status = err.get("status")
        reasons = {
            str(d.get("reason"))
            for d in err.get("details") or ()
            if isinstance(d, dict) and d.get("reason")
        }
        lowered = message.lower()
        code: str | None = None
        if "API_KEY_INVALID" in reasons or "api key not valid" in lowered:
            code = "authentication"
        elif (
            status < 500
            and status not in (401, 403, 429)
            and (
                "exceeds the maximum number of tokens" in lowered
                or "input token count" in lowered
                or "too long" in lowered
            )
        ):
            code = "context_length_exceeded"
        if code is None:
            return error_from_response(
                status,
                headers,
                body,
                provider=self.provider,
                message=message,
                provider_code=str(grpc_status) if grpc_status else "",
            )
        detail = f"HTTP {status}" + (f" {grpc_status}" if grpc_status else "") + f": {message}"
        return make_error(
            code,
            detail,
            op="invoke",
            provider=self.provider,
            status_code=status,
            request_id=request_id_of(headers),
        )

    def health_request(self) -> WireRequest | None:
        """Gemini API: ``GET /v1beta/models?pageSize=1``; Vertex: ``GET`` the default
        publisher model. Neither spends tokens."""
        if self.vertex:
            if not self.default_model:
                return None
            return WireRequest("GET", self.model_path(self.default_model), self._headers(False))
        return WireRequest("GET", f"{self._prefix}/models?pageSize=1", self._headers(False))


def _api_key(options: ProviderOptions, provider: str) -> str:
    key = options.api_key_value() or os.environ.get("GOOGLE_API_KEY")
    if not key:
        raise InvalidConfigError(
            f"provider {provider!r} requires option 'api_key' (or set GEMINI_API_KEY or "
            "GOOGLE_API_KEY)",
            op="create",
            provider=provider,
        )
    return key.strip()


def create(metadata: ProviderMetadata, options: ProviderOptions) -> HTTPChatModel:
    """A `gemini` (API key) or `vertex_ai` (project, location, access token) instance."""
    specific = options.provider_specific
    version = specific.get("api_version")
    api_version = str(version) if version else None
    if metadata.name != "vertex_ai":
        key = _api_key(options, metadata.name)
        if options.api_key_value() != key:  # from GOOGLE_API_KEY: redact it from errors too
            options = options.replace(api_key=key)
        adapter = GeminiAdapter(
            metadata.name,
            api_key=key,
            api_version=api_version,
            default_model=options.model or metadata.default_model,
        )
        return HTTPChatModel(metadata, options, adapter)
    project = specific.get("project") or os.environ.get("GOOGLE_CLOUD_PROJECT")
    location = specific.get("location") or os.environ.get("GOOGLE_CLOUD_LOCATION") or "global"
    if not project:
        raise InvalidConfigError(
            "provider 'vertex_ai' requires option 'project' (or set GOOGLE_CLOUD_PROJECT)",
            op="create",
            provider=metadata.name,
        )
    access = options.api_key_value()
    token: TokenSource = _StaticToken(access) if access else _adc_token(metadata.name)
    adapter = GeminiAdapter(
        metadata.name,
        token=token,
        project=str(project),
        location=str(location),
        api_version=api_version,
        default_model=options.model or metadata.default_model,
    )
    if options.base_url:
        base_url = options.base_url
    elif location == "global":
        base_url = "https://aiplatform.googleapis.com"
    elif location == "us":
        base_url = "https://aiplatform.us.rep.googleapis.com"
    else:
        base_url = f"https://{location}-aiplatform.googleapis.com"
    return HTTPChatModel(metadata, options, adapter, base_url=base_url)
