"""ProviderRegistry methods: register, replace, unregister, resolve, list and capability queries.

Every test runs on both backends through the `registry` fixture.
"""

from __future__ import annotations

import pytest
from chatmodels import (
    Capability,
    ChatModel,
    InvalidConfigError,
    ProviderAlreadyRegisteredError,
    ProviderMetadata,
    ProviderNotFoundError,
    ProviderOptions,
    ProviderRegistry,
    _backend,
)
from helpers import EchoModel, check_error, echo_creator, make_creator, snapshot


def test_backend_attribute_and_repr(registry: ProviderRegistry, backend: str) -> None:
    assert registry.backend == backend
    assert repr(registry) == f"<ProviderRegistry backend={backend!r} providers=0>"
    registry.register("openai", echo_creator)
    assert repr(registry) == f"<ProviderRegistry backend={backend!r} providers=1>"


def test_backend_table_class(registry: ProviderRegistry, backend: str) -> None:
    table = registry._table
    if backend == "rust":
        assert type(table).__module__ == "chatmodels._core"
    else:
        assert type(table).__module__ == "chatmodels._pytable"
    assert type(table) is _backend.table_class(backend)  # type: ignore[arg-type]


def test_empty_registry(registry: ProviderRegistry) -> None:
    assert registry.names() == []
    assert len(registry) == 0
    assert registry.version == 0
    assert registry.is_registered("openai") is False
    assert registry.by_capability("chat") == []


def test_register_without_metadata_stores_defaults(registry: ProviderRegistry) -> None:
    meta = registry.register("openai", echo_creator)
    assert meta == ProviderMetadata(name="openai")
    assert meta.capabilities == frozenset({Capability.CHAT})
    assert registry.metadata("openai") is meta
    assert registry.is_registered("openai") is True
    assert "openai" in registry
    assert registry.names() == ["openai"]
    assert len(registry) == 1


def test_register_with_metadata_object(registry: ProviderRegistry) -> None:
    meta = ProviderMetadata(name="anthropic", capabilities=["chat", "vision"], version="3")
    assert registry.register("anthropic", echo_creator, metadata=meta) is meta
    assert registry.metadata("anthropic") is meta


def test_register_with_metadata_mapping(registry: ProviderRegistry) -> None:
    meta = registry.register(
        "ollama",
        echo_creator,
        metadata={"capabilities": ["chat", "streaming"], "models": ["llama3"]},
    )
    assert isinstance(meta, ProviderMetadata)
    assert meta.name == "ollama"
    assert meta.capabilities == {Capability.CHAT, Capability.STREAMING}
    assert meta.models == ("llama3",)
    assert registry.metadata("ollama") == meta


def test_metadata_object_with_another_name_is_refused(registry: ProviderRegistry) -> None:
    with pytest.raises(InvalidConfigError) as info:
        registry.register("openai", echo_creator, metadata=ProviderMetadata(name="other"))
    check_error(
        info.value,
        InvalidConfigError,
        op="register",
        code="invalid_config",
        detail="metadata.name 'other' does not match the provider name 'openai'",
        provider="openai",
    )
    assert registry.names() == []
    assert registry.version == 0


def test_metadata_mapping_with_another_name_is_refused(registry: ProviderRegistry) -> None:
    # The mapping form must not rename the provider behind the caller's back: it is refused
    # exactly like a ProviderMetadata whose name differs.
    with pytest.raises(InvalidConfigError) as info:
        registry.register("openai", echo_creator, metadata={"name": "other"})
    check_error(info.value, InvalidConfigError, op="register", code="invalid_config")
    assert "'other'" in str(info.value)
    assert registry.names() == []
    assert registry.version == 0


def test_metadata_mapping_with_the_same_name_is_accepted(registry: ProviderRegistry) -> None:
    meta = registry.register("openai", echo_creator, metadata={"name": "openai"})
    assert meta.name == "openai"


def test_duplicate_without_replace(registry: ProviderRegistry) -> None:
    first = registry.register("openai", echo_creator)
    before = snapshot(registry)
    with pytest.raises(ProviderAlreadyRegisteredError) as info:
        registry.register("openai", make_creator())
    check_error(
        info.value,
        ProviderAlreadyRegisteredError,
        op="register",
        code="provider_already_registered",
        detail="provider 'openai' is already registered; pass replace=True to swap it",
        provider="openai",
    )
    assert snapshot(registry) == before
    assert registry.metadata("openai") is first


def test_replace_swaps_creator_and_metadata(registry: ProviderRegistry) -> None:
    old_meta = ProviderMetadata(name="openai", version="1")
    new_meta = ProviderMetadata(name="openai", version="2", capabilities=["chat", "streaming"])

    class Old(EchoModel):
        pass

    class New(EchoModel):
        pass

    registry.register("openai", lambda o: Old(old_meta, o), metadata=old_meta)
    version = registry.version
    assert registry.by_capability(Capability.STREAMING) == []
    assert registry.register("openai", lambda o: New(new_meta, o), metadata=new_meta, replace=True)
    assert registry.version > version
    assert registry.metadata("openai") is new_meta
    assert type(registry.create("openai")) is New
    assert registry.by_capability(Capability.STREAMING) == ["openai"]
    assert registry.names() == ["openai"]


def test_replace_of_an_absent_name_registers_it(registry: ProviderRegistry) -> None:
    registry.register("openai", echo_creator, replace=True)
    assert registry.names() == ["openai"]


@pytest.mark.parametrize("flag", [1, "yes", None])
def test_replace_must_be_a_bool(registry: ProviderRegistry, flag: object) -> None:
    with pytest.raises(InvalidConfigError) as info:
        registry.register("openai", echo_creator, replace=flag)  # type: ignore[arg-type]
    check_error(
        info.value,
        InvalidConfigError,
        op="register",
        code="invalid_config",
        detail="replace must be a bool",
    )
    assert registry.version == 0


def test_unregister(registry: ProviderRegistry) -> None:
    registry.register("openai", echo_creator)
    registry.register("anthropic", echo_creator)
    version = registry.version
    registry.unregister("openai")
    assert registry.version > version
    assert registry.names() == ["anthropic"]
    assert registry.is_registered("openai") is False
    assert "openai" not in registry
    with pytest.raises(ProviderNotFoundError):
        registry.metadata("openai")


def test_unregister_unknown_suggests(registry: ProviderRegistry) -> None:
    registry.register("openai", echo_creator)
    before = snapshot(registry)
    with pytest.raises(ProviderNotFoundError) as info:
        registry.unregister("opneai")
    check_error(
        info.value,
        ProviderNotFoundError,
        op="unregister",
        code="provider_not_found",
        detail="provider 'opneai' is not registered; did you mean 'openai'?",
        provider="opneai",
    )
    assert snapshot(registry) == before


def test_unregister_then_register_again(registry: ProviderRegistry) -> None:
    registry.register("openai", echo_creator)
    registry.unregister("openai")
    meta = registry.register("openai", echo_creator, metadata={"version": "2"})
    assert registry.metadata("openai") is meta


def test_metadata_unknown_without_a_close_name(registry: ProviderRegistry) -> None:
    registry.register("openai", echo_creator)
    with pytest.raises(ProviderNotFoundError) as info:
        registry.metadata("zzzzzz")
    check_error(
        info.value,
        ProviderNotFoundError,
        op="metadata",
        code="provider_not_found",
        detail="provider 'zzzzzz' is not registered",
    )
    assert isinstance(info.value, LookupError)


def test_suggestion_picks_the_closest_name(registry: ProviderRegistry) -> None:
    for name in ("anthropic", "openai", "ollama", "mistral"):
        registry.register(name, echo_creator)
    with pytest.raises(ProviderNotFoundError, match="did you mean 'ollama'"):
        registry.create("olama")
    with pytest.raises(ProviderNotFoundError, match="did you mean 'anthropic'"):
        registry.metadata("antropic")


def test_names_are_sorted(registry: ProviderRegistry) -> None:
    for name in ("zeta", "alpha", "Mid", "beta", "éclair", "_x"):
        registry.register(name, echo_creator)
    assert registry.names() == sorted(["zeta", "alpha", "Mid", "beta", "éclair", "_x"])
    assert len(registry) == 6


def test_names_returns_a_fresh_list(registry: ProviderRegistry) -> None:
    registry.register("openai", echo_creator)
    names = registry.names()
    names.append("mutated")
    assert registry.names() == ["openai"]


def test_by_capability(registry: ProviderRegistry) -> None:
    registry.register("b-stream", echo_creator, metadata={"capabilities": ["chat", "streaming"]})
    registry.register("a-stream", echo_creator, metadata={"capabilities": ["streaming"]})
    registry.register("vision", echo_creator, metadata={"capabilities": ["vision", "chat"]})
    registry.register("embed", echo_creator, metadata={"capabilities": []})
    assert registry.by_capability(Capability.STREAMING) == ["a-stream", "b-stream"]
    assert registry.by_capability("streaming") == ["a-stream", "b-stream"]
    assert registry.by_capability("chat") == ["b-stream", "vision"]
    assert registry.by_capability(Capability.VISION) == ["vision"]
    assert registry.by_capability("embeddings") == []


def test_every_capability_has_its_own_bit(registry: ProviderRegistry) -> None:
    for cap in Capability:
        registry.register(f"only-{cap.value}", echo_creator, metadata={"capabilities": [cap]})
    registry.register("all", echo_creator, metadata={"capabilities": list(Capability)})
    for cap in Capability:
        assert registry.by_capability(cap) == ["all", f"only-{cap.value}"]


def test_by_capability_unknown_suggests(registry: ProviderRegistry) -> None:
    with pytest.raises(InvalidConfigError) as info:
        registry.by_capability("streamin")
    check_error(
        info.value,
        InvalidConfigError,
        op="by_capability",
        code="invalid_config",
        detail="unknown capability 'streamin'; did you mean 'streaming'?",
    )


@pytest.mark.parametrize("capability", [3, None, b"chat", ["chat"], "CHAT"])
def test_by_capability_wrong_type(registry: ProviderRegistry, capability: object) -> None:
    with pytest.raises(InvalidConfigError) as info:
        registry.by_capability(capability)  # type: ignore[arg-type]
    check_error(info.value, InvalidConfigError, op="by_capability", code="invalid_config")


def test_version_counts_writes_only(registry: ProviderRegistry) -> None:
    versions = [registry.version]
    registry.register("a", echo_creator)
    versions.append(registry.version)
    registry.register("a", echo_creator, replace=True)
    versions.append(registry.version)
    registry.register("b", echo_creator)
    versions.append(registry.version)
    registry.unregister("a")
    versions.append(registry.version)
    assert versions == sorted(set(versions)), versions
    # reads leave it alone
    registry.names()
    registry.is_registered("b")
    registry.metadata("b")
    registry.by_capability("chat")
    registry.create("b")
    assert registry.version == versions[-1]


def test_clear(registry: ProviderRegistry) -> None:
    registry.register("a", echo_creator)
    registry.register("b", echo_creator)
    version = registry.version
    registry.clear()
    assert registry.names() == []
    assert len(registry) == 0
    assert registry.version > version
    registry.register("a", echo_creator)
    assert registry.names() == ["a"]


def test_create_runs_the_creator_with_validated_options(registry: ProviderRegistry) -> None:
    seen: list[ProviderOptions] = []
    meta = ProviderMetadata(name="openai", default_model="gpt-x")

    def creator(options: ProviderOptions) -> ChatModel:
        seen.append(options)
        return EchoModel(meta, options)

    registry.register("openai", creator, metadata=meta)
    model = registry.create("openai", {"temperature": 0.5})
    assert isinstance(model, EchoModel)
    assert model.provider == "openai"
    assert model.model == "gpt-x"
    assert len(seen) == 1
    assert isinstance(seen[0], ProviderOptions)
    assert seen[0].temperature == 0.5
    assert seen[0].model == "gpt-x"  # the metadata's default model fills in


def test_create_accepts_provider_options(registry: ProviderRegistry) -> None:
    registry.register("openai", echo_creator)
    model = registry.create("openai", ProviderOptions(model="m", seed=7))
    assert model.options.model == "m"
    assert model.options.seed == 7


def test_create_unknown_suggests(registry: ProviderRegistry) -> None:
    registry.register("anthropic", echo_creator)
    with pytest.raises(ProviderNotFoundError) as info:
        registry.create("anthropc")
    check_error(
        info.value,
        ProviderNotFoundError,
        op="create",
        code="provider_not_found",
        detail="provider 'anthropc' is not registered; did you mean 'anthropic'?",
    )


def test_str_subclass_names_are_plain_names(registry: ProviderRegistry) -> None:
    class Name(str):
        pass

    registry.register(Name("openai"), echo_creator)
    assert registry.names() == ["openai"]
    assert type(registry.names()[0]) is str
    assert registry.is_registered(Name("openai")) is True
    assert registry.metadata(Name("openai")).name == "openai"


def test_contains_is_false_for_non_str(registry: ProviderRegistry) -> None:
    registry.register("openai", echo_creator)
    assert 5 not in registry
    assert None not in registry
    assert b"openai" not in registry


def test_registries_are_isolated(backend: str) -> None:
    one = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    two = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    one.register("openai", echo_creator)
    assert two.names() == []
    assert two.version == 0


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(InvalidConfigError) as info:
        ProviderRegistry(backend="cobol")  # type: ignore[arg-type]
    check_error(
        info.value,
        InvalidConfigError,
        op="backend",
        code="invalid_config",
        detail="unknown backend 'cobol'; use 'rust' or 'python'",
    )


def test_many_providers(registry: ProviderRegistry) -> None:
    names = [f"p{i:04d}" for i in range(1000)]
    for i, name in enumerate(names):
        caps = ["chat", "streaming"] if i % 3 == 0 else ["chat"]
        registry.register(name, echo_creator, metadata={"capabilities": caps})
    assert registry.names() == names
    assert registry.by_capability("streaming") == names[::3]
    assert registry.version == 1000
    for name in names[::2]:
        registry.unregister(name)
    assert registry.names() == names[1::2]
    assert registry.version == 1500
