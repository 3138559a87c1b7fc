"""The async transport's close path reads private names of aiohttp's connector (no public API
closes a session without awaiting it on its event loop). These tests fail loudly when an
aiohttp release changes them, instead of sessions silently leaking their sockets."""

from __future__ import annotations

import asyncio
import re
import warnings
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path

import aiohttp
import chatmodels
import pytest
from chatmodels._transport._async import AIOHTTP_PRIVATE, _close_connector_now
from chatmodels.testing import OpenAICompatibleServer
from packaging.requirements import Requirement

KEY = "sk-test-secret-key-123456"


def _model(url: str) -> chatmodels.ChatModel:
    return chatmodels.new_registry_provider(
        "openai_compatible", {"api_key": KEY, "base_url": url, "model": "m"}
    )


def _requirements() -> list[Requirement]:
    """Every aiohttp requirement in pyproject.toml (the dependency and the test groups)."""
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    return [Requirement(line) for line in re.findall(r'"(aiohttp[^"]*)"', text)]


def test_the_installed_aiohttp_is_in_the_bounded_range() -> None:
    requirements = _requirements()
    assert len(requirements) >= 2  # the dependency and the test group's
    for requirement in requirements:
        assert any(spec.operator == "<" for spec in requirement.specifier), requirement
        assert requirement.specifier.contains(version("aiohttp")), requirement


def test_a_live_connector_has_every_private_name_in_the_shape_used() -> None:
    with OpenAICompatibleServer() as server:
        model = _model(server.base_url)
        asyncio.run(model.ainvoke("hi"))
        session = model.transport._session  # type: ignore[attr-defined]
        assert session is not None
        connector = session.connector
        for name in AIOHTTP_PRIVATE:
            assert hasattr(connector, name), f"aiohttp {aiohttp.__version__} has no {name}"
        assert callable(connector._close)
        assert isinstance(connector._conns, Mapping)
        pairs = [pair for pairs in connector._conns.values() for pair in pairs]
        assert pairs, "the kept-alive connection is in _conns"
        for proto, _ in pairs:
            assert isinstance(proto, aiohttp.client_proto.ResponseHandler)
            assert isinstance(proto.transport, asyncio.Transport)
        assert len(connector._acquired) == 0  # a set of protocols in use
        assert isinstance(connector._cleanup_closed_transports, list)
        transports = [proto.transport for proto, _ in pairs]
        model.close()
        assert connector.closed
        assert all(t.is_closing() for t in transports)


class _Renamed:
    """A connector of a future aiohttp whose private connection table has another name."""

    closed = False

    def _close(self) -> None:
        self.closed = True


def test_a_changed_name_is_a_resource_warning_not_a_silent_leak() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _close_connector_now(_Renamed()) == []  # type: ignore[arg-type]
    (warning,) = caught
    assert warning.category is ResourceWarning
    assert "_conns" in str(warning.message)
    assert aiohttp.__version__ in str(warning.message)


def test_pytest_turns_that_warning_into_a_failure() -> None:
    """The suite runs with warnings as errors: a leak the close path cannot prevent fails
    the test that made it."""
    with pytest.raises(ResourceWarning):
        _close_connector_now(_Renamed())  # type: ignore[arg-type]
