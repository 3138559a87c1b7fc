"""What a container's calls report with, resolved once: settings, tracer, metrics, loggers.

`Container.runtime()` builds one `Runtime` from what the container holds; the observer and
the registry hooks read it on every call. Whether the API's global providers are still idle
proxies is asked through `_otel_private`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._observe import telemetry_failed
from ._otel_private import idle_check
from ._settings import Level, Settings

if TYPE_CHECKING:
    from ._metrics import Metrics

__all__ = ["SCHEMA_URL", "SCOPE", "Runtime"]

SCOPE = "chatmodels"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("chatmodels")
    except Exception:  # not installed as a distribution (a source tree)
        return "0"


class Runtime:
    """What the hot path needs, resolved once per container: settings, tracer, metrics, logger.

    The flags (`off`, `tracing`, `debug`, `capture_content`) are the settings' answers, kept
    as plain attributes; `statics` caches what calls with the same provider and model share.
    `call_metrics` is `metrics` when it records (else None), for the per-call path;
    `proxied` is true while the tracer or the meter is an API global proxy that may still be
    idle: only then does a call need `live()`.
    """

    __slots__ = (
        "_meter_idle",
        "_tracer_idle",
        "call_metrics",
        "capture_content",
        "content",
        "content_events",
        "debug",
        "event_logger",
        "logger",
        "metrics",
        "off",
        "proxied",
        "settings",
        "statics",
        "tracer",
        "tracing",
    )

    def __init__(
        self,
        settings: Settings,
        logger: logging.Logger,
        tracer_provider: Callable[[], Any],
        meter_provider: Callable[[], Any],
        logger_provider: Callable[[], Any],
    ) -> None:
        """`settings` and `logger` as given; the three providers are asked for only when the
        settings need them (so that level off imports no OpenTelemetry)."""
        from ._metrics import NoOpMetrics, OTelMetrics

        self.settings = settings
        self.logger = logger
        self.off = settings.level is Level.OFF
        self.tracing = settings.tracing
        self.debug = settings.debug
        self.capture_content = settings.capture_content and self.tracing
        self.content_events = settings.capture_content_events and self.tracing
        #: whether calls capture content at all (on spans, on events or both)
        self.content = self.capture_content or self.content_events
        self.event_logger: Any = None
        self.statics: dict[tuple[Any, ...], Any] = {}
        self.tracer: Any = None
        self.metrics: Metrics = NoOpMetrics()
        self.call_metrics: Metrics | None = None
        self._tracer_idle: Callable[[], bool] | None = None
        self._meter_idle: Callable[[], bool] | None = None
        self.proxied = False
        if self.off:
            return
        # A provider, meter or tracer that raises here costs its signal, never a call.
        try:
            meters = meter_provider()
            meter = meters.get_meter(SCOPE, _version(), schema_url=SCHEMA_URL)
            self.metrics = self.call_metrics = OTelMetrics(meter, on_drop=self._log_drop)
            self._meter_idle = idle_check(meters)
        except Exception as exc:
            telemetry_failed(exc, "metrics setup")
            self.metrics, self.call_metrics, self._meter_idle = NoOpMetrics(), None, None
        if self.tracing:
            try:
                tracers = tracer_provider()
                self.tracer = tracers.get_tracer(SCOPE, _version(), schema_url=SCHEMA_URL)
                self._tracer_idle = idle_check(tracers)
            except Exception as exc:
                telemetry_failed(exc, "tracer setup")
                self.tracer = self._tracer_idle = None
        if self.content_events:
            try:
                loggers = logger_provider()
                if loggers is None:  # no logs API: no content event
                    raise LookupError("OpenTelemetry has no logs API (opentelemetry._logs)")
                self.event_logger = loggers.get_logger(SCOPE, _version(), schema_url=SCHEMA_URL)
            except Exception as exc:
                telemetry_failed(exc, "event logger setup")
                self.event_logger = None
                self.content_events = False
        self.proxied = self._tracer_idle is not None or self._meter_idle is not None

    # The API's global providers are proxies: until the application installs an SDK provider
    # behind them, what they make goes nowhere, and a call need not pay for building it.

    def tracer_idle(self) -> bool:
        """Whether the tracer is the API's global proxy with no SDK provider installed yet."""
        idle = self._tracer_idle
        return idle is not None and idle()

    def meter_idle(self) -> bool:
        """Whether the meter is the API's global proxy with no SDK provider installed yet."""
        idle = self._meter_idle
        return idle is not None and idle()

    def live(self) -> tuple[Any, Metrics | None]:
        """The tracer and metrics a call should use now: None for an idle proxy's.

        The API sets each global provider once, so once neither proxy is idle, none will be
        again: `proxied` turns false and calls skip this check.
        """
        tracer_idle = self.tracer_idle()
        meter_idle = self.meter_idle()
        if not tracer_idle and not meter_idle:
            self.proxied = False
        return (None if tracer_idle else self.tracer), (None if meter_idle else self.call_metrics)

    def _log_drop(self, count: int) -> None:
        try:
            self.logger.warning(
                "chatmodels dropped %d metric values: the buffer filled between two collections",
                count,
                extra={"op": "telemetry", "code": "dropped"},
            )
        except Exception as exc:  # a raising handler: on the metric reader's thread
            telemetry_failed(exc, "log")
