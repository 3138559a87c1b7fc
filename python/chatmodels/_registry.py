"""The provider registry: register, resolve, create, list, discover and unregister providers.

A `ProviderRegistry` validates its input and delegates storage to a registry table (the Rust
core or its pure-Python twin, see `_backend`). The global registry and the functions acting on it
are in `_global`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import inspect
import logging
import sys
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar, cast

from . import _backend
from ._errors import (
    ChatModelError,
    CreationError,
    CreationTimeoutError,
    ErrorCode,
    InvalidConfigError,
    InvalidCreatorError,
    suggest,
)
from ._metadata import Capability, ProviderMetadata, ProviderOptions
from ._pytable import check_name
from ._routes._types import DEFAULT_BREAKER, Breaker

if TYPE_CHECKING:
    import concurrent.futures

    # `import chatmodels` loads the registry without the chat API; `_checked` imports it.
    from ._model import ChatModel
    from ._routes._deployment import Deployment
    from ._routes._redis import RedisState
    from .telemetry import Container

__all__ = [
    "ENTRY_POINT_GROUP",
    "Creator",
    "ProviderRegistry",
]

ENTRY_POINT_GROUP = "chatmodels.providers"

#: What `register` takes: a `ChatModel` subclass, made as ``cls(metadata, options)``, or a
#: callable made as ``creator(options)`` that returns a `ChatModel` (or an awaitable of one).
Creator = Callable[[ProviderOptions], "ChatModel | Awaitable[ChatModel]"] | type["ChatModel"]
MetadataLike = ProviderMetadata | Mapping[str, Any]
OptionsLike = ProviderOptions | Mapping[str, Any]

logger = logging.getLogger("chatmodels.registry")

_F = TypeVar("_F", bound=Callable[..., Any])


def _telemetry() -> Any:
    """The registry telemetry hooks once OpenTelemetry is loaded (before, nothing can record)."""
    if "opentelemetry" not in sys.modules:
        return None
    from .telemetry import _hooks

    return _hooks


def _observed(kind: str) -> Callable[[_F], _F]:
    """Run a registry operation under its telemetry span ``chatmodels.registry.{kind}``.

    Wraps the private method behind a public one; that method takes the name of the public
    operation as its keyword `op` (the span's ``chatmodels.api`` and the errors' `.op`).
    """

    def wrap(method: _F) -> _F:
        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def arun(
                self: ProviderRegistry, name: str, *args: Any, op: str, **kwargs: Any
            ) -> Any:
                hooks = _telemetry()
                if hooks is None:
                    return await method(self, name, *args, op=op, **kwargs)
                container = kwargs.get("container") or self.container
                with hooks.registry_operation(
                    kind, name, registry=self, container=container, api=op
                ):
                    return await method(self, name, *args, op=op, **kwargs)

            return cast(_F, arun)

        @functools.wraps(method)
        def run(self: ProviderRegistry, name: str, *args: Any, op: str, **kwargs: Any) -> Any:
            hooks = _telemetry()
            if hooks is None or (self._populating and op == kind):
                # (the built-ins registering themselves on first use: not the app's operations)
                return method(self, name, *args, op=op, **kwargs)
            container = kwargs.get("container") or self.container
            with hooks.registry_operation(kind, name, registry=self, container=container, api=op):
                return method(self, name, *args, op=op, **kwargs)

        return cast(_F, run)

    return wrap


@dataclasses.dataclass(frozen=True)
class _Entry:
    make: Callable[[ProviderOptions], Any]  # the creator, given the metadata if it takes it
    metadata: ProviderMetadata
    is_async: bool


class PluginWarning(RuntimeWarning):
    """A provider plugin could not be loaded; the other providers are unaffected."""


class ProviderRegistry:
    """A registry of chat-model providers: name → creator and metadata.

    Thread-safe: resolutions never wait for writers, and `register(..., replace=True)` swaps
    an entry atomically, so concurrent callers see the old provider or the new one.

    Args:
        backend: ``"rust"`` or ``"python"``; default: `chatmodels.backend()`.
        container: the telemetry `Container` for this registry's operation spans and metrics
            and for the calls of the models it creates; default: the global one.

    Example:
        >>> registry = ProviderRegistry()
        >>> registry.register("echo", EchoModel, metadata={"name": "echo"})
        >>> model = registry.create("echo", {"model": "echo-1"})
    """

    def __init__(
        self, backend: _backend.BackendName | None = None, *, container: Container | None = None
    ) -> None:
        self._table = _backend.table_class(backend)()
        self.backend: _backend.BackendName = backend or _backend.backend()
        self.container = container

    #: True while the global registry is filled on first use (see `_global`): the built-ins'
    #: registrations are not the application's operations, and make no span.
    _populating = False

    def __repr__(self) -> str:
        return f"<ProviderRegistry backend={self.backend!r} providers={len(self._table)}>"

    # -- writes ---------------------------------------------------------------------------

    def register(
        self,
        name: str,
        creator: Creator,
        *,
        metadata: MetadataLike | None = None,
        replace: bool = False,
    ) -> ProviderMetadata:
        """Register `creator` under `name` and return the stored metadata.

        `creator` is a `ChatModel` subclass (made as ``creator(metadata, options)``) or a
        callable taking the validated `ProviderOptions` and returning a `ChatModel` (or, for
        `acreate`, an awaitable of one).

        Raises invalid_provider_name, invalid_creator, invalid_config (bad metadata) or, when
        the name is taken and `replace` is false, provider_already_registered. With
        `replace=True` the old entry is swapped for the new one atomically.
        """
        return self._register(name, creator, metadata, replace, op="register")

    @_observed("register")
    def _register(
        self,
        name: str,
        creator: Creator,
        metadata: MetadataLike | None,
        replace: bool,
        *,
        op: str,
    ) -> ProviderMetadata:
        name = check_name(name, op)
        if not callable(creator):
            raise InvalidCreatorError(
                f"creator must be callable, got {type(creator).__name__}", op=op, provider=name
            )
        if type(replace) is not bool:
            raise InvalidConfigError("replace must be a bool", op=op, provider=name)
        meta = _as_metadata(name, metadata, op)
        if _is_model_class(creator):
            entry = _Entry(functools.partial(creator, meta), meta, False)
        else:
            entry = _Entry(
                cast("Callable[[ProviderOptions], Any]", creator), meta, _is_async_callable(creator)
            )
        old = self._routed_entry(name) if replace else None
        self._table.insert(name, entry, meta.capability_mask, replace, op)
        if old is not None:
            _retire_route(old)
        return meta

    def unregister(self, name: str) -> None:
        """Remove the provider `name` (or route: its models close once its calls have
        drained); raises provider_not_found when there is none."""
        self._unregister(name, op="unregister")

    @_observed("unregister")
    def _unregister(self, name: str, *, op: str) -> None:
        old = self._routed_entry(name)
        self._table.remove(name, op)
        if old is not None:
            _retire_route(old)

    def clear(self) -> None:
        """Remove every provider and route."""
        routed = [e for e in map(self._routed_entry, self._table.names()) if e is not None]
        self._table.clear()
        for entry in routed:
            _retire_route(entry)

    def register_route(
        self,
        name: str,
        deployments: Sequence[Deployment],
        *,
        strategy: str = "priority",
        timeout: float | None = None,
        failover_on: Iterable[str | ErrorCode] | None = None,
        breaker: Breaker | None = DEFAULT_BREAKER,
        max_wait: float = 0.0,
        clock: Callable[[], float] | None = None,
        replace: bool = False,
        state: RedisState | None = None,
    ) -> ProviderMetadata:
        """Register a route in this registry (see `chatmodels.register_route`)."""
        from ._routes._route import build_route

        return build_route(
            self,
            name,
            deployments,
            strategy=strategy,
            timeout=timeout,
            failover_on=failover_on,
            breaker=breaker,
            max_wait=max_wait,
            clock=clock,
            replace=replace,
            state=state,
        )

    def _routed_entry(self, name: str) -> _Entry | None:
        """The entry of `name` when it is a route (whose models a removal must close)."""
        routes = sys.modules.get("chatmodels._routes._route")
        if routes is None:
            return None  # no route was ever built
        try:
            entry: _Entry = self._table.get(name, "route")
        except ChatModelError:
            return None
        return entry if isinstance(entry.make, routes.Route) else None

    # -- reads ----------------------------------------------------------------------------

    def is_registered(self, name: str) -> bool:
        """Whether a provider called `name` is registered."""
        return self._table.contains(name, "is_registered")

    def metadata(self, name: str) -> ProviderMetadata:
        """The metadata of provider `name`; raises provider_not_found."""
        return self._metadata(name, "metadata")

    def _metadata(self, name: str, op: str) -> ProviderMetadata:
        entry: _Entry = self._table.get(name, op)
        return entry.metadata

    def names(self) -> list[str]:
        """Every registered provider name, sorted."""
        return self._table.names()

    def by_capability(self, capability: Capability | str) -> list[str]:
        """The sorted names of the providers that declare `capability`."""
        return self._by_capability(capability, "by_capability")

    def _by_capability(self, capability: Capability | str, op: str) -> list[str]:
        bit = _CAPABILITY_BITS.get(capability) if type(capability) in _CAPABILITY_TYPES else None
        if bit is None:
            bit = _capability(capability, op).bit
        return self._table.names_with(bit)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._table.contains(name, "contains")

    def __len__(self) -> int:
        return len(self._table)

    @property
    def version(self) -> int:
        """How many writes this registry has seen; changes whenever its contents change."""
        return self._table.version

    # -- creation -------------------------------------------------------------------------

    def create(
        self,
        name: str,
        options: OptionsLike | None = None,
        *,
        creation_timeout: float | None = None,
        container: Container | None = None,
        timeout: float | None = None,
    ) -> ChatModel:
        """Create an instance of provider `name` with validated `options`.

        `creation_timeout` bounds the creator (seconds); the instance's request timeout is
        ``options.timeout``. `container` gives the instance its own telemetry container (its
        `ChatModel.container`; the creation is recorded there too); default: the registry's,
        if it has one. `timeout` is the deprecated name of `creation_timeout`.

        Raises provider_not_found, invalid_config, creation_failed (the cause chained) or,
        when the creator runs past `creation_timeout` seconds, creation_timeout.
        """
        limit = _creation_limit(creation_timeout, timeout, "create")
        return self._create(name, options, limit, op="create", container=container)

    @_observed("create")
    def _create(
        self,
        name: str,
        options: OptionsLike | None,
        timeout: float | None,
        *,
        op: str,
        container: Container | None,
    ) -> ChatModel:
        entry: _Entry = self._table.get(name, op)
        opts = ProviderOptions.validate(options, entry.metadata, op=op)
        provider = entry.metadata.name
        if timeout is None:
            if entry.is_async:
                model = _run_async_creator(entry, opts, op)
            else:
                model = _checked(_call_creator(entry, opts, op), provider, op)
        else:
            model = _create_with_timeout(entry, opts, _check_timeout(timeout, op), op)
        return self._bind(model, container)

    def _bind(self, model: ChatModel, container: Container | None) -> ChatModel:
        if container is None:
            container = self.container
        if container is not None:
            model.container = container
        return model

    async def acreate(
        self,
        name: str,
        options: OptionsLike | None = None,
        *,
        creation_timeout: float | None = None,
        container: Container | None = None,
        timeout: float | None = None,
    ) -> ChatModel:
        """Async `create`; accepts async creators as well as sync ones (`timeout` is the
        deprecated name of `creation_timeout`)."""
        limit = _creation_limit(creation_timeout, timeout, "acreate")
        return await self._acreate(name, options, limit, op="acreate", container=container)

    @_observed("create")
    async def _acreate(
        self,
        name: str,
        options: OptionsLike | None,
        timeout: float | None,
        *,
        op: str,
        container: Container | None,
    ) -> ChatModel:
        import asyncio  # here, not at module level: `import chatmodels` stays cheap

        entry: _Entry = self._table.get(name, op)
        opts = ProviderOptions.validate(options, entry.metadata, op=op)
        provider = entry.metadata.name
        if not entry.is_async and timeout is None:
            return self._bind(_checked(_call_creator(entry, opts, op), provider, op), container)
        limit = None if timeout is None else _check_timeout(timeout, op)
        worker = None if entry.is_async else _start_worker(entry, opts, op)
        pending: Awaitable[Any] = (
            _call_creator(entry, opts, op) if worker is None else asyncio.wrap_future(worker)
        )
        try:
            result = await asyncio.wait_for(pending, limit)
        except ChatModelError:  # first: a chatmodels timeout is an asyncio one too
            raise
        except asyncio.TimeoutError:
            if worker is not None:
                # The creator goes on in its thread; whatever it returns late is closed.
                worker.add_done_callback(_close_late_result)
            raise _timeout_error(provider, limit or 0.0, op) from None
        except Exception as exc:
            raise _creation_error(provider, exc, op) from exc
        return self._bind(_checked(result, provider, op), container)

    # -- discovery ------------------------------------------------------------------------

    def load_plugins(self) -> list[str]:
        """Register the providers that installed packages declare under the entry-point
        group ``chatmodels.providers``. Returns the names of the entry points that loaded.

        An entry point names either a registration function (called with this registry, or
        with no argument), a ``(creator, metadata)`` pair, or a creator with a `metadata`
        attribute holding its `ProviderMetadata`. A plugin that fails is reported with a
        `PluginWarning` and a log record naming it, and never stops the others.
        """
        import importlib.metadata

        loaded = []
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                self._load_plugin(ep.name, ep.load())
            except Exception as exc:  # a broken plugin must never break the others
                _report_plugin_failure(ep.name, ep.value, exc)
            else:
                loaded.append(ep.name)
        return loaded

    def _load_plugin(self, name: str, target: Any) -> None:
        if isinstance(target, tuple) and len(target) == 2:
            creator, metadata = target
            self._register(name, creator, metadata, False, op="load_plugins")
        elif isinstance(getattr(target, "metadata", None), ProviderMetadata):
            self._register(name, target, target.metadata, False, op="load_plugins")
        elif callable(target):
            if _positional_arity(target) >= 1:
                target(self)
            else:
                target()
        else:
            raise TypeError(f"entry point target is a {type(target).__name__}, not a callable")


# -- helpers -------------------------------------------------------------------------------


def _as_metadata(name: str, metadata: MetadataLike | None, op: str) -> ProviderMetadata:
    provider = name
    if metadata is None:
        return ProviderMetadata(name=name)
    if isinstance(metadata, Mapping):
        try:
            metadata = ProviderMetadata(**{"name": name, **metadata})
        except (TypeError, ValueError) as exc:
            raise InvalidConfigError(f"invalid metadata: {exc}", op=op, provider=provider) from exc
    if not isinstance(metadata, ProviderMetadata):
        raise InvalidConfigError(
            f"metadata must be a ProviderMetadata or a mapping, got {type(metadata).__name__}",
            op=op,
            provider=provider,
        )
    if metadata.name != name:
        raise InvalidConfigError(
            f"metadata.name {metadata.name!r} does not match the provider name {name!r}",
            op=op,
            provider=provider,
        )
    return metadata


# A capability's bit by its value or member (a dict lookup, where `Capability(x)` costs ~0.5 us).
_CAPABILITY_BITS: dict[object, int] = {cap.value: cap.bit for cap in Capability}
_CAPABILITY_TYPES = (str, Capability)


def _retire_route(entry: _Entry) -> None:
    from ._routes._route import retire_entry

    retire_entry(entry)


def _capability(capability: object, op: str) -> Capability:
    try:
        return Capability(capability)
    except ValueError:
        known = [c.value for c in Capability]
        hint = suggest(capability, known) if isinstance(capability, str) else None
        raise InvalidConfigError(
            f"unknown capability {capability!r}" + (f"; did you mean {hint!r}?" if hint else ""),
            op=op,
        ) from None


def _is_model_class(creator: object) -> TypeGuard[type[ChatModel]]:
    """Whether `creator` is a `ChatModel` subclass (made with its metadata and options)."""
    if not isinstance(creator, type):
        return False
    from ._model import ChatModel

    return issubclass(creator, ChatModel)


def _is_async_callable(creator: Any) -> bool:
    return inspect.iscoroutinefunction(creator) or inspect.iscoroutinefunction(
        getattr(creator, "__call__", None)  # noqa: B004 - a callable object's async __call__
    )


def _positional_arity(func: Any) -> int:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 0
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds)


def _check_timeout(timeout: object, op: str) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidConfigError(
            f"creation_timeout must be a positive number, got {timeout!r}", op=op
        )
    return float(timeout)


def _creation_limit(creation_timeout: float | None, timeout: float | None, op: str) -> float | None:
    """`creation_timeout`, or the deprecated `timeout` keyword (with a DeprecationWarning
    pointing at the caller of the public function or method that took it)."""
    if timeout is None:
        return creation_timeout
    if creation_timeout is not None:
        raise InvalidConfigError(
            "pass creation_timeout only (timeout is its deprecated name)", op=op
        )
    import warnings

    warnings.warn(
        f"{op}(timeout=...) is deprecated: it bounds the creator, so it is now called "
        "creation_timeout (a request's timeout is ProviderOptions.timeout)",
        DeprecationWarning,
        stacklevel=3,  # this, the public function or method, then its caller
    )
    return timeout


def _call_creator(entry: _Entry, options: ProviderOptions, op: str) -> Any:
    try:
        return entry.make(options)
    except ChatModelError:
        raise
    except Exception as exc:
        raise _creation_error(entry.metadata.name, exc, op) from exc


def _creation_error(provider: str, exc: BaseException, op: str) -> CreationError:
    return CreationError(
        f"the creator of provider {provider!r} raised {type(exc).__name__}: {exc}",
        op=op,
        provider=provider,
        err=exc,
    )


def _timeout_error(provider: str, limit: float, op: str) -> CreationTimeoutError:
    return CreationTimeoutError(
        f"the creator of provider {provider!r} did not finish within {limit:g} s",
        op=op,
        provider=provider,
    )


def _checked(result: object, provider: str, op: str) -> ChatModel:
    # A ChatModel exists only once its module is loaded (an import statement here: 0.4 us).
    model_module = sys.modules.get(_MODEL_MODULE)
    if model_module is not None and isinstance(result, model_module.ChatModel):
        return result  # type: ignore[no-any-return]
    if inspect.isawaitable(result):
        _discard_awaitable(result)
        detail = "returned an awaitable; register it as an async creator or use acreate"
    else:
        detail = f"returned a {type(result).__name__}, not a ChatModel"
    raise CreationError(f"the creator of provider {provider!r} {detail}", op=op, provider=provider)


_MODEL_MODULE = f"{__package__}._model"


def _discard_awaitable(result: object) -> None:
    close = getattr(result, "close", None)
    if callable(close):
        close()


class _Cancel:
    """Cancels, from another thread, an async creator running on a worker thread's loop."""

    __slots__ = ("_cancelled", "_lock", "_target")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: tuple[Any, Any] | None = None
        self._cancelled = False

    def attach(self, loop: Any, task: Any) -> bool:
        """Note the creator's loop and task; False when it is cancelled already."""
        with self._lock:
            if self._cancelled:
                return False
            self._target = (loop, task)
            return True

    def cancel(self) -> None:
        """Cancel the creator's task (now, or as soon as it starts)."""
        with self._lock:
            self._cancelled = True
            target = self._target
        if target is not None:
            loop, task = target
            with contextlib.suppress(RuntimeError):  # its loop has closed: it has finished
                loop.call_soon_threadsafe(task.cancel)


def _run_async_creator(
    entry: _Entry, options: ProviderOptions, op: str, cancel: _Cancel | None = None
) -> ChatModel:
    import asyncio

    provider = entry.metadata.name
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise InvalidCreatorError(
            f"provider {provider!r} has an async creator and an event loop is running here; "
            "use anew_registry_provider",
            op=op,
            provider=provider,
        )

    async def run() -> Any:
        if cancel is not None and not cancel.attach(
            asyncio.get_running_loop(), asyncio.current_task()
        ):
            raise asyncio.CancelledError
        return await _call_creator(entry, options, op)

    try:
        result = asyncio.run(run())
    except ChatModelError:
        raise
    except Exception as exc:
        raise _creation_error(provider, exc, op) from exc
    return _checked(result, provider, op)


def _create_with_timeout(
    entry: _Entry, options: ProviderOptions, limit: float, op: str
) -> ChatModel:
    import concurrent.futures

    cancel = _Cancel() if entry.is_async else None
    future = _start_worker(entry, options, op, cancel)
    try:
        return future.result(timeout=limit)
    except concurrent.futures.TimeoutError:
        # A sync creator goes on in its thread (a thread cannot be stopped); an async one is
        # cancelled, as `acreate` cancels it. Whatever either returns late is closed.
        future.add_done_callback(_close_late_result)
        if cancel is not None:
            cancel.cancel()
        raise _timeout_error(entry.metadata.name, limit, op) from None


def _start_worker(
    entry: _Entry, options: ProviderOptions, op: str, cancel: _Cancel | None = None
) -> concurrent.futures.Future[ChatModel]:
    """Run the creator (checked) in a daemon thread; its future holds the result."""
    import concurrent.futures

    provider = entry.metadata.name
    future: concurrent.futures.Future[ChatModel] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            if entry.is_async:
                future.set_result(_run_async_creator(entry, options, op, cancel))
            else:
                future.set_result(_checked(_call_creator(entry, options, op), provider, op))
        except BaseException as exc:
            future.set_exception(exc)

    context = contextvars.copy_context()
    worker = threading.Thread(
        target=context.run, args=(run,), name=f"chatmodels-create-{provider}", daemon=True
    )
    worker.start()
    return future


def _close_late_result(future: concurrent.futures.Future[ChatModel]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


def _report_plugin_failure(name: str, value: str, exc: BaseException) -> None:
    message = f"chatmodels provider plugin {name!r} ({value}) failed to load: {exc!r}"
    logger.warning(message, extra={"op": "load_plugins", "plugin": name})
    warnings.warn(message, PluginWarning, stacklevel=2)
