"""chatmodels.telemetry: OpenTelemetry spans, metrics and structured logs for every call.

Following the GenAI semantic conventions (v1.41.1): a CLIENT span ``chat {model}`` per call,
the gen_ai.client.* metrics with their advised buckets, structured log records with a
correlation id. By default the global OpenTelemetry providers are used (no-ops until the
application installs an SDK); `configure` injects others and sets the level:

    >>> import chatmodels
    >>> chatmodels.configure(tracer_provider=provider, meter_provider=meter_provider)
    >>> chatmodels.configure(level="metrics")          # off | metrics | standard | debug
    >>> chatmodels.configure(capture_content=True)     # opt in to message content

Importing this package does not import OpenTelemetry; the first configured or observed call
does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._observe import set_observer
from ._container import Container, ObserverKey, configure, get_container, set_container, set_default
from ._correlation import correlation_scope, current_correlation_id, new_correlation_id
from ._logging import ContextFilter, JsonFormatter, get_logger
from ._metrics import DURATION_BUCKETS, TOKEN_BUCKETS, Metrics, NoOpMetrics
from ._observer import TelemetryObserver
from ._settings import Level, Settings

set_default(ObserverKey, TelemetryObserver)  # what `Container.observer()` builds

if TYPE_CHECKING:
    from ._instrumentor import ChatModelsInstrumentor
    from ._otlp import OTLPSetup, setup_otlp

__all__ = [
    "DURATION_BUCKETS",
    "TOKEN_BUCKETS",
    "ChatModelsInstrumentor",
    "Container",
    "ContextFilter",
    "JsonFormatter",
    "Level",
    "Metrics",
    "NoOpMetrics",
    "OTLPSetup",
    "Settings",
    "TelemetryObserver",
    "configure",
    "correlation_scope",
    "current_correlation_id",
    "get_container",
    "get_logger",
    "install",
    "new_correlation_id",
    "set_container",
    "setup_otlp",
    "uninstall",
]

_LAZY = {
    "ChatModelsInstrumentor": "._instrumentor",
    "OTLPSetup": "._otlp",
    "setup_otlp": "._otlp",
}


def install() -> bool:
    """Make chat calls report to `TelemetryObserver` (True: done)."""
    set_observer(TelemetryObserver())
    return True


def uninstall() -> bool:
    """Put the no-op observer back (True: done)."""
    set_observer(None)
    return True


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chatmodels.telemetry' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)
