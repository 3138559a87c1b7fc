"""The routes' public value types: the circuit breaker's settings and a deployment's status."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .._errors import InvalidConfigError

__all__ = ["DEFAULT_BREAKER", "Breaker", "CircuitState", "DeploymentStatus"]

CircuitState = Literal["closed", "open", "half_open"]


def _positive_int(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfigError(
            f"Breaker.{field} must be an int >= 1, got {value!r}", op="breaker"
        )


def _positive_float(field: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidConfigError(
            f"Breaker.{field} must be a positive finite number, got {value!r}", op="breaker"
        )


@dataclass(frozen=True)
class Breaker:
    """When a deployment's circuit opens, and for how long.

    The circuit opens after `failures` consecutive failover failures, or when at least
    `min_calls` calls in the last `window` seconds failed at `failure_rate` or more (checked
    at each failure). A failure carrying a Retry-After (a 429 or 503) opens it for exactly
    that long. Otherwise the first opening lasts `cooldown` seconds and each re-opening
    straight after a failed trial doubles it (less up to 10% of jitter), up to
    `max_cooldown`. Then the circuit is half open: one trial call goes through; its success
    closes the circuit, its failure opens it again. Errors the caller caused never count.

    Example:
        >>> Breaker(failures=3, cooldown=5.0).max_cooldown
        300.0
    """

    failures: int = 5
    window: float = 30.0
    failure_rate: float = 0.5
    min_calls: int = 10
    cooldown: float = 10.0
    max_cooldown: float = 300.0

    def __post_init__(self) -> None:
        _positive_int("failures", self.failures)
        _positive_float("window", self.window)
        _positive_float("failure_rate", self.failure_rate)
        if self.failure_rate > 1:
            raise InvalidConfigError(
                f"Breaker.failure_rate must be at most 1, got {self.failure_rate!r}",
                op="breaker",
            )
        _positive_int("min_calls", self.min_calls)
        _positive_float("cooldown", self.cooldown)
        _positive_float("max_cooldown", self.max_cooldown)
        if self.max_cooldown < self.cooldown:
            raise InvalidConfigError(
                f"Breaker.max_cooldown ({self.max_cooldown!r}) must be at least"
                f" Breaker.cooldown ({self.cooldown!r})",
                op="breaker",
            )


@dataclass(frozen=True)
class DeploymentStatus:
    """One deployment of a route as `RoutedModel.status()` reports it.

    Attributes:
        provider: the registered provider name.
        model: the model option, if any.
        circuit: ``"closed"``, ``"open"`` or ``"half_open"``.
        seconds_until_close: while open, seconds until the circuit turns half open (a trial
            may then close it); 0.0 otherwise.
        in_flight: calls in flight.
        rpm_left: requests left in the current 60-second window (None: no rpm limit).
        tpm_left: tokens left in the current 60-second window (None: no tpm limit).
        latency: moving average of recent successful latency in seconds (None: no sample).
    """

    provider: str
    model: str | None
    circuit: CircuitState
    seconds_until_close: float
    in_flight: int
    rpm_left: int | None
    tpm_left: int | None
    latency: float | None


DEFAULT_BREAKER = Breaker()
"""The breaker a route gets unless it says otherwise."""
