"""The `chatmodels` command: the providers table, chat against a loopback server, health exit
codes, and `python -m chatmodels` in a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import chatmodels
import pytest
from chatmodels import Capability, ChatModel, ProviderMetadata, ProviderOptions
from chatmodels.__main__ import main
from chatmodels.testing import OpenAICompatibleServer, ScriptedError, ScriptedReply


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer() as srv:
        yield srv


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def local_providers(server: OpenAICompatibleServer) -> Iterator[tuple[str, str]]:
    """Two providers in the global registry: one answering on loopback, one refused."""
    names = ("cli-test-up", "cli-test-down")
    urls = (server.base_url, f"http://127.0.0.1:{_closed_port()}/v1")
    for name, url in zip(names, urls, strict=True):

        def creator(options: ProviderOptions, url: str = url) -> ChatModel:
            return chatmodels.new_registry_provider(
                "openai_compatible", {"base_url": url, "model": "test-model"}
            )

        meta = ProviderMetadata(
            name=name, capabilities=frozenset({Capability.CHAT}), supports_health_check=True
        )
        chatmodels.register_global(name, creator, metadata=meta)
    try:
        yield names
    finally:
        for name in names:
            chatmodels.unregister_provider(name)


def _row(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.split()[:1] == [name])


def test_providers_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test-key")
    assert main(["providers"]) == 0
    out = capsys.readouterr().out
    header, rule = out.splitlines()[:2]
    assert header.split() == ["provider", "capabilities", "default", "model", "API", "key"]
    assert set(rule.replace(" ", "")) == {"-"}
    names = [line.split()[0] for line in out.splitlines()[2:]]
    assert names == chatmodels.list_providers()
    openai = _row(out, "openai")
    assert "gpt-4o-mini" in openai
    assert "tool_calling" in openai
    assert "streaming" in openai
    assert openai.endswith("unset (OPENAI_API_KEY)")
    assert _row(out, "groq").endswith("set")
    assert "gsk-test-key" not in out  # whether a key is set, never the key
    assert _row(out, "fake").endswith("not needed")


def test_chat_streams_a_reply(
    server: OpenAICompatibleServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(ScriptedReply(text="Hello from the loopback server."))
    argv = ["chat", "-p", "openai_compatible", "--base-url", server.base_url, "-m", "test-model"]
    assert main([*argv, "Hi there"]) == 0
    assert capsys.readouterr().out == "Hello from the loopback server.\n"
    sent = server.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json["stream"] is True
    assert sent.json["model"] == "test-model"
    assert sent.json["messages"] == [{"role": "user", "content": "Hi there"}]


def test_chat_error_exits_2_with_the_code(
    server: OpenAICompatibleServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(ScriptedError(401, "Incorrect API key provided.", code="invalid_api_key"))
    argv = ["chat", "-p", "openai_compatible", "--base-url", server.base_url, "-m", "m", "hi"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert "code=authentication" in captured.err
    assert "Incorrect API key provided." in captured.err


def test_chat_unknown_provider(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "-p", "no-such-provider", "hi"]) == 2
    assert "code=provider_not_found" in capsys.readouterr().err


def test_health_exit_codes(
    local_providers: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    up, down = local_providers
    assert main(["health", up, "fake"]) == 0
    out = capsys.readouterr().out
    assert _row(out, up).split()[1] == "healthy"
    assert _row(out, "fake").split()[1] == "healthy"

    assert main(["health", up, down, "--timeout", "2"]) == 1
    out = capsys.readouterr().out
    assert _row(out, up).split()[1] == "healthy"
    assert _row(out, down).split()[1] == "unhealthy"
    assert "code=network" in _row(out, down)


def test_health_of_an_unknown_provider_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "no-such-provider"]) == 1
    row = _row(capsys.readouterr().out, "no-such-provider")
    assert "unhealthy" in row
    assert "code=provider_not_found" in row


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["chat", "hi"])  # -p is required
    assert exited.value.code == 2
    assert "--provider" in capsys.readouterr().err


def test_python_m_chatmodels_providers() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chatmodels", "providers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("provider")
    assert {"openai", "openai_compatible", "fake"} <= {line.split()[0] for line in lines[2:]}
