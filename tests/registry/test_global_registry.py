"""The module-level functions on the global registry, its lazy thread-safe creation, and the
backend selection (`CHATMODELS_BACKEND`, `chatmodels.backend()`) in fresh processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import chatmodels
import pytest
from chatmodels import (
    Capability,
    InvalidConfigError,
    ProviderMetadata,
    ProviderNotFoundError,
    ProviderRegistry,
    _backend,
    _global,
)
from helpers import EchoModel, check_error, echo_creator, make_creator


def test_get_global_registry_is_the_installed_one(
    global_registry: ProviderRegistry, backend: str
) -> None:
    assert chatmodels.get_global_registry() is global_registry
    assert chatmodels.get_global_registry() is chatmodels.get_global_registry()
    assert global_registry.backend == backend


def test_register_global_and_resolve(global_registry: ProviderRegistry) -> None:
    meta = chatmodels.register_global(
        "openai", echo_creator, metadata={"capabilities": ["chat", "streaming"]}
    )
    assert isinstance(meta, ProviderMetadata)
    assert meta.name == "openai"
    assert chatmodels.is_provider_registered("openai") is True
    assert chatmodels.is_provider_registered("anthropic") is False
    assert chatmodels.get_provider_metadata("openai") is meta
    assert chatmodels.list_providers() == ["openai"]
    assert chatmodels.get_providers_by_capability("streaming") == ["openai"]
    assert chatmodels.get_providers_by_capability(Capability.VISION) == []
    # the functions and the registry object see the same table
    assert global_registry.names() == ["openai"]
    assert global_registry.metadata("openai") is meta


def test_register_global_with_metadata(global_registry: ProviderRegistry) -> None:
    meta = ProviderMetadata(name="anthropic", capabilities=["chat", "vision"], version="2")
    assert chatmodels.register_global_with_metadata("anthropic", echo_creator, meta) is meta
    assert chatmodels.get_provider_metadata("anthropic") is meta
    assert chatmodels.get_providers_by_capability("vision") == ["anthropic"]


def test_replace_through_the_global_functions(global_registry: ProviderRegistry) -> None:
    one = ProviderMetadata(name="p", version="1")
    two = ProviderMetadata(name="p", version="2")
    chatmodels.register_global("p", make_creator(one), metadata=one)
    chatmodels.register_global_with_metadata("p", make_creator(two), two, replace=True)
    assert chatmodels.get_provider_metadata("p") is two
    assert chatmodels.new_registry_provider("p").metadata is two
    chatmodels.register_global("p", make_creator(one), metadata=one, replace=True)
    assert chatmodels.new_registry_provider("p").metadata is one


def test_new_registry_provider(global_registry: ProviderRegistry) -> None:
    chatmodels.register_global("echo", echo_creator)
    model = chatmodels.new_registry_provider("echo", {"model": "m", "seed": 1}, creation_timeout=10)
    assert isinstance(model, EchoModel)
    assert (model.options.model, model.options.seed) == ("m", 1)


def test_anew_registry_provider(global_registry: ProviderRegistry) -> None:
    chatmodels.register_global("echo", echo_creator)
    model = asyncio.run(chatmodels.anew_registry_provider("echo", {"model": "m"}))
    assert isinstance(model, EchoModel)
    assert model.options.model == "m"


def test_unregister_provider(global_registry: ProviderRegistry) -> None:
    chatmodels.register_global("a", echo_creator)
    chatmodels.register_global("b", echo_creator)
    chatmodels.unregister_provider("a")
    assert chatmodels.list_providers() == ["b"]
    assert chatmodels.is_provider_registered("a") is False
    with pytest.raises(ProviderNotFoundError) as info:
        chatmodels.unregister_provider("a")
    check_error(
        info.value,
        ProviderNotFoundError,
        op="unregister_provider",
        code="provider_not_found",
        detail="provider 'a' is not registered",
    )


def test_list_providers_is_sorted(global_registry: ProviderRegistry) -> None:
    for name in ("mistral", "anthropic", "openai", "bedrock"):
        chatmodels.register_global(name, echo_creator)
    assert chatmodels.list_providers() == ["anthropic", "bedrock", "mistral", "openai"]


def test_get_provider_metadata_unknown_suggests(global_registry: ProviderRegistry) -> None:
    chatmodels.register_global("openai", echo_creator)
    with pytest.raises(ProviderNotFoundError) as info:
        chatmodels.get_provider_metadata("openal")
    check_error(
        info.value,
        ProviderNotFoundError,
        op="get_provider_metadata",
        code="provider_not_found",
        detail="provider 'openal' is not registered; did you mean 'openai'?",
        provider="openal",
    )


def test_get_providers_by_capability_unknown(global_registry: ProviderRegistry) -> None:
    with pytest.raises(InvalidConfigError) as info:
        chatmodels.get_providers_by_capability("tool_caling")
    check_error(
        info.value,
        InvalidConfigError,
        op="get_providers_by_capability",
        code="invalid_config",
        detail="unknown capability 'tool_caling'; did you mean 'tool_calling'?",
    )


def test_swapping_the_global_registry_redirects_every_function(backend: str) -> None:
    first = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    second = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    first.register("only-in-first", echo_creator)
    previous = _global._swap_global_registry(first)
    try:
        assert chatmodels.is_provider_registered("only-in-first") is True
        assert _global._swap_global_registry(second) is first
        assert chatmodels.is_provider_registered("only-in-first") is False
        assert chatmodels.list_providers() == []
        with pytest.raises(ProviderNotFoundError):
            chatmodels.get_provider_metadata("only-in-first")
    finally:
        _global._swap_global_registry(previous)


@pytest.fixture
def no_global_registry(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No global registry yet; the one created on first use is of the backend under test."""
    monkeypatch.setattr(_backend, "_ACTIVE", backend)
    previous = _global._swap_global_registry(None)
    try:
        yield
    finally:
        _global._swap_global_registry(previous)


@pytest.mark.usefixtures("no_global_registry")
@pytest.mark.parametrize(
    "first_use",
    [
        chatmodels.get_global_registry,
        chatmodels.list_providers,
        lambda: chatmodels.is_provider_registered("x"),
        lambda: chatmodels.get_providers_by_capability("chat"),
        lambda: chatmodels.register_global("x", echo_creator),
    ],
    ids=["get_global_registry", "list", "is_registered", "by_capability", "register"],
)
def test_global_registry_is_created_on_first_use(backend: str, first_use: object) -> None:
    assert _global._global is None
    first_use()  # type: ignore[operator]
    created = _global._global
    assert isinstance(created, ProviderRegistry)
    assert created.backend == backend
    assert chatmodels.get_global_registry() is created


@pytest.mark.usefixtures("no_global_registry")
def test_global_registry_is_created_once_under_contention(monkeypatch: pytest.MonkeyPatch) -> None:
    populations = []
    real_populate = _global._populate

    def counting_populate(registry: ProviderRegistry) -> None:
        populations.append(registry)
        real_populate(registry)

    monkeypatch.setattr(_global, "_populate", counting_populate)
    start = threading.Barrier(16)
    seen: list[ProviderRegistry] = []

    def use() -> None:
        start.wait()
        seen.append(chatmodels.get_global_registry())

    threads = [threading.Thread(target=use) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 16
    assert len({id(r) for r in seen}) == 1
    assert len(populations) == 1


# -- backend selection, each in a fresh interpreter -----------------------------------------


def run_python(code: str, backend: str | None, *flags: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("CHATMODELS_BACKEND", None)
    env.pop("PYTHONWARNINGS", None)
    if backend is not None:
        env["CHATMODELS_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_rust_extension_is_built_and_is_the_default() -> None:
    # The test command builds the extension: if it is missing, this fails (it is not skipped).
    done = run_python(
        """
        import chatmodels, chatmodels._core
        registry = chatmodels.ProviderRegistry()
        print(chatmodels.backend(), registry.backend, type(registry._table).__module__)
        """,
        None,
        "-W",
        "error",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["rust", "rust", "chatmodels._core"]
    assert done.stderr == ""


@pytest.mark.parametrize("value", ["python", "PYTHON", " python "])
def test_backend_python_selected(value: str) -> None:
    done = run_python(
        """
        import chatmodels
        registry = chatmodels.ProviderRegistry()
        print(chatmodels.backend(), registry.backend, type(registry._table).__module__)
        """,
        value,
        "-W",
        "error",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["python", "python", "chatmodels._pytable"]


@pytest.mark.parametrize("value", ["rust", "Rust", ""])
def test_backend_rust_selected(value: str) -> None:
    done = run_python(
        """
        import chatmodels
        print(chatmodels.backend(), type(chatmodels.get_global_registry()._table).__module__)
        """,
        value,
        "-W",
        "error",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["rust", "chatmodels._core"]


def test_backend_garbage_warns_and_uses_the_default() -> None:
    done = run_python(
        """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import chatmodels
        print(chatmodels.backend())
        for w in caught:
            print(w.category.__name__, w.message, sep="|")
        """,
        "Garbage",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "rust"
    assert lines[1:] == [
        "RuntimeWarning|CHATMODELS_BACKEND='garbage' is not 'rust' or 'python'; using the default"
    ]


def test_missing_extension_falls_back_with_one_warning() -> None:
    done = run_python(
        """
        import sys, warnings
        sys.modules["chatmodels._core"] = None  # makes `import chatmodels._core` fail
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import chatmodels
            registry = chatmodels.ProviderRegistry()
            chatmodels.register_global("p", lambda o: None)
        print(chatmodels.backend(), type(registry._table).__module__)
        for w in caught:
            print(w.category.__name__, w.message, sep="|")
        """,
        None,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "python chatmodels._pytable"
    assert lines[1:] == [
        "RuntimeWarning|the chatmodels Rust extension is not available; "
        "using the pure-Python backend"
    ]


def test_missing_extension_with_rust_requested_explicitly() -> None:
    done = run_python(
        """
        import sys, warnings
        sys.modules["chatmodels._core"] = None
        warnings.simplefilter("ignore")
        import chatmodels
        print(chatmodels.backend())
        try:
            chatmodels.ProviderRegistry(backend="rust")
        except chatmodels.InvalidConfigError as exc:
            print(exc.code.value)
        """,
        "rust",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["python", "invalid_config"]
