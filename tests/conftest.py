"""Fixtures: every registry test runs against both backends, the Rust core and the Python twin.

The backend list is always ("rust", "python"): when the extension is not built the rust
cases fail (the test command builds it), they are never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chatmodels import ProviderRegistry, telemetry
from chatmodels._global import _swap_global_registry
from chatmodels._observe import set_observer
from helpers import BACKENDS
from sdk_helpers import SDK


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend name, "rust" or "python"."""
    return str(request.param)


@pytest.fixture
def registry(backend: str) -> ProviderRegistry:
    """A fresh, isolated registry of the backend under test."""
    return ProviderRegistry(backend=backend)  # type: ignore[arg-type]


@pytest.fixture
def global_registry(backend: str) -> Iterator[ProviderRegistry]:
    """A fresh global registry of the backend under test; the previous one comes back after."""
    fresh = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    previous = _swap_global_registry(fresh)
    try:
        yield fresh
    finally:
        _swap_global_registry(previous)


@pytest.fixture
def sdk() -> Iterator[SDK]:
    """The OTel SDK's in-memory exporters as chatmodels' telemetry; the previous one after."""
    previous_container = telemetry.get_container()
    previous_observer = set_observer(telemetry.TelemetryObserver())
    installed = SDK()
    yield installed
    installed.close()
    set_observer(previous_observer)
    telemetry.set_container(previous_container)
