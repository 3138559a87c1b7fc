"""ProviderMetadata (frozen, normalised), ProviderOptions (validated against the metadata) and
the API key as a secret that never shows itself."""

from __future__ import annotations

import dataclasses
import logging
import pickle
import types
from collections.abc import Callable
from typing import Any

import chatmodels
import pytest
from chatmodels import (
    Capability,
    ChatModel,
    CreationError,
    InvalidConfigError,
    ProviderMetadata,
    ProviderOptions,
    ProviderRegistry,
    Secret,
)
from helpers import EchoModel, check_error, echo_creator, snapshot

SECRET = "sk-test-0123456789abcdef"

# -- ProviderMetadata ------------------------------------------------------------------------


def test_metadata_defaults() -> None:
    meta = ProviderMetadata(name="p")
    assert meta.description == ""
    assert meta.version == "0"
    assert meta.capabilities == frozenset({Capability.CHAT})
    assert meta.gen_ai_provider_name is None
    assert meta.default_model is None
    assert meta.models == ()
    assert meta.required_options == ()
    assert meta.optional_options == ()
    assert meta.supports_health_check is False
    assert meta.default_timeout is None
    assert meta.max_retries == 2
    assert dict(meta.provider_specific) == {}
    assert all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(ProviderMetadata)
        if f.name != "name"
    )


def test_metadata_is_frozen() -> None:
    meta = ProviderMetadata(name="p")
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.name = "q"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.capabilities = frozenset()  # type: ignore[misc]


def test_metadata_lists_become_tuples() -> None:
    meta = ProviderMetadata(
        name="p", models=["a", "b"], required_options=["api_key"], optional_options=["region"]
    )
    assert meta.models == ("a", "b")
    assert meta.required_options == ("api_key",)
    assert meta.optional_options == ("region",)
    assert ProviderMetadata(name="p", models=("a", "b")) == meta.__class__(
        name="p", models=["a", "b"]
    )


def test_metadata_capabilities_accept_strings_and_members() -> None:
    meta = ProviderMetadata(name="p", capabilities=["chat", Capability.VISION, "streaming"])
    assert isinstance(meta.capabilities, frozenset)
    assert meta.capabilities == {Capability.CHAT, Capability.VISION, Capability.STREAMING}
    assert all(type(c) is Capability for c in meta.capabilities)
    assert meta.supports("vision")
    assert meta.supports(Capability.STREAMING)
    assert not meta.supports(Capability.AUDIO_INPUT)
    assert ProviderMetadata(name="p", capabilities=[]).capabilities == frozenset()
    assert ProviderMetadata(name="p", capabilities=("chat", "chat")).capabilities == {
        Capability.CHAT
    }


def test_metadata_capability_mask_has_one_bit_per_capability() -> None:
    bits = [c.bit for c in Capability]
    assert len(set(bits)) == len(bits) == 10
    assert all(b & (b - 1) == 0 for b in bits)
    meta = ProviderMetadata(name="p", capabilities=list(Capability))
    assert meta.capability_mask == sum(bits)


def test_capability_values() -> None:
    assert {c.value for c in Capability} == {
        "chat",
        "streaming",
        "tool_calling",
        "structured_output",
        "json_mode",
        "vision",
        "audio_input",
        "reasoning",
        "system_prompt",
        "embeddings",
    }
    assert str(Capability.TOOL_CALLING) == "tool_calling"
    assert Capability("json_mode") is Capability.JSON_MODE


def test_metadata_provider_specific_is_read_only() -> None:
    source = {"region": "eu"}
    meta = ProviderMetadata(name="p", provider_specific=source)
    assert isinstance(meta.provider_specific, types.MappingProxyType)
    with pytest.raises(TypeError):
        meta.provider_specific["region"] = "us"  # type: ignore[index]
    source["region"] = "us"
    assert meta.provider_specific["region"] == "eu"


def test_metadata_is_hashable_and_compares_by_value() -> None:
    one = ProviderMetadata(name="p", capabilities=["chat"], version="1")
    two = ProviderMetadata(name="p", capabilities=[Capability.CHAT], version="1")
    assert one == two
    assert hash(one) == hash(two)
    assert len({one, two}) == 1


def test_metadata_all_fields() -> None:
    meta = ProviderMetadata(
        name="bedrock",
        description="AWS Bedrock",
        version="1.2",
        capabilities=["chat", "tool_calling"],
        gen_ai_provider_name="aws.bedrock",
        default_model="claude",
        models=["claude", "llama"],
        required_options=["region"],
        optional_options=["profile"],
        supports_health_check=True,
        default_timeout=30,
        max_retries=5,
        provider_specific={"service": "bedrock-runtime"},
    )
    assert meta.gen_ai_provider_name == "aws.bedrock"
    assert meta.default_timeout == 30
    assert meta.max_retries == 5
    assert meta.provider_specific["service"] == "bedrock-runtime"


BAD_METADATA: list[tuple[str, dict[str, Any], str]] = [
    ("unknown capability", {"capabilities": ["chat", "telepathy"]}, "telepathy"),
    ("capabilities as one str", {"capabilities": "chat"}, "capabilities"),
    ("capabilities not iterable", {"capabilities": 5}, "int"),
    ("models as one str", {"models": "gpt"}, "models"),
    ("models with a non-str", {"models": ["a", 1]}, "models"),
    ("required_options with a non-str", {"required_options": [None]}, "required_options"),
    ("zero default_timeout", {"default_timeout": 0}, "default_timeout"),
    ("str default_timeout", {"default_timeout": "5"}, "default_timeout"),
    ("negative max_retries", {"max_retries": -1}, "max_retries"),
    ("bool max_retries", {"max_retries": True}, "max_retries"),
    ("provider_specific not a mapping", {"provider_specific": 5}, "int"),
    ("unknown field", {"colour": "red"}, "colour"),
    ("non-str description", {"description": 5}, "description"),
    ("non-str version", {"version": 2}, "version"),
    ("non-str gen_ai_provider_name", {"gen_ai_provider_name": 1}, "gen_ai_provider_name"),
    ("non-str default_model", {"default_model": ["gpt"]}, "default_model"),
    ("non-bool supports_health_check", {"supports_health_check": "yes"}, "supports_health_check"),
]


REGISTER: dict[str, Callable[[ProviderRegistry, dict[str, Any]], object]] = {
    "register": lambda r, m: r.register("newcomer", echo_creator, metadata=m),
    "register_global": lambda r, m: chatmodels.register_global(
        "newcomer", echo_creator, metadata=m
    ),
    "register_global_with_metadata": lambda r, m: chatmodels.register_global_with_metadata(
        "newcomer", echo_creator, m
    ),
}


@pytest.mark.parametrize(
    ("fields", "mentions"),
    [(f, m) for _, f, m in BAD_METADATA],
    ids=[i for i, _, _ in BAD_METADATA],
)
@pytest.mark.parametrize("op", ["register", "register_global", "register_global_with_metadata"])
def test_bad_metadata_mapping(
    global_registry: ProviderRegistry, op: str, fields: dict[str, Any], mentions: str
) -> None:
    global_registry.register("openai", echo_creator)
    before = snapshot(global_registry)
    with pytest.raises(InvalidConfigError) as info:
        REGISTER[op](global_registry, fields)
    check_error(info.value, InvalidConfigError, op=op, code="invalid_config", provider="newcomer")
    assert str(info.value).startswith(f"chatmodels.{op}: invalid metadata: ")
    assert mentions in str(info.value)
    assert isinstance(info.value.__cause__, (TypeError, ValueError))
    assert snapshot(global_registry) == before


@pytest.mark.parametrize(("fields", "mentions"), [(f, m) for _, f, m in BAD_METADATA])
def test_bad_metadata_object(fields: dict[str, Any], mentions: str) -> None:
    with pytest.raises((TypeError, ValueError), match=mentions):
        ProviderMetadata(name="p", **fields)


@pytest.mark.parametrize("metadata", [["chat"], 5, "openai"])
def test_metadata_of_the_wrong_type(registry: ProviderRegistry, metadata: object) -> None:
    with pytest.raises(InvalidConfigError) as info:
        registry.register("p", echo_creator, metadata=metadata)  # type: ignore[arg-type]
    check_error(
        info.value,
        InvalidConfigError,
        op="register",
        code="invalid_config",
        detail=f"metadata must be a ProviderMetadata or a mapping, got {type(metadata).__name__}",
    )
    assert registry.names() == []


def test_register_global_with_metadata_requires_metadata() -> None:
    with pytest.raises(TypeError):
        chatmodels.register_global_with_metadata("p", echo_creator)  # type: ignore[call-arg]


# -- ProviderOptions -------------------------------------------------------------------------


def test_options_defaults_and_fields() -> None:
    opts = ProviderOptions()
    assert (opts.model, opts.api_key, opts.base_url) == (None, None, None)
    assert (opts.enable_metrics, opts.enable_tracing, opts.enable_logging) == (True, True, True)
    assert dict(opts.provider_specific) == {}
    names = {f.name for f in dataclasses.fields(ProviderOptions)}
    assert names >= {
        "model",
        "api_key",
        "base_url",
        "timeout",
        "max_retries",
        "temperature",
        "max_tokens",
        "top_p",
        "stop",
        "seed",
        "enable_metrics",
        "enable_tracing",
        "enable_logging",
        "provider_specific",
    }


def test_options_are_frozen_and_normalised() -> None:
    opts = ProviderOptions(stop=["a", "b"], provider_specific={"x": 1})
    assert opts.stop == ("a", "b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.model = "m"  # type: ignore[misc]
    with pytest.raises(TypeError):
        opts.provider_specific["x"] = 2  # type: ignore[index]


def test_api_key_is_a_secret_everywhere() -> None:
    opts = ProviderOptions(api_key=SECRET, model="m")
    assert isinstance(opts.api_key, Secret)
    assert opts.api_key_value() == SECRET
    assert opts.api_key.get_secret_value() == SECRET
    shown = [repr(opts), str(opts), f"{opts}", repr(opts.api_key), str(opts.api_key)]
    shown.append(f"{opts.api_key}")
    shown.append(repr(opts.replace(model="n")))
    for text in shown:
        assert SECRET not in text
    assert "api_key=Secret(**********)" in repr(opts)
    assert "model='m'" in repr(opts)
    with pytest.raises(TypeError):
        pickle.dumps(opts)


def test_options_without_api_key_say_so() -> None:
    assert "api_key=None" in repr(ProviderOptions())


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("model", "", "a non-empty str"),
        ("api_key", 5, "a str that can be sent in an HTTP header (latin-1, no control characters)"),
        ("base_url", "ftp://x", "an http:// or https:// URL"),
        ("timeout", -1, "a positive number of seconds"),
        ("max_retries", 101, "an int from 0 to 100"),
        ("temperature", "hot", "a number from 0 to 2"),
        ("temperature", 2.5, "a number from 0 to 2"),
        ("max_tokens", 0, "a positive int"),
        ("top_p", 1.5, "a number from 0 to 1"),
        ("stop", [1], "a str or a list of str"),
        ("seed", 1.5, "an int"),
        ("enable_metrics", "yes", "a bool"),
        ("provider_specific", 5, "a mapping"),
        ("provider_specific", "x", "a mapping"),
    ],
)
@pytest.mark.parametrize("op", ["create", "new_registry_provider"])
def test_option_of_the_wrong_type(
    global_registry: ProviderRegistry, op: str, field: str, value: object, expected: str
) -> None:
    global_registry.register("p", echo_creator)
    create = global_registry.create if op == "create" else chatmodels.new_registry_provider
    with pytest.raises(InvalidConfigError) as info:
        create("p", {"api_key": SECRET, field: value})
    check_error(
        info.value,
        InvalidConfigError,
        op=op,
        code="invalid_config",
        detail=f"option {field!r} must be {expected}, got {type(value).__name__}",
        provider="p",
    )
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


@pytest.mark.parametrize("op", ["create", "new_registry_provider"])
def test_unknown_option_suggests(global_registry: ProviderRegistry, op: str) -> None:
    global_registry.register("p", echo_creator, metadata={"optional_options": ["region"]})
    before = snapshot(global_registry)
    create = global_registry.create if op == "create" else chatmodels.new_registry_provider
    with pytest.raises(InvalidConfigError) as info:
        create("p", {"temprature": 0.3, "api_key": SECRET})
    check_error(
        info.value,
        InvalidConfigError,
        op=op,
        code="invalid_config",
        detail="unknown option 'temprature' for provider 'p'; did you mean 'temperature'?",
        provider="p",
    )
    with pytest.raises(InvalidConfigError, match="did you mean 'region'"):
        create("p", {"regoin": "eu"})
    with pytest.raises(InvalidConfigError) as info:
        create("p", {"zzzzzz": 1})
    assert str(info.value) == (
        f"chatmodels.{op}: unknown option 'zzzzzz' for provider 'p' (code=invalid_config)"
    )
    assert snapshot(global_registry) == before


@pytest.mark.parametrize("op", ["create", "new_registry_provider"])
def test_missing_required_option(global_registry: ProviderRegistry, op: str) -> None:
    global_registry.register("p", echo_creator, metadata={"required_options": ["model", "region"]})
    create = global_registry.create if op == "create" else chatmodels.new_registry_provider
    with pytest.raises(InvalidConfigError) as info:
        create("p", {"region": "eu"})
    check_error(
        info.value,
        InvalidConfigError,
        op=op,
        code="invalid_config",
        detail="provider 'p' requires option 'model'",
        provider="p",
    )
    with pytest.raises(InvalidConfigError, match="requires option 'region'"):
        create("p", {"model": "m"})
    model = create("p", {"model": "m", "region": "eu"})
    assert model.options.provider_specific["region"] == "eu"


def test_api_key_from_the_environment(
    registry: ProviderRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHATMODELS_TEST_KEY", raising=False)
    registry.register(
        "p",
        echo_creator,
        metadata={"required_options": ["api_key"], "api_key_env": "CHATMODELS_TEST_KEY"},
    )
    with pytest.raises(InvalidConfigError) as info:
        registry.create("p")
    check_error(
        info.value,
        InvalidConfigError,
        op="create",
        code="invalid_config",
        detail="provider 'p' requires option 'api_key' (or set CHATMODELS_TEST_KEY)",
    )
    monkeypatch.setenv("CHATMODELS_TEST_KEY", SECRET)
    model = registry.create("p")
    assert model.options.api_key_value() == SECRET
    assert SECRET not in repr(model.options)
    # an explicit key wins over the environment
    assert registry.create("p", {"api_key": "sk-explicit"}).options.api_key_value() == (
        "sk-explicit"
    )


def test_defaults_from_the_metadata(registry: ProviderRegistry) -> None:
    registry.register(
        "p",
        echo_creator,
        metadata={"default_model": "m-1", "default_base_url": "http://127.0.0.1:9"},
    )
    opts = registry.create("p").options
    assert opts.model == "m-1"
    assert opts.base_url == "http://127.0.0.1:9"
    assert registry.create("p", {"model": "m-2"}).options.model == "m-2"


def test_declared_options_go_to_provider_specific(registry: ProviderRegistry) -> None:
    registry.register("p", echo_creator, metadata={"optional_options": ["region", "profile"]})
    opts = registry.create(
        "p", {"region": "eu", "provider_specific": {"profile": "dev"}, "seed": 3}
    ).options
    assert dict(opts.provider_specific) == {"region": "eu", "profile": "dev"}
    assert opts.seed == 3


@pytest.mark.parametrize("options", [["model"], "model=m", 5])
def test_options_of_the_wrong_type(registry: ProviderRegistry, options: object) -> None:
    registry.register("p", echo_creator)
    with pytest.raises(InvalidConfigError) as info:
        registry.create("p", options)  # type: ignore[arg-type]
    check_error(
        info.value,
        InvalidConfigError,
        op="create",
        code="invalid_config",
        detail=f"options must be a ProviderOptions or a mapping, got {type(options).__name__}",
    )


def test_option_names_must_be_str(registry: ProviderRegistry) -> None:
    registry.register("p", echo_creator)
    with pytest.raises(InvalidConfigError, match="option names must be str, got int"):
        registry.create("p", {1: "x"})  # type: ignore[dict-item]


def test_secret_never_reaches_errors_or_logs(
    registry: ProviderRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    def creator(options: ProviderOptions) -> ChatModel:
        raise RuntimeError(f"cannot connect with {options!r}")

    registry.register("p", creator, metadata={"required_options": ["region"]})
    errors: list[BaseException] = []
    caplog.set_level(logging.DEBUG)
    for options in (
        {"api_key": SECRET},  # missing region
        {"api_key": SECRET, "region": "eu", "temprature": 1},
        {"api_key": SECRET, "region": "eu", "temperature": 9},
        {"api_key": SECRET, "region": "eu"},  # the creator raises
        {"api_key": SECRET, "region": "eu", "top_p": 7},
    ):
        with pytest.raises(chatmodels.ChatModelError) as info:
            registry.create("p", options)
        errors.append(info.value)
    assert isinstance(errors[3], CreationError)
    for error in errors:
        assert SECRET not in str(error)
        assert SECRET not in repr(error)
        assert SECRET not in str(error.__cause__)
    for record in caplog.records:
        assert SECRET not in record.getMessage()


def test_created_model_carries_options_and_metadata(registry: ProviderRegistry) -> None:
    meta = ProviderMetadata(name="p", default_model="d")

    registry.register("p", lambda o: EchoModel(meta, o), metadata=meta)
    model = registry.create("p", {"api_key": SECRET})
    assert model.metadata is meta
    assert model.provider == "p"
    assert model.model == "d"
    assert SECRET not in repr(model)
