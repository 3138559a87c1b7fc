"""Every use of OpenTelemetry's private names, in one place, each with its public fallback.

Checked against opentelemetry-api 1.45.2 and opentelemetry-sdk 1.45.2. Every name is read
with a fallback: when an OpenTelemetry release renames or drops it, the function here
degrades to what the public API gives (costing some speed, or the content event), never
raising. ``tests/telemetry/test_otel_private.py`` fails when a name listed in
`PRIVATE_NAMES` is gone, so that an upgrade is noticed rather than silently slower.

The private names, what each is for, and what happens without it:

- ``opentelemetry.trace._TRACER_PROVIDER``: the SDK provider behind the API's global
  `ProxyTracerProvider` (None until the application installs one). While it is None a call
  skips building a span that would go nowhere. Without it: the proxy counts as live, and
  calls build their (non-recording) spans.
- ``opentelemetry.metrics._internal._ProxyMeterProvider`` and
  ``opentelemetry.metrics._internal._METER_PROVIDER``: the same for the global meter
  provider (the proxy class itself is private). Without them: the meter counts as live, and
  calls record metric points that go nowhere until an SDK is installed.
- ``opentelemetry.context._RUNTIME_CONTEXT`` and its ``_current_context`` (the
  `ContextVar` of the default `ContextVarsRuntimeContext`): `attach`, `detach` and
  `get_current` are that variable's `set`, `reset` and `get`, less three Python frames
  each on the per-call path. Without them (or with another runtime context configured):
  ``opentelemetry.context.attach``, ``detach`` and ``get_current``.
- ``opentelemetry.trace.propagation._SPAN_KEY``: the context key `set_span_in_context`
  puts the span under, so a call builds its context without that function's two frames. It
  is found by asking `set_span_in_context` (not by importing it). Without it (the function
  building anything else than a copy of the parent plus one key):
  ``opentelemetry.trace.set_span_in_context``.
- ``opentelemetry._logs`` (`get_logger_provider`, `LogRecord`): the logs API, still a
  private module in these versions; it carries the GenAI content event
  (``gen_ai.client.inference.operation.details``). Without it: no content event (content on
  spans is unaffected).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

__all__ = [
    "PRIVATE_NAMES",
    "context_functions",
    "global_logger_provider",
    "idle_check",
    "log_record_class",
    "span_key",
]

#: (module, attribute) of each private name read here, for the test that notices an upgrade
#: dropping one. ``_current_context`` is an attribute of the ``_RUNTIME_CONTEXT`` object.
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("opentelemetry.trace", "_TRACER_PROVIDER"),
    ("opentelemetry.metrics._internal", "_ProxyMeterProvider"),
    ("opentelemetry.metrics._internal", "_METER_PROVIDER"),
    ("opentelemetry.context", "_RUNTIME_CONTEXT"),
    ("opentelemetry.trace.propagation", "_SPAN_KEY"),
    ("opentelemetry._logs", "get_logger_provider"),
    ("opentelemetry._logs", "LogRecord"),
)

_MISSING = object()


def idle_check(provider: object) -> Callable[[], bool] | None:
    """When `provider` is the API's global tracer or meter proxy: a function telling whether
    no SDK provider is installed behind it yet. None for any other provider (never idle),
    and when the private global is missing (the proxy then counts as live)."""
    try:
        from opentelemetry import trace

        if type(provider) is trace.ProxyTracerProvider:
            if not hasattr(trace, "_TRACER_PROVIDER"):
                return None
            return lambda: getattr(trace, "_TRACER_PROVIDER", _MISSING) is None
        from opentelemetry.metrics import _internal as metrics_api

        proxy = getattr(metrics_api, "_ProxyMeterProvider", None)
        if (
            proxy is not None
            and type(provider) is proxy
            and hasattr(metrics_api, "_METER_PROVIDER")
        ):
            return lambda: getattr(metrics_api, "_METER_PROVIDER", _MISSING) is None
    except Exception:  # an OpenTelemetry that moved these: the public behaviour
        return None
    return None


def context_functions() -> tuple[Callable[[Any], Any], Callable[[Any], None], Callable[[], Any]]:
    """`attach`, `detach` and `get_current`: the default runtime context's `ContextVar`
    methods when it is in use, else OpenTelemetry's public functions. (A detach in the wrong
    context raises either way; callers suppress it.)"""
    from opentelemetry import context

    public = (context.attach, context.detach, context.get_current)
    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

        runtime = getattr(context, "_RUNTIME_CONTEXT", None)
        var = getattr(runtime, "_current_context", None)
        if type(runtime) is ContextVarsRuntimeContext and isinstance(var, ContextVar):
            return var.set, var.reset, var.get
    except Exception:
        pass
    return public


def span_key() -> str | None:
    """The key under which `set_span_in_context` puts the span, found by asking it; None
    (use the function) if it ever builds anything else than a copy of the parent plus that
    one key."""
    try:
        from opentelemetry import trace
        from opentelemetry.context.context import Context

        probe = trace.set_span_in_context(trace.INVALID_SPAN, Context(probe_parent=1))
        if type(probe) is Context and len(probe) == 2 and probe.get("probe_parent") == 1:
            keys = [key for key in probe if key != "probe_parent"]
            if probe[keys[0]] is trace.INVALID_SPAN:
                return keys[0]
    except Exception:
        pass
    return None


def global_logger_provider() -> Any:
    """OpenTelemetry's global LoggerProvider, or None without the logs API."""
    try:
        from opentelemetry import _logs

        return _logs.get_logger_provider()
    except (ImportError, AttributeError):
        return None


def log_record_class() -> Any:
    """The logs API's `LogRecord` class, or None without the logs API."""
    try:
        from opentelemetry import _logs

        return _logs.LogRecord
    except (ImportError, AttributeError):
        return None
