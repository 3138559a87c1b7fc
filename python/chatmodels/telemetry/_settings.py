"""Observability levels and settings, read from arguments or the standard environment variables.

Levels, each including the one before: ``off`` < ``metrics`` < ``standard`` (metrics, spans,
logs) < ``debug`` (adds a span event per stream chunk). Content capture is a separate opt-in.
"""

from __future__ import annotations

import dataclasses
import enum
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


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to record.

    Attributes:
        level: the `Level`.
        capture_content: record messages, system instructions and tool definitions on spans
            (the conventions' opt-in attributes). Never API keys.
    """

    level: Level = Level.STANDARD
    capture_content: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", Level(self.level))
        if not isinstance(self.capture_content, bool):
            raise TypeError("Settings.capture_content must be a bool")

    @classmethod
    def from_env(
        cls, *, level: Level | str | None = None, capture_content: bool | None = None
    ) -> Settings:
        """Settings from arguments, falling back to the environment.

        OTEL_SDK_DISABLED=true turns everything off;
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true turns content capture on;
        CHATMODELS_OBSERVABILITY_LEVEL picks the level.
        """
        if _env_true("OTEL_SDK_DISABLED"):
            chosen = Level.OFF
        elif level is not None:
            chosen = Level(level)
        else:
            raw = os.environ.get("CHATMODELS_OBSERVABILITY_LEVEL", "").strip().lower()
            chosen = Level(raw) if raw in Level._value2member_map_ else Level.STANDARD
        if capture_content is None:
            capture_content = _env_true("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
        return cls(level=chosen, capture_content=capture_content)

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
