"""Observability levels and settings, read from arguments or the standard environment variables.

Levels, each including the one before: ``off`` < ``metrics`` < ``standard`` (metrics, spans,
logs) < ``debug`` (adds a span event per stream chunk). Content capture is a separate opt-in:
on spans, on the GenAI conventions' ``gen_ai.client.inference.operation.details`` event, or
both, as OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT says (see `content_capture`).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os

__all__ = ["Level", "Settings"]

_TRUE = frozenset({"1", "true", "yes", "on"})


class Level(str, enum.Enum):
    """How much telemetry chatmodels produces."""

    OFF = "off"
    METRICS = "metrics"
    STANDARD = "standard"
    DEBUG = "debug"

    def __str__(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        """0 for off up to 3 for debug."""
        return _RANK[self]


_RANK = {Level.OFF: 0, Level.METRICS: 1, Level.STANDARD: 2, Level.DEBUG: 3}


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


_FALSE = frozenset({"", "0", "false", "no", "off"})

# OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT's enum form (opentelemetry-util-genai's
# ContentCapturingMode), under OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental:
# name → (content on spans, content on the gen_ai.client.inference.operation.details event)
CONTENT_MODES: dict[str, tuple[bool, bool]] = {
    "NO_CONTENT": (False, False),
    "SPAN_ONLY": (True, False),
    "EVENT_ONLY": (False, True),
    "SPAN_AND_EVENT": (True, True),
}
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
_LATEST = "gen_ai_latest_experimental"


def _latest_experimental() -> bool:
    opt_in = os.environ.get(OPT_IN_ENV, "")
    return _LATEST in {part.strip().lower() for part in opt_in.split(",")}


def _warn(message: str, *args: object) -> None:
    logging.getLogger("chatmodels.telemetry").warning(
        message, *args, extra={"op": "telemetry", "code": "invalid_config"}
    )


def content_capture(value: bool | str | None) -> tuple[bool, bool]:
    """Where message content goes, (on spans, on events), for a `capture_content` argument
    or, when it is None, for OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT.

    The boolean form (``true``: spans) always works; the enum form (``NO_CONTENT``,
    ``SPAN_ONLY``, ``EVENT_ONLY``, ``SPAN_AND_EVENT``) does for an argument and, as in the
    OpenTelemetry GenAI instrumentations, for the variable under
    OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental. Anything else means no content
    and logs a warning on ``chatmodels.telemetry``.
    """
    if isinstance(value, bool):
        return value, False
    from_env = value is None
    raw = os.environ.get(CAPTURE_ENV, "") if value is None else value
    word = raw.strip()
    if word.lower() in _TRUE:
        return True, False
    if word.lower() in _FALSE:
        return False, False
    mode = CONTENT_MODES.get(word.upper())
    if mode is not None and (not from_env or _latest_experimental()):
        return mode
    where = f"{CAPTURE_ENV}={raw!r}" if from_env else f"capture_content={raw!r}"
    if mode is not None:
        _warn(
            "%s is ignored without %s=%s: no message content is captured",
            where,
            OPT_IN_ENV,
            _LATEST,
        )
    else:
        _warn(
            "%s is not true, false or one of %s: no message content is captured",
            where,
            ", ".join(CONTENT_MODES),
        )
    return False, False


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to record.

    Attributes:
        level: the `Level`.
        capture_content: record messages, system instructions and tool definitions on spans
            (the conventions' opt-in attributes). Never API keys.
        capture_content_events: record them on a ``gen_ai.client.inference.operation.details``
            event per call instead (through the OpenTelemetry logs API), with the call's
            attributes and in its trace.
    """

    level: Level = Level.STANDARD
    capture_content: bool = False
    capture_content_events: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", Level(self.level))
        if not isinstance(self.capture_content, bool):
            raise TypeError("Settings.capture_content must be a bool")
        if not isinstance(self.capture_content_events, bool):
            raise TypeError("Settings.capture_content_events must be a bool")

    @classmethod
    def from_env(
        cls, *, level: Level | str | None = None, capture_content: bool | str | None = None
    ) -> Settings:
        """Settings from arguments, falling back to the environment.

        OTEL_SDK_DISABLED=true turns everything off;
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true turns content capture on
        spans on (its enum form: see `content_capture`); CHATMODELS_OBSERVABILITY_LEVEL picks
        the level. `capture_content` is a bool or one of the enum names.
        """
        if _env_true("OTEL_SDK_DISABLED"):
            chosen = Level.OFF
        elif level is not None:
            chosen = Level(level)
        else:
            raw = os.environ.get("CHATMODELS_OBSERVABILITY_LEVEL", "").strip().lower()
            chosen = Level(raw) if raw in Level._value2member_map_ else Level.STANDARD
        on_spans, on_events = content_capture(capture_content)
        return cls(level=chosen, capture_content=on_spans, capture_content_events=on_events)

    @property
    def metrics(self) -> bool:
        """Whether metrics are recorded."""
        return self.level.rank >= 1

    @property
    def tracing(self) -> bool:
        """Whether spans and structured logs are produced."""
        return self.level.rank >= 2

    @property
    def debug(self) -> bool:
        """Whether each stream chunk becomes a span event."""
        return self.level.rank >= 3
