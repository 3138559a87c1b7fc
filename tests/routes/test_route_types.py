"""The routes' value types: Breaker validates its fields; DeploymentStatus is a frozen value."""

from __future__ import annotations

import dataclasses
import math

import pytest
from chatmodels import ErrorCode, InvalidConfigError
from chatmodels._routes._types import Breaker, DeploymentStatus


def test_breaker_defaults_are_the_issues() -> None:
    assert Breaker() == Breaker(5, 30.0, 0.5, 10, 10.0, 300.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failures", 0),
        ("failures", 2.0),
        ("failures", True),
        ("min_calls", -1),
        ("window", 0.0),
        ("window", math.inf),
        ("cooldown", math.nan),
        ("cooldown", "10"),
        ("failure_rate", 1.5),
        ("failure_rate", 0.0),
        ("max_cooldown", 5.0),  # below cooldown
    ],
)
def test_breaker_refuses_bad_fields(field: str, value: object) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        Breaker(**{field: value})  # type: ignore[arg-type]
    assert caught.value.op == "breaker"
    assert caught.value.code == ErrorCode.INVALID_CONFIG
    assert f"Breaker.{field}" in str(caught.value)


def test_status_is_frozen() -> None:
    status = DeploymentStatus("openai", "gpt", "closed", 0.0, 0, None, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.in_flight = 1  # type: ignore[misc]
