"""`ChatModelsInstrumentor`, so that ``opentelemetry-instrument python app.py`` turns chatmodels'
telemetry on (entry point group ``opentelemetry_instrumentor``, name ``chatmodels``).

Needs ``opentelemetry-instrumentation``; imported only when used.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from .._observe import set_observer
from ._container import configure
from ._observer import TelemetryObserver
from ._settings import Level

__all__ = ["ChatModelsInstrumentor"]


class ChatModelsInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Turn on chatmodels' spans, metrics and logs through OpenTelemetry.

    ``instrument(tracer_provider=..., meter_provider=..., level=..., capture_content=...)``;
    without providers, the global ones. OTEL_SDK_DISABLED=true keeps everything off.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """None: chatmodels instruments itself, whatever else is installed."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        configure(  # an instrument() call states the whole set-up
            reset=True,
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            level=kwargs.get("level"),
            capture_content=kwargs.get("capture_content"),
        )
        set_observer(TelemetryObserver())

    def _uninstrument(self, **kwargs: Any) -> None:
        configure(reset=True, level=Level.OFF)
        set_observer(None)
