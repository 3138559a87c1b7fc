"""pytest-benchmark suite for the registry: `pytest benches --benchmark-only`.

Groups put the Rust core, the pure-Python twin and the Lock+dict baseline side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import chatmodels
import pytest
from chatmodels import ChatModel, ProviderMetadata, ProviderOptions, ProviderRegistry
from chatmodels._global import _swap_global_registry

_META = ProviderMetadata(name="openai", capabilities=["chat", "streaming"])


class _Trivial(ChatModel):
    pass


def _creator(options: ProviderOptions) -> ChatModel:
    return _Trivial(_META, options)


@pytest.fixture(params=["rust", "python"])
def global_registry(request: pytest.FixtureRequest) -> Iterator[ProviderRegistry]:
    registry = ProviderRegistry(backend=request.param)
    registry.register("openai", _creator, metadata=_META)
    for i in range(99):
        registry.register(f"p{i:03d}", _creator, metadata={"capabilities": ["chat"]})
    previous = _swap_global_registry(registry)
    yield registry
    _swap_global_registry(previous)


@pytest.mark.benchmark(group="resolve")
def test_resolve(benchmark, global_registry: ProviderRegistry) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(chatmodels.is_provider_registered, "openai") is True


@pytest.mark.benchmark(group="resolve")
def test_resolve_baseline_locked_dict(benchmark) -> None:  # type: ignore[no-untyped-def]
    lock = threading.Lock()
    table = {"openai": object()}

    def contains(name: str) -> bool:
        with lock:
            return name in table

    assert benchmark(contains, "openai") is True


@pytest.mark.benchmark(group="metadata")
def test_get_metadata(benchmark, global_registry: ProviderRegistry) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(chatmodels.get_provider_metadata, "openai") is _META


@pytest.mark.benchmark(group="create")
def test_create(benchmark, global_registry: ProviderRegistry) -> None:  # type: ignore[no-untyped-def]
    model = benchmark(chatmodels.new_registry_provider, "openai")
    assert isinstance(model, _Trivial)


@pytest.mark.benchmark(group="create")
def test_create_baseline_creator_alone(benchmark) -> None:  # type: ignore[no-untyped-def]
    options = ProviderOptions()
    assert isinstance(benchmark(_creator, options), _Trivial)


@pytest.mark.benchmark(group="list-100")
def test_list(benchmark, global_registry: ProviderRegistry) -> None:  # type: ignore[no-untyped-def]
    assert len(benchmark(chatmodels.list_providers)) == 100


@pytest.mark.benchmark(group="capability-100")
def test_by_capability(benchmark, global_registry: ProviderRegistry) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(chatmodels.get_providers_by_capability, "streaming") == ["openai"]
