"""The pure-Python registry table: the twin of the Rust `chatmodels._core.RegistryTable`.

Both tables map a provider name to an opaque entry and a capability bitset, and raise the
same errors (built by the factories in `_errors`). Readers never take the lock: a write
builds a new dict and publishes it with one reference assignment (copy-on-write), so a
resolution sees the table before or after a write, never a half-made one.

Both count their resolutions (`contains` and `get` calls) by outcome. Here a count is a plain
`+= 1` on the table: exact with the GIL; on free-threaded CPython concurrent threads lose
each other's increments, so there the counts are a lower bound only (four threads hammering
one table kept about half). The Rust table's striped atomic counters are exact everywhere.
"""

from __future__ import annotations

import threading
from typing import Any

from ._errors import already_registered_error, name_error, not_found_error

__all__ = ["MAX_NAME_LENGTH", "RegistryTable", "check_name"]

MAX_NAME_LENGTH = 256


def check_name(name: object, op: str) -> str:
    """Return `name` if it is an acceptable provider name, else raise invalid_provider_name."""
    if type(name) is not str:
        if isinstance(name, str):  # a str subclass: accept its plain value
            return check_name(str(name), op)
        raise name_error(op, name, "must be a str")
    if not name:
        raise name_error(op, name, "must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise name_error(op, name, f"must be at most {MAX_NAME_LENGTH} characters")
    if not name.isprintable():
        if any(_is_control(c) for c in name):
            raise name_error(op, name, "must not contain control characters")
        if any("\ud800" <= c <= "\udfff" for c in name):
            raise name_error(op, name, "must not contain lone surrogates")
    if name[0].isspace() or name[-1].isspace():
        raise name_error(op, name, "must not start or end with whitespace")
    return name


def _is_control(char: str) -> bool:
    # Unicode category Cc, the same set as Rust's `char::is_control`.
    code = ord(char)
    return code < 0x20 or 0x7F <= code < 0xA0


class RegistryTable:
    """name → (entry, capability bits), with lock-free reads and serialized writes."""

    __slots__ = ("_entries", "_found", "_lock", "_missed", "_version")

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Any, int]] = {}
        self._lock = threading.Lock()
        self._version = 0
        self._found = 0
        self._missed = 0

    def contains(self, name: str, op: str) -> bool:
        """Whether `name` is registered; raises invalid_provider_name for a bad name."""
        if type(name) is str and name in self._entries:
            self._found += 1
            return True
        found = False
        try:
            found = check_name(name, op) in self._entries
        finally:
            if found:
                self._found += 1
            else:
                self._missed += 1
        return found

    def get(self, name: str, op: str) -> Any:
        """The entry registered as `name`; raises provider_not_found with a suggestion."""
        found = self._entries.get(name) if type(name) is str else None
        if found is not None:
            self._found += 1
            return found[0]
        try:
            name = check_name(name, op)
            found = self._entries.get(name)
        finally:
            if found is None:
                self._missed += 1
        if found is not None:
            self._found += 1
            return found[0]
        raise not_found_error(op, name, list(self._entries))

    def insert(self, name: str, entry: Any, capabilities: int, replace: bool, op: str) -> int:
        """Register `entry` as `name`; returns the table version after the write."""
        name = check_name(name, op)
        with self._lock:
            if not replace and name in self._entries:
                raise already_registered_error(op, name)
            entries = dict(self._entries)
            entries[name] = (entry, capabilities)
            self._version += 1
            self._entries = entries
            return self._version

    def remove(self, name: str, op: str) -> Any:
        """Unregister `name` and return its entry; raises provider_not_found."""
        name = check_name(name, op)
        with self._lock:
            entries = dict(self._entries)
            found = entries.pop(name, None)
            if found is None:
                raise not_found_error(op, name, list(entries))
            self._version += 1
            self._entries = entries
            return found[0]

    def clear(self) -> None:
        """Unregister everything."""
        with self._lock:
            self._version += 1
            self._entries = {}

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)

    def names_with(self, mask: int) -> list[str]:
        """The sorted names whose capability bits include every bit of `mask`."""
        return sorted(name for name, (_, caps) in self._entries.items() if caps & mask == mask)

    def entries(self) -> list[tuple[str, Any]]:
        """(name, entry) pairs from one snapshot, sorted by name."""
        return sorted(((name, found[0]) for name, found in self._entries.items()))

    @property
    def version(self) -> int:
        """How many writes the table has seen."""
        return self._version

    @property
    def resolutions(self) -> int:
        """How many `contains` and `get` calls the table has answered, found or not (a call
        refused with invalid_provider_name included). A lower bound on free-threaded CPython."""
        return self._found + self._missed

    @property
    def resolution_misses(self) -> int:
        """How many of those found nothing: `contains` returned False, or `contains` or `get`
        raised (provider_not_found, invalid_provider_name)."""
        return self._missed

    def __len__(self) -> int:
        return len(self._entries)
