"""`Deployment`: a registered provider plus the options a route creates its model with."""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

from .._errors import InvalidConfigError
from .._metadata import ProviderOptions

__all__ = ["Deployment", "check_limit"]


def check_limit(where: str, value: object) -> None:
    """Refuse a limit that is not None or an int >= 1 (zero, negative, NaN, bool, float)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfigError(f"{where} must be an int >= 1 or None, got {value!r}", op="route")


@dataclass(frozen=True)
class Deployment:
    """One place a route may send a call: a registered provider and its options.

    Args:
        provider: a registered provider name (a built-in, a plugin, yours, or another route).
        options: the options its model is created with (a mapping or `ProviderOptions`);
            the route turns the model's own retries off (``max_retries=0``): it owns the
            attempts.
        weight: the share of calls under the ``weighted`` strategy (a positive finite number).
        rpm: at most this many requests in any 60-second window (None: no limit).
        tpm: at most this many tokens in any 60-second window (None: no limit).
        max_concurrency: at most this many calls in flight (None: no limit).
        context_window: the model's context window in tokens, when declared: a call whose
            estimated input plus ``max_tokens`` does not fit skips this deployment, and a
            ``context_length_exceeded`` failure moves only to a larger declared window.

    Example:
        >>> Deployment("openai", {"model": "gpt-4o-mini"}, rpm=500, tpm=200_000)
    """

    provider: str
    options: Mapping[str, Any] | ProviderOptions | None = None
    _: KW_ONLY
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    context_window: int | None = None

    def __post_init__(self) -> None:
        if type(self.provider) is not str or not self.provider:
            raise InvalidConfigError(
                f"Deployment.provider must be a non-empty str, got {self.provider!r}", op="route"
            )
        options = self.options
        if isinstance(options, Mapping) and not isinstance(options, types.MappingProxyType):
            object.__setattr__(self, "options", types.MappingProxyType(dict(options)))
        elif options is not None and not isinstance(options, (Mapping, ProviderOptions)):
            raise InvalidConfigError(
                "Deployment.options must be a mapping or ProviderOptions, got"
                f" {type(options).__name__}",
                op="route",
            )
        weight = self.weight
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not math.isfinite(weight)
            or weight <= 0
        ):
            raise InvalidConfigError(
                f"Deployment.weight must be a positive finite number, got {weight!r}", op="route"
            )
        for field in ("rpm", "tpm", "max_concurrency", "context_window"):
            check_limit(f"Deployment.{field}", getattr(self, field))

    @property
    def model(self) -> str | None:
        """The ``model`` option, if any."""
        options = self.options
        if isinstance(options, ProviderOptions):
            return options.model
        if options is None:
            return None
        model = options.get("model")
        return model if isinstance(model, str) else None

    @property
    def label(self) -> str:
        """``provider/model`` (or the provider alone): how errors, logs and spans name it."""
        model = self.model
        return f"{self.provider}/{model}" if model else self.provider

    def __repr__(self) -> str:
        # Never the options themselves: they may hold a key given in plain text.
        extra = "".join(
            f", {f}={getattr(self, f)!r}"
            for f in ("rpm", "tpm", "max_concurrency", "context_window")
            if getattr(self, f) is not None
        )
        return f"Deployment({self.provider!r}, model={self.model!r}, weight={self.weight!r}{extra})"
