"""The Rust `RegistryTable` and its pure-Python twin give the same results and the same errors.

Each case runs one table method on a fresh table of each backend, populated alike, and compares
the outcome: the value returned, or the exception's class, message, code, op and provider.
"""

from __future__ import annotations

import gc
import sys
import unicodedata
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from chatmodels import _core, _pytable
from chatmodels._errors import ChatModelError, InternalError, InvalidProviderNameError

TABLES: dict[str, Callable[[], Any]] = {
    "rust": _core.RegistryTable,
    "python": _pytable.RegistryTable,
}
ENTRIES = {name: object() for name in ("openai", "anthropic", "é", "模型", "a b")}
CAPS = {"openai": 0b011, "anthropic": 0b001, "é": 0b110, "模型": 0b111, "a b": 0}


class Sub(str):
    """A str subclass: accepted as its plain value."""


def populated(backend: str) -> Any:
    table = TABLES[backend]()
    for name, entry in ENTRIES.items():
        table.insert(name, entry, CAPS[name], False, "register")
    return table


def outcome(call: Callable[[], object]) -> tuple[object, ...]:
    try:
        result = call()
    except ChatModelError as exc:
        return ("raised", type(exc), str(exc), exc.code, exc.op, exc.provider)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    return ("returned", result)


def both(method: str, *args: object) -> tuple[tuple[object, ...], tuple[object, ...]]:
    rust, python = populated("rust"), populated("python")
    return (
        outcome(lambda: getattr(rust, method)(*args)),
        outcome(lambda: getattr(python, method)(*args)),
    )


NAMES: list[object] = [
    "openai",
    "anthropic",
    "é",
    "模型",
    "a b",
    "missing",
    "opena",  # close to a registered name: the did-you-mean hint
    "OpenAI",
    "",
    " ",
    " openai",
    "openai ",
    "\topenai",
    "openai\u3000",
    "\u00a0x",
    "x\u2029",
    "a\nb",
    "\x00",
    "a\x7f",
    "\x85a",
    "a\x9fb",
    "a\u200bb",  # a format character (Cf), not a control one: valid
    "🙂",
    "a" * 256,
    "a" * 257,
    "é" * 256,
    "é" * 257,
    " " + "a" * 300 + "\n",  # too long wins over the other checks
    "\n ",
    1,
    None,
    b"openai",
    3.5,
    ("openai",),
    Sub("openai"),
    Sub("missing"),
    Sub(" openai"),
    Sub(""),
]


@pytest.mark.parametrize("name", NAMES, ids=repr)
@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("contains", ()),
        ("get", ()),
        ("remove", ()),
        ("insert", (ENTRIES["openai"], 0b1, False)),
        ("insert", (ENTRIES["openai"], 0b1, True)),
    ],
)
def test_same_outcome(method: str, extra: tuple[object, ...], name: object) -> None:
    rust, python = both(method, name, *extra, method + "_op")
    assert rust == python


@pytest.mark.parametrize("name", [["openai"], {"a": 1}, {"openai"}], ids=repr)
@pytest.mark.parametrize("method", ["contains", "get", "remove"])
def test_unhashable_names_are_invalid_names(method: str, name: object) -> None:
    rust, python = both(method, name, "op")
    assert rust[:2] == ("raised", InvalidProviderNameError)
    assert "must be a str" in str(rust[2])
    assert rust == python


@pytest.mark.parametrize("name", ["\ud800", "open\udfffai", "\udc80 ", "\ud800" * 257, "\ud800\n"])
@pytest.mark.parametrize("method", ["contains", "get", "remove", "insert"])
def test_lone_surrogates_are_invalid_names(method: str, name: str) -> None:
    extra = (object(), 0, False) if method == "insert" else ()
    rust, python = both(method, name, *extra, "op")
    assert rust[0] == "raised"
    assert rust == python


def test_every_code_point_is_validated_alike() -> None:
    rust, python = populated("rust"), populated("python")
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code < 0xE000:
            continue  # lone surrogates: see above
        char = chr(code)
        for name in (char + "a", "a" + char):
            assert outcome(lambda n=name: rust.contains(n, "op")) == outcome(
                lambda n=name: python.contains(n, "op")
            ), f"U+{code:04X} ({unicodedata.name(char, '?')}) in {name!r}"


def test_same_reads_after_the_same_writes() -> None:
    rust, python = populated("rust"), populated("python")
    for table in (rust, python):
        table.insert("openai", ENTRIES["anthropic"], 0b100, True, "replace")
        table.remove("a b", "unregister")
        with pytest.raises(ChatModelError):
            table.insert("é", object(), 0, False, "register")
        table.insert(Sub("zeta"), ENTRIES["é"], 0b101, False, "register")
    assert rust.names() == python.names() == ["anthropic", "openai", "zeta", "é", "模型"]
    for mask in (0, 0b001, 0b100, 0b110, 0b111, 1 << 63):
        assert rust.names_with(mask) == python.names_with(mask), mask
    assert rust.entries() == python.entries()
    assert [type(name) for name, _ in rust.entries()] == [str] * 5
    assert (rust.version, len(rust)) == (python.version, len(python)) == (8, 5)
    assert rust.get("openai", "get") is python.get("openai", "get") is ENTRIES["anthropic"]
    for table in (rust, python):
        table.clear()
    assert (
        (rust.version, len(rust), rust.names())
        == (python.version, len(python), [])
        == (
            9,
            0,
            [],
        )
    )


def test_the_rust_table_takes_part_in_garbage_collection() -> None:
    class Holder:
        pass

    for backend in TABLES:
        holder = Holder()
        table = TABLES[backend]()
        table.insert("cycle", holder, 0, False, "register")
        holder.table = table  # type: ignore[attr-defined]
        alive = weakref.ref(holder)
        del holder, table
        gc.collect()
        assert alive() is None, backend


def test_a_rust_panic_is_an_internal_error_not_an_abort() -> None:
    with pytest.raises(InternalError) as info:
        _core._panic_for_tests("resolve")
    assert info.value.code == "internal"
    assert info.value.op == "resolve"
    assert str(info.value).startswith("chatmodels.resolve: the Rust core panicked:")
