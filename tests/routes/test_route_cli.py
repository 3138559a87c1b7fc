"""`chatmodels routes` (the table of the routes' deployments) and `chatmodels health` over
routes, with routes from ``--config PATH`` or $CHATMODELS_CONFIG, against loopback servers
(both backends, through a fresh global registry)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import chatmodels
import pytest
from chatmodels import Breaker, Deployment, ProviderRegistry
from chatmodels.__main__ import main
from chatmodels._providers._builtins import register_builtins
from chatmodels.testing import OpenAICompatibleServer


@pytest.fixture
def glob(global_registry: ProviderRegistry) -> Iterator[ProviderRegistry]:
    register_builtins(global_registry)
    yield global_registry
    global_registry.clear()


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer() as srv:
        yield srv


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def config(tmp_path: Path, up: str, down: str) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(
        f"""
[routes.chat]
strategy = "priority"
timeout = 10.0

[routes.chat.breaker]
failures = 1
cooldown = 30.0

[[routes.chat.deployments]]
provider = "openai"
options = {{ model = "down-m", api_key = "sk-test", base_url = "{down}" }}

[[routes.chat.deployments]]
provider = "openai"
options = {{ model = "up-m", api_key = "sk-test", base_url = "{up}" }}
rpm = 100
tpm = 50000
"""
    )
    return path


def table(out: str) -> list[list[str]]:
    """The rows of the routes table, split on runs of two spaces or more."""
    import re

    lines = out.splitlines()
    assert set(lines[1].replace(" ", "")) == {"-"}
    return [re.split(r"\s{2,}", line.strip()) for line in [lines[0], *lines[2:]]]


def test_routes_table_from_a_config_file(
    glob: ProviderRegistry,
    server: OpenAICompatibleServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = config(tmp_path, server.base_url, closed_url())
    assert main(["routes", "--config", str(path)]) == 0
    header, first, second = table(capsys.readouterr().out)
    assert header == [
        "route", "#", "provider", "model", "circuit", "closes in s", "in flight",
        "rpm left", "tpm left", "latency",
    ]  # fmt: skip
    assert first == ["chat", "0", "openai", "down-m", "closed", "-", "0", "-", "-", "-"]
    assert second == ["chat", "1", "openai", "up-m", "closed", "-", "0", "100", "50000", "-"]

    # a call fails over from the server that is down: its circuit opens (failures=1)
    assert chatmodels.new_registry_provider("chat").invoke("hi").text == "Echo: hi"
    assert main(["routes", "chat", "--config", str(path)]) == 0  # reloading replaces it
    _, first, second = table(capsys.readouterr().out)
    assert first[:5] == ["chat", "0", "openai", "down-m", "closed"]  # a fresh route

    assert main(["routes"]) == 0  # without a file: what is registered
    _, first, second = table(capsys.readouterr().out)
    assert first[4] == "closed"
    chatmodels.new_registry_provider("chat").invoke("hi")
    assert main(["routes"]) == 0
    _, first, second = table(capsys.readouterr().out)
    assert first[4] == "open"
    assert 29.0 <= float(first[5]) <= 30.0
    assert second[4] == "closed"
    assert second[7] == "99"  # one request of the window used
    assert int(second[8]) < 50000
    assert second[9].endswith(" ms")


def test_routes_reads_chatmodels_config(
    glob: ProviderRegistry,
    server: OpenAICompatibleServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATMODELS_CONFIG", str(config(tmp_path, server.base_url, closed_url())))
    assert main(["routes"]) == 0
    rows = table(capsys.readouterr().out)[1:]
    assert [(r[0], r[3]) for r in rows] == [("chat", "down-m"), ("chat", "up-m")]


def test_routes_lists_every_route_and_only_routes(
    glob: ProviderRegistry, server: OpenAICompatibleServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["routes"]) == 0
    assert capsys.readouterr().out.startswith("no routes registered")
    opts = {"model": "m", "api_key": "sk-test", "base_url": server.base_url}
    chatmodels.register_route("a", [Deployment("openai", opts)])
    chatmodels.register_route(
        "b", [Deployment("openai", opts), Deployment("a")], breaker=Breaker(failures=2)
    )
    assert main(["routes"]) == 0
    rows = table(capsys.readouterr().out)[1:]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("a", "0", "openai"),
        ("b", "0", "openai"),
        ("b", "1", "a"),
    ]
    assert main(["routes", "openai"]) == 2
    assert "not a route" in capsys.readouterr().err


def test_a_bad_config_file_exits_2_naming_the_key(
    glob: ProviderRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[routes.chat]\nstrategy = "fastest"\n[[routes.chat.deployments]]\n'
                    'provider = "openai"\n')  # fmt: skip
    assert main(["routes", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "code=invalid_config" in err
    assert "strategy" in err


def test_health_covers_each_routes_deployments(
    glob: ProviderRegistry,
    server: OpenAICompatibleServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = config(tmp_path, server.base_url, closed_url())
    assert main(["health", "chat", "--config", str(path), "--timeout", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["chat", "degraded"],
        ["0:openai/down-m", "unhealthy"],
        ["1:openai/up-m", "healthy"],
    ]
    assert lines[1].startswith("  0:openai/down-m")
    assert "code=network" in lines[1]
    assert "ms" in lines[2]
    assert "0:openai/down-m: unhealthy" not in lines[0]  # each deployment on its own line

    # a route whose every deployment is down is unhealthy: exit status 1
    dead = {"model": "x", "api_key": "k", "base_url": closed_url()}
    chatmodels.register_route("dead", [Deployment("openai", dead)])
    assert main(["health", "dead", "--timeout", "2"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["dead", "unhealthy"],
        ["0:openai/x", "unhealthy"],
    ]


def test_check_config_validates_a_file_without_registering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-check")
    good = tmp_path / "good.toml"
    good.write_text(
        "[routes.chat]\n[[routes.chat.deployments]]\nprovider = 'openai'\n"
        "options = { model = 'm' }\n"
    )
    assert main(["check-config", str(good)]) == 0
    assert "ok, 1 route(s): chat" in capsys.readouterr().out
    assert not chatmodels.is_provider_registered("chat")
    bad = tmp_path / "bad.toml"
    bad.write_text("[routes.chat]\n[[routes.chat.deployments]]\nprovider = 'opnai'\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "routes.chat.deployments[0].provider" in err
    assert "did you mean 'openai'" in err
