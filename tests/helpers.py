"""Test doubles shared by the registry suite: a tiny chat model and creators around it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from chatmodels import ChatModel, ProviderMetadata, ProviderOptions, ProviderRegistry

BACKENDS = ("rust", "python")


class EchoModel(ChatModel):
    """The smallest possible provider instance."""


def make_creator(
    metadata: ProviderMetadata | None = None,
) -> Callable[[ProviderOptions], EchoModel]:
    """A creator returning an `EchoModel` that carries `metadata` (default: a bare one)."""
    meta = metadata if metadata is not None else ProviderMetadata(name="echo")

    def create(options: ProviderOptions) -> EchoModel:
        return EchoModel(meta, options)

    return create


def echo_creator(options: ProviderOptions) -> EchoModel:
    """A plain creator function."""
    return EchoModel(ProviderMetadata(name="echo"), options)


async def async_echo_creator(options: ProviderOptions) -> EchoModel:
    """An async creator."""
    await asyncio.sleep(0)
    return EchoModel(ProviderMetadata(name="echo"), options)


class GatedCreator:
    """A creator that blocks until released, then returns (and remembers) its model.

    `started` is set when a call begins; `release` lets it finish; `finished` is set when it
    has returned.
    """

    def __init__(self, name: str = "slow") -> None:
        self.metadata = ProviderMetadata(name=name)
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.made: list[EchoModel] = []

    def __call__(self, options: ProviderOptions) -> EchoModel:
        self.started.set()
        self.release.wait(30)
        model = EchoModel(self.metadata, options)
        self.made.append(model)
        self.finished.set()
        return model


def snapshot(registry: ProviderRegistry) -> tuple[list[str], int, int]:
    """What must not change after a failed call: the names, the version and the size."""
    return registry.names(), registry.version, len(registry)


def check_error(
    error: BaseException,
    cls: type[BaseException],
    *,
    op: str,
    code: str,
    detail: str | None = None,
    provider: str | None = None,
) -> None:
    """Assert `error` is exactly `cls` with this op and code, and reads
    ``chatmodels.<op>: <detail> (code=<code>)``."""
    from chatmodels import ChatModelError

    assert type(error) is cls, f"{type(error).__name__} is not {cls.__name__}: {error}"
    assert isinstance(error, ChatModelError)
    assert error.op == op
    assert error.code == code
    assert error.code.value == code
    text = str(error)
    assert text.startswith(f"chatmodels.{op}: "), text
    assert text.endswith(f" (code={code})"), text
    if detail is not None:
        assert text == f"chatmodels.{op}: {detail} (code={code})"
    if provider is not None:
        assert error.provider == provider
