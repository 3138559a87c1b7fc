"""`bedrock`: AWS Bedrock Runtime Converse and ConverseStream.

Reference: the Bedrock Runtime API reference (``POST /model/{modelId}/converse`` and
``/converse-stream``; the service model botocore ships as ``bedrock-runtime/2023-09-30``).
Requests are signed with SigV4 by botocore (credentials from botocore's chain: environment,
shared files, SSO, instance roles; region from the ``region`` option, ``AWS_REGION``,
``AWS_DEFAULT_REGION``, the base URL or the AWS config), or carry a Bedrock API key
(``AWS_BEARER_TOKEN_BEDROCK``) as a Bearer token. Streams are AWS event streams, decoded
by botocore's ``EventStreamBuffer``. botocore is the optional extra ``chatmodels[bedrock]``
and is imported only when a bedrock model is created.

``reasoningContent`` blocks are the reply's reasoning, never its text: ``reasoningText``
(text and signature) a `ReasoningPart`, ``redactedContent`` (bytes, base64 in JSON) one with
`redacted` set. Streamed, a ``reasoningContent`` delta's ``text`` is a chunk's
``reasoning`` and its ``signature`` the ``reasoning_signature`` (a streamed
``redactedContent`` has no form in `ChatChunk` and is not kept). An assistant message sends
its ReasoningParts back first, as ``reasoningContent`` blocks: Claude on Bedrock wants its
thinking blocks back unmodified when a thinking turn used tools.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from .._errors import ChatModelError, InvalidConfigError, make_error
from .._metadata import ProviderMetadata, ProviderOptions
from .._request import ChatRequest
from .._tools import ToolCall
from .._transport._framing import EventStreamDecoder
from .._transport._wire import Headers, WireRequest, request_id_of
from .._types import (
    ChatChunk,
    ChatResponse,
    ImagePart,
    Message,
    ReasoningPart,
    TextPart,
    ToolCallDelta,
    Usage,
)
from ._common import (
    bad,
    count,
    finish_reason,
    index,
    obj,
    opt_arr,
    opt_obj,
    opt_str,
    reply,
    stop_list,
    text,
    tool_call,
    without_reasoning,
)
from ._http import ENDED, HTTPChatModel, error_from_response, json_body, loads

__all__ = ["BedrockAdapter", "create"]

DEFAULT_BASE_URL = "https://bedrock-runtime.{region}.amazonaws.com"
SIGNING_NAME = "bedrock"

# Error shapes of the service model: exception name → (code, HTTP status it comes with).
_EXCEPTIONS: dict[str, tuple[str, int]] = {
    "validationexception": ("bad_request", 400),
    "accessdeniedexception": ("permission_denied", 403),
    "throttlingexception": ("rate_limited", 429),
    "servicequotaexceededexception": ("rate_limited", 400),
    "modelnotreadyexception": ("rate_limited", 429),
    "modeltimeoutexception": ("timeout", 408),
    "resourcenotfoundexception": ("bad_request", 404),
    "modelerrorexception": ("provider_unavailable", 424),
    "modelstreamerrorexception": ("provider_unavailable", 424),
    "internalserverexception": ("provider_unavailable", 500),
    "serviceunavailableexception": ("provider_unavailable", 503),
    # Authentication failures the AWS front end reports (with HTTP 403).
    "unrecognizedclientexception": ("authentication", 403),
    "invalidsignatureexception": ("authentication", 403),
    "expiredtokenexception": ("authentication", 403),
    "incompletesignatureexception": ("authentication", 403),
    "missingauthenticationtokenexception": ("authentication", 403),
}
# Bedrock's words for a prompt that does not fit, beyond the shared hints.
_CONTEXT_WORDS = ("too many input tokens", "input is too long", "prompt is too long")
_HOST_REGION = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com")
_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}


def _botocore() -> Any:
    """The botocore modules we use, or invalid_config naming the extra to install."""
    try:
        import botocore.auth  # type: ignore[import-untyped,unused-ignore]
        import botocore.awsrequest  # type: ignore[import-untyped,unused-ignore]
        import botocore.eventstream  # type: ignore[import-untyped,unused-ignore]
        import botocore.session  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise InvalidConfigError(
            "the bedrock provider needs botocore: pip install 'chatmodels[bedrock]'",
            op="create",
            provider="bedrock",
            err=exc,
        ) from exc
    return botocore


# -- request ---------------------------------------------------------------------------------


def _image_block(part: ImagePart) -> dict[str, Any]:
    if part.data is not None:
        subtype = (part.media_type or "").rpartition("/")[2].lower()
        fmt = _IMAGE_FORMATS.get(subtype)
        if fmt is None:
            raise InvalidConfigError(
                f"Bedrock takes png, jpeg, gif or webp images, not {part.media_type!r}",
                op="invoke",
                provider="bedrock",
            )
        return {"image": {"format": fmt, "source": {"bytes": part.data}}}
    url = part.url or ""
    fmt = _IMAGE_FORMATS.get(url.rpartition(".")[2].lower())
    if not url.startswith("s3://") or fmt is None:
        raise InvalidConfigError(
            "Bedrock takes images as bytes or as s3:// URLs ending in .png, .jpeg, .jpg, "
            ".gif or .webp, not by http(s) URL",
            op="invoke",
            provider="bedrock",
        )
    return {"image": {"format": fmt, "source": {"s3Location": {"uri": url}}}}


def _content_blocks(content: str | tuple[TextPart | ImagePart, ...]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    return [
        _image_block(part) if isinstance(part, ImagePart) else {"text": part.text}
        for part in content
        if isinstance(part, ImagePart) or part.text
    ]


def _reasoning_block(part: ReasoningPart) -> dict[str, Any]:
    if part.redacted is not None:
        return {"reasoningContent": {"redactedContent": part.redacted}}
    text: dict[str, Any] = {"text": part.text}
    if part.signature is not None:
        text["signature"] = part.signature
    return {"reasoningContent": {"reasoningText": text}}


def _assistant_blocks(content: str | tuple[Any, ...]) -> list[dict[str, Any]]:
    """An assistant turn's blocks: its reasoning first, then its text and images."""
    blocks = _content_blocks(without_reasoning(content))
    if isinstance(content, str):
        return blocks
    reasoning = [_reasoning_block(p) for p in content if isinstance(p, ReasoningPart)]
    return reasoning + blocks if reasoning else blocks


def _tool_result(msg: Message) -> dict[str, Any]:
    """A tool result: a JSON object result travels as ``json``, anything else as text."""
    content = msg.content
    blocks: list[dict[str, Any]]
    if isinstance(content, str):
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        blocks = [{"json": parsed}] if isinstance(parsed, dict) else [{"text": content}]
    else:
        blocks = _content_blocks(without_reasoning(content))
    return {"toolResult": {"toolUseId": msg.tool_call_id or "", "content": blocks}}


def _wire_messages(
    messages: Iterable[Message],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(system, messages)``: system text apart; tool results as user ``toolResult``
    blocks; consecutive turns of one role merged, as Converse wants them alternating."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role == "system":
            if msg.text:
                system.append({"text": msg.text})
            continue
        if msg.role == "tool":
            role, blocks = "user", [_tool_result(msg)]
        else:
            role = msg.role
            if role == "assistant":
                blocks = _assistant_blocks(msg.content)
            else:
                blocks = _content_blocks(without_reasoning(msg.content))
            for call in msg.tool_calls:
                blocks.append(
                    {
                        "toolUse": {
                            "toolUseId": call.id,
                            "name": call.name,
                            "input": dict(call.arguments),
                        }
                    }
                )
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def _tool_config(request: ChatRequest) -> dict[str, Any]:
    tools = []
    for tool in request.tools:
        spec: dict[str, Any] = {"name": tool.name, "inputSchema": {"json": dict(tool.parameters)}}
        if tool.description:
            spec["description"] = tool.description
        if tool.strict is not None:
            spec["strict"] = tool.strict
        tools.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": tools}
    choice = request.tool_choice
    if isinstance(choice, Mapping):
        config["toolChoice"] = dict(choice)
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "none":
        raise make_error(
            "capability_not_supported",
            "Bedrock Converse has no tool_choice 'none' (its choices are auto, any and a "
            "named tool); leave the tools out instead",
            op="invoke",
            provider="bedrock",
        )
    elif choice is not None:
        config["toolChoice"] = {"tool": {"name": choice}}
    return config


def build_body(request: ChatRequest) -> dict[str, Any]:
    """The JSON body of a Converse / ConverseStream request (the model is in the path)."""
    system, messages = _wire_messages(request.messages)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    params = request.params
    if params:
        inference: dict[str, Any] = {}
        if "max_tokens" in params:
            inference["maxTokens"] = params["max_tokens"]
        if "temperature" in params:
            inference["temperature"] = params["temperature"]
        if "top_p" in params:
            inference["topP"] = params["top_p"]
        if "stop" in params:
            stop = params["stop"]
            inference["stopSequences"] = stop_list(stop)
        body["inferenceConfig"] = inference
    if request.tools:
        body["toolConfig"] = _tool_config(request)
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema":
        schema: dict[str, Any] = {"schema": json.dumps(fmt.schema, separators=(",", ":"))}
        if fmt.name:
            schema["name"] = fmt.name
        body["outputConfig"] = {
            "textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}
        }
    if request.provider_specific:
        body.update(request.provider_specific)
    return body


# -- response --------------------------------------------------------------------------------


def _usage(raw: Any) -> Usage | None:
    if raw is None:
        return None
    raw = obj(raw, "usage")
    if not raw:
        return None
    inp = count(raw, "inputTokens", "usage") or 0
    out = count(raw, "outputTokens", "usage") or 0
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=count(raw, "totalTokens", "usage") or inp + out,
        cache_read_input_tokens=count(raw, "cacheReadInputTokens", "usage"),
        cache_creation_input_tokens=count(raw, "cacheWriteInputTokens", "usage"),
    )


def _exception(
    name: str,
    message: str | None,
    *,
    provider: str,
    op: str,
    status: int | None = None,
    request_id: str | None = None,
) -> ChatModelError:
    """The error a Bedrock exception name (``ValidationException``, ``throttlingException``,
    ...) means, keeping the service's message."""
    code, usual_status = _EXCEPTIONS.get(name.lower(), ("", 0))
    status = status or usual_status or None
    if not code:
        code = "provider_unavailable" if status is None or status >= 500 else "bad_request"
    lowered = (message or "").lower()
    if code == "bad_request" and any(w in lowered for w in _CONTEXT_WORDS):
        code = "context_length_exceeded"
    detail = f"HTTP {status} {name}" if status else name
    if message:
        detail += f": {message}"
    return make_error(
        code, detail, op=op, provider=provider, status_code=status, request_id=request_id
    )


class BedrockAdapter:
    """Converse over ``POST /model/{modelId}/converse`` (and ``/converse-stream``), signed
    with SigV4 or carrying a Bedrock API key."""

    supported_params: ClassVar[frozenset[str]] = frozenset(
        {"temperature", "max_tokens", "top_p", "stop"}
    )

    def __init__(
        self,
        provider: str,
        base_url: str,
        region: str,
        *,
        bearer_token: str | None = None,
        profile: str | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.region = region
        self.profile = profile
        self._bearer = bearer_token
        self._credentials: Any = None
        self._lock = threading.Lock()
        self._botocore = _botocore()

    def __repr__(self) -> str:
        auth = "api_key" if self._bearer else "sigv4"
        return f"<BedrockAdapter {self.base_url} region={self.region} auth={auth}>"

    # -- signing ---------------------------------------------------------------------------

    def _frozen_credentials(self) -> Any:
        with self._lock:
            if self._credentials is None:
                session = self._botocore.session.Session(profile=self.profile)
                self._credentials = session.get_credentials()
            credentials = self._credentials
        if credentials is None:
            raise make_error(
                "authentication",
                "no AWS credentials found (environment, shared config, SSO or instance role) "
                "and no Bedrock API key (AWS_BEARER_TOKEN_BEDROCK)",
                op="invoke",
                provider=self.provider,
            )
        return credentials.get_frozen_credentials()

    def _headers(self, path: str, body: bytes, accept: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": accept}
        if self._bearer:
            headers["Authorization"] = f"Bearer {self._bearer}"
            return headers
        botocore = self._botocore
        signed = botocore.awsrequest.AWSRequest(
            method="POST", url=self.base_url + path, data=body, headers=headers
        )
        auth = botocore.auth.SigV4Auth(self._frozen_credentials(), SIGNING_NAME, self.region)
        auth.add_auth(signed)
        return {str(k): str(v) for k, v in signed.headers.items()}

    def build_request(self, request: ChatRequest) -> WireRequest:
        """``POST /model/{modelId}/converse`` or ``/converse-stream``, signed."""
        op = "converse-stream" if request.stream else "converse"
        path = f"/model/{quote(request.model, safe='')}/{op}"
        body = json_body(build_body(request))
        accept = "application/vnd.amazon.eventstream" if request.stream else "application/json"
        return WireRequest("POST", path, self._headers(path, body, accept), body)

    # -- responses -------------------------------------------------------------------------

    def parse_response(self, body: bytes, request: ChatRequest) -> ChatResponse:
        """A ConverseResponse: text, toolUse and reasoningContent blocks, stopReason, usage.
        Converse has no response id and does not name the model, so `id` and `model` are
        None."""
        data = obj(loads(body), "the body")
        message = obj(obj(data.get("output"), "output").get("message"), "output.message")
        texts: list[str] = []
        calls: list[ToolCall] = []
        reasoning: list[ReasoningPart] = []
        for i, item in enumerate(opt_arr(message.get("content"), "output.message.content")):
            path = f"output.message.content[{i}]"
            block = obj(item, path)
            if "text" in block:
                texts.append(text(block["text"], f"{path}.text"))
            elif "toolUse" in block:
                use = obj(block["toolUse"], f"{path}.toolUse")
                call_id = text(use.get("toolUseId"), f"{path}.toolUse.toolUseId")
                args = use.get("input")
                calls.append(
                    tool_call(
                        call_id, use.get("name"), args, f"{path}.toolUse", arguments_key="input"
                    )
                )
            elif "reasoningContent" in block:
                content = opt_obj(block["reasoningContent"], f"{path}.reasoningContent")
                if "redactedContent" in content:
                    redacted = text(
                        content["redactedContent"], f"{path}.reasoningContent.redactedContent"
                    )
                    reasoning.append(ReasoningPart(redacted=redacted))
                else:
                    inner = f"{path}.reasoningContent.reasoningText"
                    thought = opt_obj(content.get("reasoningText"), inner)
                    part = ReasoningPart(
                        text(thought.get("text"), f"{inner}.text"),
                        opt_str(thought.get("signature"), f"{inner}.signature"),
                    )
                    reasoning.append(part)
        return reply(
            self.provider,
            "".join(texts),
            calls,
            raw_finish=opt_str(data.get("stopReason"), "stopReason"),
            usage=_usage(data.get("usage")),
            reasoning=tuple(reasoning),
        )

    def new_decoder(self) -> EventStreamDecoder:
        """ConverseStream answers with an AWS event stream."""
        return EventStreamDecoder()

    def parse_event(
        self, event: tuple[str, str, bytes], state: dict[str, Any]
    ) -> Iterable[ChatChunk]:
        """One ConverseStream event: contentBlockStart/Delta (text, toolUse,
        reasoningContent), messageStop (stopReason) and metadata (usage, last) make chunks;
        exceptions raise."""
        kind, name, payload = event
        if kind != "event":
            message = None
            try:
                message = loads(payload).get("message")
            except (ValueError, AttributeError, RecursionError):
                message = payload[:500].decode("utf-8", "replace") or None
            if message is not None and type(message) is not str:
                message = None
            raise _exception(name, message, provider=self.provider, op="stream")
        if name == "contentBlockDelta":
            data = obj(loads(payload), "contentBlockDelta")
            delta = opt_obj(data.get("delta"), "contentBlockDelta.delta")
            if "text" in delta:
                chunk_text = text(delta["text"], "contentBlockDelta.delta.text")
                return (ChatChunk(text=chunk_text, provider=self.provider),) if chunk_text else ()
            use = delta.get("toolUse")
            if use is not None:
                use = obj(use, "contentBlockDelta.delta.toolUse")
                fragment = ToolCallDelta(
                    index(data.get("contentBlockIndex"), "contentBlockDelta.contentBlockIndex"),
                    arguments=text(use.get("input"), "contentBlockDelta.delta.toolUse.input"),
                )
                return (ChatChunk(tool_call_deltas=(fragment,), provider=self.provider),)
            thought = delta.get("reasoningContent")
            if thought is not None:
                path = "contentBlockDelta.delta.reasoningContent"
                thought = obj(thought, path)
                thought_text = text(thought.get("text"), f"{path}.text")
                if thought_text:
                    return (ChatChunk(provider=self.provider, reasoning=thought_text),)
                if "signature" in thought:
                    signature = text(thought["signature"], f"{path}.signature")
                    return (ChatChunk(provider=self.provider, reasoning_signature=signature),)
            return ()  # citations, redacted reasoning: no form in ChatChunk
        if name == "contentBlockStart":
            data = obj(loads(payload), "contentBlockStart")
            start_of = opt_obj(data.get("start"), "contentBlockStart.start")
            use = start_of.get("toolUse")
            if use is None:
                return ()
            path = "contentBlockStart.start.toolUse"
            use = obj(use, path)
            tool_name = use.get("name")
            if type(tool_name) is not str or not tool_name:
                raise bad(f"{path}.name", "a function name", tool_name)
            start = ToolCallDelta(
                index(data.get("contentBlockIndex"), "contentBlockStart.contentBlockIndex"),
                text(use.get("toolUseId"), f"{path}.toolUseId"),
                tool_name,
            )
            return (ChatChunk(tool_call_deltas=(start,), provider=self.provider),)
        if name == "messageStop":
            data = obj(loads(payload), "messageStop")
            raw = opt_str(data.get("stopReason"), "messageStop.stopReason")
            state["finish"] = raw
            state[ENDED] = True  # the metadata event (usage) follows
            return (self._final(raw, None),)
        if name == "metadata":
            data = obj(loads(payload), "metadata")
            usage = _usage(data.get("usage"))
            state[ENDED] = True
            return (self._final(state.get("finish"), usage),)
        return ()  # messageStart, contentBlockStop

    def _final(self, raw_finish: str | None, usage: Usage | None) -> ChatChunk:
        return ChatChunk(
            finish_reason=finish_reason(raw_finish),
            raw_finish_reason=raw_finish,
            usage=usage,
            provider=self.provider,
        )

    def parse_error(self, status: int, headers: Headers, body: bytes) -> ChatModelError:
        """``{"message": ...}`` with the exception name in ``x-amzn-ErrorType``."""
        kind = (headers.get("x-amzn-errortype") or "").partition(":")[0]
        message = None
        try:
            data = loads(body)
            if isinstance(data, dict):
                message = data.get("message") or data.get("Message")
                kind = kind or str(data.get("__type") or "").rpartition("#")[2]
        except ValueError:
            message = body[:500].decode("utf-8", "replace").strip() or None
        request_id = request_id_of(headers)
        if kind:
            return _exception(
                kind,
                message,
                provider=self.provider,
                op="invoke",
                status=status,
                request_id=request_id,
            )
        return error_from_response(status, headers, body, provider=self.provider, message=message)

    def health_request(self) -> WireRequest | None:
        """None: the runtime endpoint has no cheap read-only call (listing models is on the
        separate control-plane endpoint), so health is reported unknown."""
        return None


# -- create ----------------------------------------------------------------------------------


def _region(options: ProviderOptions, base_url: str | None) -> str | None:
    region = options.provider_specific.get("region")
    if region:
        return str(region)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(name):
            return os.environ[name]
    if base_url and "{region}" not in base_url:
        found = _HOST_REGION.search(urlsplit(base_url).hostname or "")
        if found:
            return found[1]
    return None


def create(metadata: ProviderMetadata, options: ProviderOptions) -> HTTPChatModel:
    """A Bedrock Runtime model; needs a region and AWS credentials or a Bedrock API key."""
    botocore = _botocore()
    profile = options.provider_specific.get("aws_profile")
    template = options.base_url or metadata.default_base_url or DEFAULT_BASE_URL
    region = _region(options, template)
    if region is None:
        region = botocore.session.Session(profile=profile).get_config_variable("region")
    if not region:
        raise InvalidConfigError(
            "bedrock needs an AWS region: pass region=..., or set AWS_REGION",
            op="create",
            provider=metadata.name,
        )
    base_url = template.replace("{region}", str(region))
    adapter = BedrockAdapter(
        metadata.name,
        base_url,
        str(region),
        bearer_token=options.api_key_value(),
        profile=str(profile) if profile else None,
    )
    return HTTPChatModel(metadata, options, adapter, base_url=base_url)
