"""The extension points: creators, the hooks a provider implements, clean public signatures,
and the README's custom-provider example, run as written."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import chatmodels
import pytest
from chatmodels import (
    ChatModel,
    ChatRequest,
    ChatResponse,
    InvalidConfigError,
    Message,
    ProviderMetadata,
    ProviderOptions,
    ProviderRegistry,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def _public_callables() -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every public function of the package and every public method of its public classes."""
    for name in chatmodels.__all__:
        value = getattr(chatmodels, name)
        if inspect.isfunction(value):
            yield name, value
        elif inspect.isclass(value):
            for attr, member in vars(value).items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if inspect.isfunction(member):
                    yield f"{name}.{attr}", member


def test_no_public_signature_has_a_private_parameter() -> None:
    checked = dict(_public_callables())
    # the registry's methods and functions are among them
    for name in ("ProviderRegistry.register", "ProviderRegistry.create", "new_registry_provider"):
        assert name in checked
    private = {
        name: [p for p in inspect.signature(func).parameters if p.startswith("_")]
        for name, func in checked.items()
    }
    assert {name: params for name, params in private.items() if params} == {}


class Echo(ChatModel):
    """A model class registered directly as its provider's creator."""

    def _invoke(self, request: ChatRequest, scope: object) -> ChatResponse:
        return ChatResponse(Message("assistant", request.messages[-1].text), model=request.model)


_META = {"capabilities": ["chat"], "required_options": ["api_key"], "default_model": "e-1"}


def test_a_model_class_is_made_with_its_metadata_and_options(registry: ProviderRegistry) -> None:
    stored = registry.register("echo", Echo, metadata=_META)
    model = registry.create("echo", {"api_key": "k", "temperature": 0.5})
    assert type(model) is Echo
    assert model.metadata is stored
    assert isinstance(model.options, ProviderOptions)
    assert model.options.temperature == 0.5
    assert model.options.api_key_value() == "k"
    assert model.invoke("hi").text == "hi"
    with pytest.raises(InvalidConfigError, match="requires option 'api_key'"):
        registry.create("echo", {})


def test_a_model_class_with_a_creation_timeout_and_async(registry: ProviderRegistry) -> None:
    stored = registry.register("echo", Echo, metadata=_META)
    made = registry.create("echo", {"api_key": "k"}, creation_timeout=5)
    assert type(made) is Echo
    assert made.metadata is stored
    made = asyncio.run(registry.acreate("echo", {"api_key": "k"}))
    assert type(made) is Echo
    assert made.metadata is stored
    made = asyncio.run(registry.acreate("echo", {"api_key": "k"}, creation_timeout=5))
    assert type(made) is Echo
    assert made.metadata is stored


def test_a_one_argument_creator_still_receives_the_options(registry: ProviderRegistry) -> None:
    seen: list[ProviderOptions] = []

    def creator(options: ProviderOptions) -> ChatModel:
        seen.append(options)
        return Echo(ProviderMetadata(name="fn"), options)

    registry.register("fn", creator)
    registry.create("fn", {"model": "m"})
    assert [o.model for o in seen] == ["m"]


def _readme_provider_example() -> str:
    text = README.read_text(encoding="utf-8")
    after = text.split("Register your own provider", 1)[1]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match is not None, "the README lost its custom-provider example"
    return match.group(1)


def test_the_readme_provider_example_runs_as_written(global_registry: ProviderRegistry) -> None:
    code = _readme_provider_example()
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), namespace)
    # each print(...) line's comment is what it prints
    expected = [
        line.split("#", 1)[1].strip() for line in code.splitlines() if line.startswith("print(")
    ]
    assert expected
    assert [line.rstrip() for line in out.getvalue().splitlines()] == expected
    assert chatmodels.get_providers_by_capability("streaming") == ["shout"]

    # the model it made is a complete provider: every call works, sync and async
    model = namespace["model"]
    system = {"role": "system", "content": "be loud"}
    assert model.invoke([system, {"role": "user", "content": "hi"}]).text == "HI"
    assert asyncio.run(model.ainvoke("quiet")).text == "QUIET"

    async def astream() -> str:
        return "".join([c.text async for c in model.astream("a b")])

    assert asyncio.run(astream()) == "A B "
    reply = chatmodels.accumulate(model.stream("x y"))
    assert reply.text == "X Y "
    assert reply.finish_reason == "stop"
    assert reply.model == "s-1"
