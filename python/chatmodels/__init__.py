"""chatmodels: one thread-safe registry of chat-model providers.

Register a provider by name with a creator and its metadata, then create instances by name:

    >>> import chatmodels
    >>> chatmodels.register_global("echo", EchoModel, metadata={"capabilities": ["chat"]})
    >>> model = chatmodels.new_registry_provider("echo", {"model": "echo-1"})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _observe
from ._backend import backend
from ._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    CapabilityNotSupportedError,
    ChatModelError,
    ContentFilteredError,
    ContextLengthExceededError,
    CreationError,
    CreationTimeoutError,
    ErrorCode,
    InternalError,
    InvalidConfigError,
    InvalidCreatorError,
    InvalidProviderNameError,
    InvalidResponseError,
    NetworkError,
    PermissionDeniedError,
    ProviderAlreadyRegisteredError,
    ProviderNotFoundError,
    ProviderUnavailableError,
    RateLimitError,
    TimeoutError,
)
from ._global import (
    anew_registry_provider,
    get_global_registry,
    get_provider_metadata,
    get_providers_by_capability,
    is_provider_registered,
    list_providers,
    new_registry_provider,
    register_global,
    register_global_with_metadata,
    unregister_provider,
)
from ._metadata import Capability, ProviderMetadata, ProviderOptions, Secret
from ._registry import ENTRY_POINT_GROUP, Creator, PluginWarning, ProviderRegistry


def _telemetry_observer() -> _observe.CallObserver:
    from .telemetry import TelemetryObserver

    return TelemetryObserver()


# Calls report to OpenTelemetry by default, loaded on the first call (see `_observe`).
_observe.set_observer(_observe.LazyObserver(_telemetry_observer))

if TYPE_CHECKING:
    import logging

    from ._health import HealthReport, ahealth_check, health_check
    from ._model import ChatModel
    from ._request import ChatRequest
    from ._routes._config import load_config
    from ._routes._deployment import Deployment
    from ._routes._model import RoutedModel, RouteHealth
    from ._routes._redis import RedisState
    from ._routes._route import register_route
    from ._routes._types import Breaker, DeploymentStatus
    from ._stream import AsyncChatStream, ChatStream
    from ._tools import Tool, ToolCall
    from ._types import (
        ChatChunk,
        ChatResponse,
        FinishReason,
        HealthStatus,
        ImagePart,
        Message,
        ReasoningPart,
        TextPart,
        ToolCallDelta,
        Usage,
        accumulate,
    )
    from .telemetry import Container, Level

# The chat API loads on first use (PEP 562), so `import chatmodels` costs the registry only.
_LAZY_MODULES = {
    "._health": ("HealthReport", "ahealth_check", "health_check"),
    "._model": ("ChatModel",),
    "._request": ("ChatRequest",),
    "._routes._config": ("load_config",),
    "._routes._deployment": ("Deployment",),
    "._routes._model": ("RouteHealth", "RoutedModel"),
    "._routes._redis": ("RedisState",),
    "._routes._route": ("register_route",),
    "._routes._types": ("Breaker", "DeploymentStatus"),
    "._tools": ("Tool", "ToolCall"),
    "._stream": ("AsyncChatStream", "ChatStream"),
    "._types": (
        "ChatChunk",
        "ChatResponse",
        "FinishReason",
        "HealthStatus",
        "ImagePart",
        "Message",
        "ReasoningPart",
        "TextPart",
        "ToolCallDelta",
        "Usage",
        "accumulate",
    ),
}
_LAZY = {name: module for module, names in _LAZY_MODULES.items() for name in names}

__version__: str
__all__ = [
    "ENTRY_POINT_GROUP",
    "APIError",
    "AsyncChatStream",
    "AuthenticationError",
    "BadRequestError",
    "Breaker",
    "Capability",
    "CapabilityNotSupportedError",
    "ChatChunk",
    "ChatModel",
    "ChatModelError",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "ContentFilteredError",
    "ContextLengthExceededError",
    "CreationError",
    "CreationTimeoutError",
    "Creator",
    "Deployment",
    "DeploymentStatus",
    "ErrorCode",
    "FinishReason",
    "HealthReport",
    "HealthStatus",
    "ImagePart",
    "InternalError",
    "InvalidConfigError",
    "InvalidCreatorError",
    "InvalidProviderNameError",
    "InvalidResponseError",
    "Message",
    "NetworkError",
    "PermissionDeniedError",
    "PluginWarning",
    "ProviderAlreadyRegisteredError",
    "ProviderMetadata",
    "ProviderNotFoundError",
    "ProviderOptions",
    "ProviderRegistry",
    "ProviderUnavailableError",
    "RateLimitError",
    "ReasoningPart",
    "RedisState",
    "RouteHealth",
    "RoutedModel",
    "Secret",
    "TextPart",
    "TimeoutError",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "accumulate",
    "ahealth_check",
    "anew_registry_provider",
    "backend",
    "configure",
    "get_global_registry",
    "get_provider_metadata",
    "get_providers_by_capability",
    "health_check",
    "is_provider_registered",
    "list_providers",
    "load_config",
    "new_registry_provider",
    "register_global",
    "register_global_with_metadata",
    "register_route",
    "unregister_provider",
]


def configure(
    *,
    tracer_provider: Any | None = None,
    meter_provider: Any | None = None,
    logger: logging.Logger | None = None,
    level: Level | str | None = None,
    capture_content: bool | str | None = None,
    container: Container | None = None,
    reset: bool = False,
    logger_provider: Any | None = None,
) -> Container:
    """Set up chatmodels' OpenTelemetry spans, metrics and logs (each argument optional).

    Without a call, chatmodels reports at level ``standard`` to OpenTelemetry's global
    providers: no-ops until the application installs an SDK. Each call changes only what it
    names and keeps what earlier calls set; ``reset=True`` starts over from the defaults.
    `capture_content` is a bool (content on spans) or ``"NO_CONTENT"``, ``"SPAN_ONLY"``,
    ``"EVENT_ONLY"``, ``"SPAN_AND_EVENT"`` (the event is emitted through `logger_provider`,
    default OpenTelemetry's global one). See `chatmodels.telemetry.configure`.

    Example:
        >>> chatmodels.configure(tracer_provider=provider, meter_provider=meter_provider)
        >>> chatmodels.configure(level="metrics")  # off | metrics | standard | debug
        >>> chatmodels.configure(reset=True)  # back to the defaults
    """
    from .telemetry import configure as configure_telemetry

    return configure_telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger=logger,
        level=level,
        capture_content=capture_content,
        container=container,
        reset=reset,
        logger_provider=logger_provider,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        from importlib import import_module

        value = getattr(import_module(module, __name__), name)
        globals()[name] = value
        return value
    if name == "__version__":
        from importlib.metadata import version

        return version("chatmodels")
    raise AttributeError(f"module 'chatmodels' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "__version__"})
