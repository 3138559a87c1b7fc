"""Structured log records under the ``chatmodels`` logger tree.

Every chatmodels record carries the fields op, provider, model, code, correlation_id, trace_id
and span_id (None when unknown). `ContextFilter` fills the last three from the context;
`JsonFormatter` renders a record as one JSON object per line. OpenTelemetry's logging bridge
(the SDK's ``LoggingHandler``) exports these records with the current trace context.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from .._observe import telemetry_failed
from ._correlation import current_correlation_id

__all__ = ["FIELDS", "ContextFilter", "JsonFormatter", "get_logger", "log_event"]

FIELDS = ("op", "provider", "model", "code", "correlation_id", "trace_id", "span_id")
ROOT = "chatmodels"


def _span_ids() -> tuple[str | None, str | None]:
    trace_mod = sys.modules.get("opentelemetry.trace")
    if trace_mod is None:  # nothing has loaded OpenTelemetry, so no span can be current
        return None, None
    ctx = trace_mod.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


class ContextFilter(logging.Filter):
    """Give every record the structured fields, taking ids from the current context."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Fill the record's missing fields; never drops a record."""
        attrs = record.__dict__
        for field in ("op", "provider", "model", "code"):
            attrs.setdefault(field, None)
        if attrs.get("trace_id") is None:
            attrs["trace_id"], attrs["span_id"] = _span_ids()
        else:
            attrs.setdefault("span_id", None)
        if attrs.get("correlation_id") is None:
            attrs["correlation_id"] = current_correlation_id() or attrs["trace_id"]
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, Any] = {
            "time": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                out[field] = str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


_FILTER = ContextFilter()


def get_logger(name: str = ROOT) -> logging.Logger:
    """The chatmodels logger `name` (under ``chatmodels``), with the context filter attached."""
    logger = logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    root = logging.getLogger(ROOT)
    if not root.handlers:  # a library's records go where the app sends them, not to stderr
        root.addHandler(logging.NullHandler())
    return logger


def log_event(
    logger: logging.Logger,
    level: int,
    message: str,
    *,
    op: str,
    provider: str | None = None,
    model: str | None = None,
    code: str | None = None,
    correlation_id: str | None = None,
    span: Any = None,
    exc_info: BaseException | None = None,
) -> None:
    """Log `message` with the structured fields, if the logger is enabled for `level`.

    Never raises: what a handler or filter raises (OpenTelemetry's logging handler with a
    failing log record processor, say) is reported by `telemetry_failed` instead."""
    if not logger.isEnabledFor(level):
        return
    try:
        trace_id = span_id = None
        if span is not None:
            ctx = span.get_span_context()
            if ctx.is_valid:
                trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
        logger.log(
            level,
            message,
            exc_info=exc_info,
            extra={
                "op": op,
                "provider": provider,
                "model": model,
                "code": code,
                "correlation_id": correlation_id,
                "trace_id": trace_id,
                "span_id": span_id,
            },
        )
    except Exception as exc:
        telemetry_failed(exc, "log")
