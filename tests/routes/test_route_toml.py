"""Routes from a TOML file: what a good file registers, and every bad input refused with the
file, the key path and a did-you-mean, registering nothing (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import chatmodels
import pytest
from chatmodels import InvalidConfigError, ProviderRegistry, RoutedModel
from chatmodels._global import _swap_global_registry, get_global_registry
from chatmodels._providers._builtins import register_builtins
from chatmodels._routes._config import load_config
from chatmodels.testing import OpenAICompatibleServer

GOOD = """
[routes.chat]
strategy = "priority"
timeout = 30.0
failover_on = ["rate_limited", "timeout"]
breaker = { failures = 3, cooldown = 5.0 }

[[routes.chat.deployments]]
provider = "openai"
options = { model = "gpt-4o-mini", base_url = "{url}" }
rpm = 500
tpm = 200000

[[routes.chat.deployments]]
provider = "inner"
weight = 2

[routes.inner]
strategy = "weighted"
breaker = false

[[routes.inner.deployments]]
provider = "openai"
options = { model = "m", base_url = "{url}", api_key = { env = "CHATMODELS_TEST_KEY" } }
"""


@pytest.fixture
def reg(backend: str) -> Iterator[ProviderRegistry]:
    registry = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    register_builtins(registry)
    yield registry
    registry.clear()


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer() as s:
        yield s


def write(tmp_path: Path, text: str, url: str = "http://127.0.0.1:9/v1") -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(text.replace("{url}", url))
    return path


def test_a_good_file_registers_its_routes(
    reg: ProviderRegistry,
    server: OpenAICompatibleServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("CHATMODELS_TEST_KEY", "sk-inner")
    path = write(tmp_path, GOOD, server.base_url)
    assert load_config(path, registry=reg) == ["inner", "chat"]  # dependencies first
    model = reg.create("chat")
    assert isinstance(model, RoutedModel)
    route = model.route
    assert route.strategy == "priority"
    assert route.timeout == 30.0
    assert {c.value for c in route.failover_on} == {"rate_limited", "timeout"}
    assert route.breaker == chatmodels.Breaker(failures=3, cooldown=5.0)
    assert (route.deployments[0].rpm, route.deployments[0].tpm) == (500, 200000)
    assert route.deployments[1].weight == 2
    assert reg.create("inner").route.breaker is None  # type: ignore[attr-defined]
    assert model.invoke("hi").text == "Echo: hi"
    keys = {r.headers.get("authorization") for r in server.requests}
    assert keys == {"Bearer sk-from-env"}
    reg.create("inner").invoke("hi")
    assert server.requests[-1].headers.get("authorization") == "Bearer sk-inner"


BAD = [
    ("[routes.chat]\nstrategy = 'priority'\n", r"routes\.chat\.deployments: must be a non-empty"),
    (
        "[routes.chat]\nstrategy = 'priorty'\n[[routes.chat.deployments]]\nprovider = 'openai'\n",
        r"routes\.chat\.strategy: .*did you mean 'priority'",
    ),
    (
        "[routes.chat]\nstratgy = 'priority'\n[[routes.chat.deployments]]\nprovider = 'openai'\n",
        r"routes\.chat\.stratgy: unknown key; did you mean 'strategy'",
    ),
    (
        "[routes.chat]\n[[routes.chat.deployments]]\nprovider = 'openai'\n"
        "[[routes.chat.deployments]]\nprovider = 'openai'\nrpm = 'lots'\n",
        r"routes\.chat\.deployments\[1\]\.rpm: must be an integer",
    ),
    (
        "[routes.chat]\n[[routes.chat.deployments]]\nprovider = 'openai'\n"
        "[[routes.chat.deployments]]\nprovider = 'openai'\nrpm = 0\n",
        r"routes\.chat\.deployments\[1\]\.rpm: ",
    ),
    (
        "[routes.chat]\n[[routes.chat.deployments]]\nprovider = 'openai'\nwieght = 2\n",
        r"routes\.chat\.deployments\[0\]\.wieght: unknown key; did you mean 'weight'",
    ),
    (
        "[routes.chat]\n[[routes.chat.deployments]]\nprovider = 'opnai'\n",
        r"routes\.chat\.deployments\[0\]\.provider: no provider named 'opnai'; "
        r"did you mean 'openai'",
    ),
    ("[routes.chat]\n[[routes.chat.deployments]]\nprovider = 'chat'\n", r"cycle|itself"),
    (
        "[routes.chat]\nbreaker = { failurs = 2 }\n"
        "[[routes.chat.deployments]]\nprovider = 'openai'\n",
        r"routes\.chat\.breaker\.failurs: unknown key; did you mean 'failures'",
    ),
    (
        "[routes.chat]\nbreaker = { failures = 0 }\n"
        "[[routes.chat.deployments]]\nprovider = 'openai'\n",
        r"routes\.chat\.breaker\.failures",
    ),
    (
        "[routes.chat]\nfailover_on = ['rate_limit']\n[[routes.chat.deployments]]\n"
        "provider = 'openai'\n",
        r"routes\.chat: .*did you mean 'rate_limited'",
    ),
    (
        "[routes.chat]\ntimeout = 'soon'\n[[routes.chat.deployments]]\nprovider = 'openai'\n",
        r"routes\.chat\.timeout: must be a number",
    ),
    (
        "[routes.chat]\n[[routes.chat.deployments]]\nprovider = 'openai'\n"
        "options = { model = 'm', api_key = { env = 'CHATMODELS_TEST_UNSET' } }\n",
        r"routes\.chat\.deployments\[0\]\.options\.api_key: the environment variable",
    ),
    (
        "[routes.chat]\n[[routes.chat.deployments]]\nprovider = 'openai'\n"
        "options = { model = 'm', temprature = 1 }\n",
        r"routes\.chat: .*temprature",
    ),
    ("[route.chat]\n", r"\.route: unknown key; did you mean 'routes'"),
    ("[routes.chat\n", r"not valid TOML"),
]


@pytest.mark.parametrize(("text", "match"), BAD)
def test_bad_files_are_refused_naming_the_key_path(
    reg: ProviderRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, match: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.delenv("CHATMODELS_TEST_UNSET", raising=False)
    reg.register_route("other", [chatmodels.Deployment("openai", {"model": "m"})])
    before = reg.names()
    path = write(
        tmp_path,
        "[routes.good]\n[[routes.good.deployments]]\nprovider = 'openai'\n"
        "options = { model = 'm' }\n" + text,
    )
    with pytest.raises(InvalidConfigError, match=match) as info:
        load_config(path, registry=reg)
    assert str(path) in str(info.value)
    assert reg.names() == before  # nothing from a refused file is registered


def test_a_missing_file(reg: ProviderRegistry, tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.toml", registry=reg)


def test_chatmodels_config_loads_at_first_use_of_the_global_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: OpenAICompatibleServer
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("CHATMODELS_TEST_KEY", "sk-inner")
    monkeypatch.setenv("CHATMODELS_CONFIG", str(write(tmp_path, GOOD, server.base_url)))
    previous = _swap_global_registry(None)
    loaded = None
    try:
        assert chatmodels.is_provider_registered("chat")
        assert chatmodels.new_registry_provider("chat").invoke("hi").text == "Echo: hi"
        loaded = get_global_registry()
        bad = tmp_path / "bad.toml"
        bad.write_text("[routes.x]\n")
        monkeypatch.setenv("CHATMODELS_CONFIG", str(bad))
        _swap_global_registry(None)
        for _ in range(2):  # reported at every first use until the file is fixed
            with pytest.raises(InvalidConfigError, match=r"bad\.toml"):
                get_global_registry()
    finally:
        monkeypatch.delenv("CHATMODELS_CONFIG")
        _swap_global_registry(previous)
        if loaded is not None:
            loaded.clear()  # closes the routes' models


def test_replace_swaps_routes_and_a_refused_reload_restores_them(
    reg: ProviderRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    first = write(
        tmp_path,
        "[routes.chat]\n[[routes.chat.deployments]]\nprovider = 'openai'\n"
        "options = { model = 'one' }\n",
    )
    load_config(first, registry=reg)
    with pytest.raises(chatmodels.ProviderAlreadyRegisteredError):
        load_config(first, registry=reg)
    second = tmp_path / "second.toml"
    second.write_text(
        "[routes.chat]\n[[routes.chat.deployments]]\nprovider = 'openai'\n"
        "options = { model = 'two' }\n"
    )
    load_config(second, registry=reg, replace=True)
    assert reg.create("chat").status()[0].model == "two"  # type: ignore[attr-defined]
    broken = tmp_path / "broken.toml"
    broken.write_text(
        second.read_text().replace("'two'", "'three'")
        + "[routes.later]\n[[routes.later.deployments]]\nprovider = 'openai'\n"
        "options = { model = 'm', temprature = 2 }\n"
    )
    with pytest.raises(InvalidConfigError):
        load_config(broken, registry=reg, replace=True)
    assert reg.create("chat").status()[0].model == "two"  # type: ignore[attr-defined]
    assert "later" not in reg.names()
