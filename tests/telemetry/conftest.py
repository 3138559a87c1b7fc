"""Fixtures for the telemetry suite: `tel`, an observer on in-memory exporters (the fakes are in
telemetry_fakes.py); `sdk`, the OTel SDK installed through `chatmodels.configure`, comes from
tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from telemetry_fakes import Telemetry, make_telemetry


@pytest.fixture
def tel() -> Iterator[Telemetry]:
    """A telemetry observer on an in-memory span exporter and metric reader."""
    yield from make_telemetry()
