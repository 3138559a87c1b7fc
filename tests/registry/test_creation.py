"""Creating provider instances: creators that fail, return the wrong thing, run too long, or are
async; via `ProviderRegistry.create/acreate` and `new_registry_provider/anew_registry_provider`.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import chatmodels
import pytest
from chatmodels import (
    ChatModel,
    CreationError,
    CreationTimeoutError,
    InvalidConfigError,
    InvalidCreatorError,
    ProviderMetadata,
    ProviderOptions,
    ProviderRegistry,
)
from helpers import (
    EchoModel,
    GatedCreator,
    async_echo_creator,
    check_error,
    echo_creator,
    snapshot,
)

Create = Callable[..., ChatModel]


def _sync_create(registry: ProviderRegistry, name: str, **kw: Any) -> ChatModel:
    return registry.create(name, **kw)


def _sync_global(registry: ProviderRegistry, name: str, **kw: Any) -> ChatModel:
    return chatmodels.new_registry_provider(name, **kw)


def _async_create(registry: ProviderRegistry, name: str, **kw: Any) -> ChatModel:
    return asyncio.run(registry.acreate(name, **kw))


def _async_global(registry: ProviderRegistry, name: str, **kw: Any) -> ChatModel:
    return asyncio.run(chatmodels.anew_registry_provider(name, **kw))


# op name in errors → how to create through it
VIA: dict[str, Callable[..., ChatModel]] = {
    "create": _sync_create,
    "new_registry_provider": _sync_global,
    "acreate": _async_create,
    "anew_registry_provider": _async_global,
}


@pytest.fixture(params=sorted(VIA))
def via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll `condition` (for work finishing on another thread); not a timing assertion."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class Boom(Exception):
    pass


def test_creation_succeeds_everywhere(global_registry: ProviderRegistry, via: str) -> None:
    global_registry.register("echo", echo_creator)
    model = VIA[via](global_registry, "echo", options={"model": "m1"})
    assert isinstance(model, EchoModel)
    assert model.options.model == "m1"
    assert model.closed is False


def test_creation_with_a_generous_timeout(global_registry: ProviderRegistry, via: str) -> None:
    global_registry.register("echo", echo_creator)
    model = VIA[via](global_registry, "echo", creation_timeout=30)
    assert isinstance(model, EchoModel)


def test_async_creator_via_async_creation(global_registry: ProviderRegistry) -> None:
    global_registry.register("aecho", async_echo_creator)
    model = asyncio.run(chatmodels.anew_registry_provider("aecho", {"model": "m"}))
    assert isinstance(model, EchoModel)
    assert model.options.model == "m"
    model = asyncio.run(chatmodels.anew_registry_provider("aecho", creation_timeout=30))
    assert isinstance(model, EchoModel)


def test_async_callable_object_is_an_async_creator(registry: ProviderRegistry) -> None:
    class Factory:
        async def __call__(self, options: ProviderOptions) -> ChatModel:
            return EchoModel(ProviderMetadata(name="obj"), options)

    registry.register("obj", Factory())
    assert isinstance(asyncio.run(registry.acreate("obj")), EchoModel)


@pytest.mark.parametrize("timeout", [None, 30])
def test_sync_creation_of_an_async_creator_without_a_loop(
    global_registry: ProviderRegistry, timeout: float | None
) -> None:
    global_registry.register("aecho", async_echo_creator)
    model = chatmodels.new_registry_provider("aecho", creation_timeout=timeout)
    assert isinstance(model, EchoModel)


def test_sync_creation_of_an_async_creator_inside_a_running_loop(
    global_registry: ProviderRegistry,
) -> None:
    global_registry.register("aecho", async_echo_creator)
    before = snapshot(global_registry)

    async def inside() -> None:
        chatmodels.new_registry_provider("aecho")

    with pytest.raises(InvalidCreatorError) as info:
        asyncio.run(inside())
    check_error(info.value, InvalidCreatorError, op="new_registry_provider", code="invalid_creator")
    assert "anew_registry_provider" in str(info.value)
    assert info.value.provider == "aecho"
    assert snapshot(global_registry) == before


def test_creator_that_raises(global_registry: ProviderRegistry, via: str) -> None:
    boom = Boom("no credentials file")

    def creator(options: ProviderOptions) -> ChatModel:
        raise boom

    global_registry.register("broken", creator)
    before = snapshot(global_registry)
    with pytest.raises(CreationError) as info:
        VIA[via](global_registry, "broken")
    check_error(
        info.value,
        CreationError,
        op=via,
        code="creation_failed",
        detail="the creator of provider 'broken' raised Boom: no credentials file",
        provider="broken",
    )
    assert info.value.__cause__ is boom
    assert info.value.err is boom
    assert info.value.retryable is False
    assert snapshot(global_registry) == before


def test_creator_that_raises_with_a_timeout(global_registry: ProviderRegistry, via: str) -> None:
    boom = Boom("bad region")

    def creator(options: ProviderOptions) -> ChatModel:
        raise boom

    global_registry.register("broken", creator)
    with pytest.raises(CreationError) as info:
        VIA[via](global_registry, "broken", creation_timeout=30)
    check_error(info.value, CreationError, op=via, code="creation_failed", provider="broken")
    assert info.value.__cause__ is boom


def test_async_creator_that_raises(global_registry: ProviderRegistry) -> None:
    boom = Boom("async boom")

    async def creator(options: ProviderOptions) -> ChatModel:
        raise boom

    global_registry.register("broken", creator)
    for timeout in (None, 30):
        with pytest.raises(CreationError) as info:
            asyncio.run(chatmodels.anew_registry_provider("broken", creation_timeout=timeout))
        check_error(
            info.value,
            CreationError,
            op="anew_registry_provider",
            code="creation_failed",
            detail="the creator of provider 'broken' raised Boom: async boom",
        )
        assert info.value.__cause__ is boom


def test_creator_raising_a_chatmodel_error_is_not_rewrapped(
    global_registry: ProviderRegistry, via: str
) -> None:
    own = InvalidConfigError("region 'mars' is not served", op="creator", provider="p")

    def creator(options: ProviderOptions) -> ChatModel:
        raise own

    global_registry.register("p", creator)
    with pytest.raises(InvalidConfigError) as info:
        VIA[via](global_registry, "p")
    assert info.value is own


@pytest.mark.parametrize(
    ("result", "type_name"),
    [(None, "NoneType"), ({"model": "x"}, "dict"), (EchoModel, "type"), ("model", "str")],
)
def test_creator_returning_a_non_chat_model(
    global_registry: ProviderRegistry, via: str, result: object, type_name: str
) -> None:
    global_registry.register("odd", lambda options: result)
    before = snapshot(global_registry)
    with pytest.raises(CreationError) as info:
        VIA[via](global_registry, "odd")
    check_error(
        info.value,
        CreationError,
        op=via,
        code="creation_failed",
        detail=f"the creator of provider 'odd' returned a {type_name}, not a ChatModel",
        provider="odd",
    )
    assert info.value.__cause__ is None
    assert snapshot(global_registry) == before


def test_async_creator_returning_a_non_chat_model(global_registry: ProviderRegistry) -> None:
    async def creator(options: ProviderOptions) -> object:
        return 42

    global_registry.register("odd", creator)
    with pytest.raises(CreationError) as info:
        asyncio.run(chatmodels.anew_registry_provider("odd"))
    check_error(
        info.value,
        CreationError,
        op="anew_registry_provider",
        code="creation_failed",
        detail="the creator of provider 'odd' returned a int, not a ChatModel",
    )


@pytest.mark.parametrize("op", ["create", "new_registry_provider"])
def test_sync_creator_returning_a_coroutine(global_registry: ProviderRegistry, op: str) -> None:
    # A lambda around an async function is not detected as async: the sync path must refuse
    # the coroutine and close it (no "never awaited" warning, which would be an error here).
    def creator(options: ProviderOptions) -> Coroutine[Any, Any, ChatModel]:
        return async_echo_creator(options)

    global_registry.register("sneaky", creator)
    with pytest.raises(CreationError) as info:
        VIA[op](global_registry, "sneaky")
    check_error(info.value, CreationError, op=op, code="creation_failed", provider="sneaky")
    assert "returned an awaitable" in str(info.value)
    gc.collect()


@pytest.mark.parametrize("op", ["create", "new_registry_provider"])
def test_creator_running_past_the_timeout(global_registry: ProviderRegistry, op: str) -> None:
    slow = GatedCreator("slow")
    global_registry.register("slow", slow, metadata=slow.metadata)
    global_registry.register("fast", echo_creator)
    before = snapshot(global_registry)
    try:
        with pytest.raises(CreationTimeoutError) as info:
            VIA[op](global_registry, "slow", creation_timeout=0.05)
        check_error(
            info.value,
            CreationTimeoutError,
            op=op,
            code="creation_timeout",
            detail="the creator of provider 'slow' did not finish within 0.05 s",
            provider="slow",
        )
        assert isinstance(info.value, CreationError)
        assert info.value.retryable is True
        assert slow.started.is_set()
        # the registry stays fully usable while the creator is still stuck
        assert snapshot(global_registry) == before
        assert isinstance(VIA[op](global_registry, "fast"), EchoModel)
        global_registry.register("another", echo_creator)
        global_registry.unregister("another")
        assert global_registry.names() == ["fast", "slow"]
    finally:
        slow.release.set()
    # whatever the creator returns late is closed, not leaked
    assert slow.finished.wait(10)
    assert wait_until(lambda: len(slow.made) == 1 and slow.made[0].closed)


@pytest.mark.parametrize("op", ["acreate", "anew_registry_provider"])
def test_sync_creator_running_past_the_async_timeout(
    global_registry: ProviderRegistry, op: str
) -> None:
    slow = GatedCreator("slow")
    global_registry.register("slow", slow, metadata=slow.metadata)

    acreate = global_registry.acreate if op == "acreate" else chatmodels.anew_registry_provider

    async def scenario() -> None:
        with pytest.raises(CreationTimeoutError) as info:
            await acreate("slow", creation_timeout=0.05)
        check_error(
            info.value,
            CreationTimeoutError,
            op=op,
            code="creation_timeout",
            detail="the creator of provider 'slow' did not finish within 0.05 s",
            provider="slow",
        )
        slow.release.set()

    try:
        asyncio.run(scenario())
    finally:
        slow.release.set()
    assert slow.finished.wait(10)
    # the model the creator made after the caller gave up must be closed, not leaked
    assert wait_until(lambda: len(slow.made) == 1 and slow.made[0].closed)


def test_async_creator_running_past_the_timeout(global_registry: ProviderRegistry) -> None:
    cancelled = []

    async def creator(options: ProviderOptions) -> ChatModel:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return EchoModel(ProviderMetadata(name="aslow"), options)

    global_registry.register("aslow", creator)
    global_registry.register("fast", async_echo_creator)
    before = snapshot(global_registry)

    async def scenario() -> ChatModel:
        with pytest.raises(CreationTimeoutError) as info:
            await chatmodels.anew_registry_provider("aslow", creation_timeout=0.05)
        check_error(
            info.value,
            CreationTimeoutError,
            op="anew_registry_provider",
            code="creation_timeout",
            provider="aslow",
        )
        return await chatmodels.anew_registry_provider("fast", creation_timeout=5)

    assert isinstance(asyncio.run(scenario()), EchoModel)
    assert cancelled == [True]
    assert snapshot(global_registry) == before


def test_sync_creation_of_a_slow_async_creator_times_out(global_registry: ProviderRegistry) -> None:
    async def creator(options: ProviderOptions) -> ChatModel:
        await asyncio.sleep(0.5)
        return EchoModel(ProviderMetadata(name="aslow"), options)

    global_registry.register("aslow", creator)
    with pytest.raises(CreationTimeoutError) as info:
        chatmodels.new_registry_provider("aslow", creation_timeout=0.05)
    check_error(
        info.value, CreationTimeoutError, op="new_registry_provider", code="creation_timeout"
    )


@pytest.mark.parametrize("timeout", [0, -1, "5", True, float("nan"), [1]])
def test_invalid_timeout(global_registry: ProviderRegistry, via: str, timeout: object) -> None:
    global_registry.register("echo", echo_creator)
    with pytest.raises(InvalidConfigError) as info:
        VIA[via](global_registry, "echo", creation_timeout=timeout)
    check_error(
        info.value,
        InvalidConfigError,
        op=via,
        code="invalid_config",
        detail=f"creation_timeout must be a positive number, got {timeout!r}",
    )


def test_creator_runs_in_the_callers_context_under_a_timeout(registry: ProviderRegistry) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen = []

    def creator(options: ProviderOptions) -> ChatModel:
        seen.append(var.get())
        return EchoModel(ProviderMetadata(name="ctx"), options)

    registry.register("ctx", creator)
    var.set("caller")
    registry.create("ctx", creation_timeout=10)
    assert seen == ["caller"]


def test_each_creation_is_a_new_instance(registry: ProviderRegistry) -> None:
    registry.register("echo", echo_creator)
    first, second = registry.create("echo"), registry.create("echo")
    assert first is not second
    with first:
        pass
    assert first.closed is True
    assert second.closed is False


def test_options_validation_happens_before_the_creator_runs(registry: ProviderRegistry) -> None:
    calls = []

    def creator(options: ProviderOptions) -> ChatModel:
        calls.append(options)
        return EchoModel(ProviderMetadata(name="p"), options)

    registry.register("p", creator, metadata={"required_options": ["api_key"]})
    with pytest.raises(InvalidConfigError):
        registry.create("p")
    assert calls == []


def test_creation_timeout_names_what_it_bounds() -> None:
    """`creation_timeout` bounds the creator; a request's timeout stays in the options."""
    import inspect

    for func in (
        chatmodels.new_registry_provider,
        chatmodels.anew_registry_provider,
        ProviderRegistry.create,
        ProviderRegistry.acreate,
    ):
        params = inspect.signature(func).parameters
        assert params["creation_timeout"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["creation_timeout"].default is None


def test_the_old_timeout_keyword_warns_and_still_bounds_the_creator(
    global_registry: ProviderRegistry, via: str
) -> None:
    slow = GatedCreator("slow")
    global_registry.register("slow", slow, metadata=slow.metadata)
    try:
        with (
            pytest.warns(DeprecationWarning, match=r"timeout=\.\.\.\) is deprecated") as seen,
            pytest.raises(CreationTimeoutError),
        ):
            VIA[via](global_registry, "slow", timeout=0.05)
    finally:
        slow.release.set()
    # The warning points at the caller (for a coroutine run by asyncio.run: the event loop
    # that resumed it), never at chatmodels' own frames.
    (warning,) = seen
    if not via.startswith("a"):
        assert warning.filename == __file__
    assert "chatmodels" not in Path(warning.filename).parts
    global_registry.register("echo", echo_creator)
    with pytest.warns(DeprecationWarning, match="creation_timeout"):
        model = VIA[via](global_registry, "echo", options={"timeout": 7}, timeout=30)
    assert model.options.timeout == 7  # the request timeout is untouched


def test_the_old_and_new_keyword_together_are_refused(
    global_registry: ProviderRegistry, via: str
) -> None:
    global_registry.register("echo", echo_creator)
    with pytest.raises(InvalidConfigError) as info:
        VIA[via](global_registry, "echo", creation_timeout=1, timeout=1)
    check_error(info.value, InvalidConfigError, op=via, code="invalid_config")
