"""Fixtures for the route-state suite: every test runs on the Rust core and on the Python twin
(the `backend` fixture of tests/conftest.py)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import pytest
from chatmodels._routes import _state
from chatmodels._routes._state import Limits, RouteState, new_route_state
from chatmodels._routes._types import Breaker
from route_helpers import MakeState


@pytest.fixture
def make_state(backend: str) -> MakeState:
    """Builds a route state of the backend under test; no jitter, a fixed seed by default."""

    def make(
        limits: Sequence[Limits],
        breaker: Breaker | None = None,
        *,
        jitter: float = 0.0,
        seed: int = 1,
    ) -> RouteState:
        return new_route_state(limits, breaker, backend=backend, jitter=jitter, seed=seed)  # type: ignore[arg-type]

    return make


@pytest.fixture
def seed_routes(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Seeds the generator the route states registered after it draw their seeds from, so
    their random choices (weighted keys, latency exploration) and jitter repeat exactly."""

    def seed(value: int) -> None:
        monkeypatch.setattr(_state, "SEEDS", random.Random(value))

    return seed
