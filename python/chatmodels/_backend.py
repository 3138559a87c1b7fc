"""Which registry table backs the registries: the Rust core or its pure-Python twin.

`CHATMODELS_BACKEND=rust|python` chooses; the default is rust, falling back to python with
one warning when the extension cannot be imported.
"""

from __future__ import annotations

import os
import warnings
from typing import Literal, cast

from . import _pytable
from ._errors import InvalidConfigError

__all__ = ["BackendName", "backend", "table_class"]

BackendName = Literal["rust", "python"]


def _rust_table() -> type[_pytable.RegistryTable] | None:
    try:
        from ._core import RegistryTable
    except ImportError:
        return None
    # The same interface as the twin (see _core.pyi), so both are typed as the twin.
    return cast("type[_pytable.RegistryTable]", RegistryTable)


_RUST = _rust_table()


def share_forever(*objects: object) -> None:
    """Make process-lifetime objects that every thread uses immortal on free-threaded
    CPython, so that resolution scales with threads instead of contending on their
    reference counts (see rust/immortal.rs). A no-op with the GIL or without the extension.
    """
    if _RUST is None:
        return
    from ._core import _make_immortal

    for obj in objects:
        _make_immortal(obj)


if _RUST is not None:
    # The table's hot methods: every resolution takes a reference to their descriptors.
    share_forever(_RUST.__dict__["contains"], _RUST.__dict__["get"])


def _choose() -> BackendName:
    wanted = os.environ.get("CHATMODELS_BACKEND", "").strip().lower() or "rust"
    if wanted not in ("rust", "python"):
        warnings.warn(
            f"CHATMODELS_BACKEND={wanted!r} is not 'rust' or 'python'; using the default",
            RuntimeWarning,
            stacklevel=3,
        )
        wanted = "rust"
    if wanted == "rust" and _RUST is None:
        warnings.warn(
            "the chatmodels Rust extension is not available; using the pure-Python backend",
            RuntimeWarning,
            stacklevel=3,
        )
        return "python"
    return wanted  # type: ignore[return-value]


_ACTIVE: BackendName = _choose()


def backend() -> BackendName:
    """The backend that new registries use by default: ``"rust"`` or ``"python"``."""
    return _ACTIVE


def table_class(name: BackendName | None = None) -> type[_pytable.RegistryTable]:
    """The table class of backend `name` (default: the active one)."""
    chosen = _ACTIVE if name is None else name
    if chosen == "python":
        return _pytable.RegistryTable
    if chosen == "rust":
        if _RUST is None:
            raise InvalidConfigError("the Rust extension is not available", op="backend")
        return _RUST
    raise InvalidConfigError(f"unknown backend {chosen!r}; use 'rust' or 'python'", op="backend")
