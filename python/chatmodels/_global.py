"""The global registry: created on first use with the built-in providers, the plugins
(entry points) and the routes of ``CHATMODELS_CONFIG``, and the module-level functions that
act on it. `ProviderRegistry` itself knows nothing of what fills it.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from . import _backend
from ._metadata import Capability, ProviderMetadata
from ._registry import Creator, MetadataLike, OptionsLike, ProviderRegistry, _creation_limit

if TYPE_CHECKING:
    from ._model import ChatModel
    from .telemetry import Container

__all__ = [
    "anew_registry_provider",
    "get_global_registry",
    "get_provider_metadata",
    "get_providers_by_capability",
    "is_provider_registered",
    "list_providers",
    "new_registry_provider",
    "register_global",
    "register_global_with_metadata",
    "unregister_provider",
]

_global: ProviderRegistry | None = None
_global_table: Any = None
_loading: ProviderRegistry | None = None
_global_lock = threading.RLock()


def get_global_registry() -> ProviderRegistry:
    """The process-wide registry, created (and plugins discovered) on first use."""
    registry = _global
    if registry is not None:
        return registry
    return _create_global()


def _create_global() -> ProviderRegistry:
    global _global, _global_table, _loading
    with _global_lock:
        if _global is not None:
            return _global
        if _loading is not None:  # a plugin registering while the registry loads
            return _loading
        registry = ProviderRegistry()
        _loading = registry
        registry._populating = True
        try:
            _populate(registry)
        finally:
            registry._populating = False
            _loading = None
        _backend.share_forever(registry._table)
        _global_table = registry._table
        _global = registry
        return registry


def _populate(registry: ProviderRegistry) -> None:
    # here, not at the top: `import chatmodels` loads nothing of `_providers`
    from ._providers._builtins import register_builtins

    register_builtins(registry)
    registry.load_plugins()
    path = os.environ.get("CHATMODELS_CONFIG")
    if path:
        # A refused file raises here and the global registry is not kept, so every first use
        # reports it until the file is fixed.
        from ._routes._config import load_config

        load_config(path, registry=registry)


def _swap_global_registry(registry: ProviderRegistry | None) -> ProviderRegistry | None:
    """Install `registry` as the global one (None: recreate on next use); returns the old one.

    For tests that need a global registry of a given backend.
    """
    global _global, _global_table
    with _global_lock:
        previous = _global
        _global = registry
        if registry is not None:
            _backend.share_forever(registry._table)
        _global_table = registry._table if registry is not None else None
        return previous


def _table() -> Any:
    table = _global_table
    return table if table is not None else get_global_registry()._table


def register_global(
    name: str,
    creator: Creator,
    *,
    metadata: MetadataLike | None = None,
    replace: bool = False,
) -> ProviderMetadata:
    """Register a provider in the global registry. See `ProviderRegistry.register`."""
    return get_global_registry()._register(name, creator, metadata, replace, op="register_global")


def register_global_with_metadata(
    name: str, creator: Creator, metadata: MetadataLike, *, replace: bool = False
) -> ProviderMetadata:
    """Register a provider with its metadata in the global registry."""
    return get_global_registry()._register(
        name, creator, metadata, replace, op="register_global_with_metadata"
    )


def new_registry_provider(
    name: str,
    options: OptionsLike | None = None,
    *,
    creation_timeout: float | None = None,
    container: Container | None = None,
    timeout: float | None = None,
) -> ChatModel:
    """Create an instance of a globally registered provider (with its own telemetry
    `container`, if given); `creation_timeout` bounds the creator, ``options.timeout`` each
    request. `timeout` is the deprecated name of `creation_timeout`. See
    `ProviderRegistry.create`."""
    op = "new_registry_provider"
    limit = _creation_limit(creation_timeout, timeout, op)
    return get_global_registry()._create(name, options, limit, op=op, container=container)


async def anew_registry_provider(
    name: str,
    options: OptionsLike | None = None,
    *,
    creation_timeout: float | None = None,
    container: Container | None = None,
    timeout: float | None = None,
) -> ChatModel:
    """Async `new_registry_provider`; accepts async creators."""
    op = "anew_registry_provider"
    limit = _creation_limit(creation_timeout, timeout, op)
    return await get_global_registry()._acreate(name, options, limit, op=op, container=container)


def is_provider_registered(name: str) -> bool:
    """Whether a provider called `name` is in the global registry."""
    table = _global_table
    if table is None:
        table = get_global_registry()._table
    return table.contains(name, "is_provider_registered")  # type: ignore[no-any-return]


def get_provider_metadata(name: str) -> ProviderMetadata:
    """The metadata of a globally registered provider; raises provider_not_found."""
    table = _global_table
    if table is None:
        table = get_global_registry()._table
    return table.get(name, "get_provider_metadata").metadata  # type: ignore[no-any-return]


def list_providers() -> list[str]:
    """The names of the globally registered providers, sorted."""
    return _table().names()  # type: ignore[no-any-return]


def unregister_provider(name: str) -> None:
    """Remove a provider from the global registry; raises provider_not_found."""
    get_global_registry()._unregister(name, op="unregister_provider")


def get_providers_by_capability(capability: Capability | str) -> list[str]:
    """The sorted names of the global providers that declare `capability`."""
    return get_global_registry()._by_capability(capability, "get_providers_by_capability")


# Every thread that resolves calls these: see `_backend.share_forever`.
_backend.share_forever(is_provider_registered, get_provider_metadata)
