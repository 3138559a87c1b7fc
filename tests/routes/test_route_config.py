"""Declaring routes: every bad input refused with invalid_config naming the field, nothing
registered; what a route is in the registry (listed, capabilities, metadata) (both backends)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import chatmodels
import pytest
from chatmodels import Breaker, Deployment, ErrorCode, InvalidConfigError, ProviderRegistry
from chatmodels._providers._builtins import register_builtins


@pytest.fixture
def reg(backend: str) -> Iterator[ProviderRegistry]:
    registry = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    register_builtins(registry)
    yield registry
    registry.clear()


def openai(**kw: Any) -> Deployment:
    return Deployment("openai", {"model": "m", "api_key": "sk-test"}, **kw)


def refused(reg: ProviderRegistry, match: str, *args: Any, **kwargs: Any) -> InvalidConfigError:
    before = reg.names()
    with pytest.raises(InvalidConfigError, match=match) as info:
        reg.register_route(*args, **kwargs)
    assert info.value.code is ErrorCode.INVALID_CONFIG
    assert info.value.op in ("register_route", "route")
    assert reg.names() == before  # nothing registered
    return info.value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("weight", 0),
        ("weight", -1.0),
        ("weight", math.nan),
        ("weight", math.inf),
        ("weight", True),
        ("rpm", 0),
        ("rpm", -5),
        ("tpm", 1.5),
        ("max_concurrency", 0),
        ("context_window", -1),
        ("rpm", math.nan),
    ],
)
def test_bad_deployment_fields_name_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidConfigError, match=rf"Deployment\.{field}") as info:
        Deployment("openai", {"model": "m"}, **{field: value})  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_CONFIG


def test_bad_routes(reg: ProviderRegistry) -> None:
    refused(reg, "no deployments", "chat", [])
    refused(reg, r"deployments\[0\] must be a Deployment", "chat", ["openai"])
    e = refused(
        reg,
        r"deployments\[1\]\.provider.*did you mean 'openai'",
        "chat",
        [openai(), Deployment("opnai", {"model": "m"})],
    )
    assert "opnai" in str(e)
    refused(reg, "names the route itself", "chat", [Deployment("chat")])
    refused(reg, "strategy.*did you mean 'weighted'", "chat", [openai()], strategy="wieghted")
    refused(
        reg,
        "failover_on: unknown error code 'rate_limit'.*did you mean 'rate_limited'",
        "chat",
        [openai()],
        failover_on=["rate_limit"],
    )
    refused(reg, "failover_on must be a collection", "chat", [openai()], failover_on="timeout")
    refused(reg, "clock must be a callable", "chat", [openai()], clock=5)
    refused(reg, "timeout must be a positive", "chat", [openai()], timeout=0)
    refused(reg, "timeout must be a positive", "chat", [openai()], timeout=math.nan)
    refused(reg, "max_wait must be", "chat", [openai()], max_wait=-1)
    refused(reg, "breaker must be a Breaker", "chat", [openai()], breaker={"failures": 1})
    refused(
        reg,
        r"deployments\[0\]\.options",
        "chat",
        [Deployment("openai", {"model": "m", "api_key": "sk", "temprature": 1})],
    )


def test_a_cycle_through_other_routes_is_refused(reg: ProviderRegistry) -> None:
    reg.register_route("a", [openai()])
    reg.register_route("b", [Deployment("a")])
    refused(reg, "cycle", "a", [Deployment("b")], replace=True)
    assert reg.create("b").invoke  # both still usable


def test_breaker_settings_are_checked() -> None:
    for kwargs in (
        {"failures": 0},
        {"window": -1},
        {"failure_rate": 1.5},
        {"cooldown": 0},
        {"max_cooldown": 1.0, "cooldown": 5.0},
        {"min_calls": 2.5},
    ):
        with pytest.raises(InvalidConfigError):
            Breaker(**kwargs)  # type: ignore[arg-type]


def test_a_route_is_an_entry_like_any_provider(reg: ProviderRegistry) -> None:
    reg.register(
        "basic",
        lambda options: chatmodels.ChatModel(reg.metadata("basic"), options),
        metadata={"capabilities": ["chat"]},
    )
    reg.register_route("chat", [openai(), Deployment("basic", {"model": "m"})])
    assert "chat" in reg.names()
    assert reg.metadata("chat").capabilities == frozenset({chatmodels.Capability.CHAT})
    assert "chat" in reg.by_capability("chat")
    assert "chat" not in reg.by_capability("tool_calling")  # not every deployment has it
    assert isinstance(reg.create("chat"), chatmodels.RoutedModel)
    with pytest.raises(chatmodels.ProviderAlreadyRegisteredError):
        reg.register_route("chat", [openai()])
    reg.unregister("chat")
    assert "chat" not in reg.names()


def test_module_level_register_route(global_registry: ProviderRegistry) -> None:
    register_builtins(global_registry)
    chatmodels.register_route("chat", [openai()])
    assert chatmodels.is_provider_registered("chat")
    model = chatmodels.new_registry_provider("chat")
    assert isinstance(model, chatmodels.RoutedModel)
    assert [s.provider for s in model.status()] == ["openai"]


def test_deployment_repr_never_shows_options() -> None:
    d = Deployment("openai", {"model": "m", "api_key": "sk-plain-text-key"}, rpm=5)
    assert "sk-plain" not in repr(d)
    assert "rpm=5" in repr(d)
