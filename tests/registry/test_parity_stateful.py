"""A Hypothesis state machine drives the Rust registry, the Python twin and a plain dict model
with the same random operations, and checks that all three agree on every result and error.

The model predicts results and error codes; the two backends must also agree with each other
on the exception class, op, code, message and provider.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatmodels import (
    Capability,
    ChatModel,
    ChatModelError,
    ProviderMetadata,
    ProviderOptions,
    ProviderRegistry,
)
from chatmodels._errors import error_class_for
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

OPS = ("register", "unregister", "is_registered", "metadata", "create", "by_capability")

KNOWN = ["openai", "openai2", "anthropic", "ollama", "mistral", "gemini", "cohere", "bedrock"]
INVALID: list[object] = [
    "",
    " ",
    " openai",
    "openai ",
    "open\x00ai",
    "a\nb",
    "x" * 257,
    "é" * 257,
    5,
    None,
    b"openai",
    3.0,
]
valid_names = st.one_of(
    st.sampled_from(KNOWN),
    st.text(min_size=1, max_size=10),  # may be invalid too: the model decides
    st.sampled_from(["é" * 256, "x" * 256, "🙂", "a b"]),
)
any_names = st.one_of(valid_names, valid_names, st.sampled_from(INVALID))
capabilities = st.frozensets(st.sampled_from(list(Capability)), max_size=4)


class Model(ChatModel):
    pass


def model_name_ok(name: object) -> bool:
    """The name rules, written independently of the package."""
    if not isinstance(name, str) or not name or len(name) > 256:
        return False
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        return False
    return not (name[0].isspace() or name[-1].isspace())


Outcome = tuple[Any, ...]


def outcome(call: Callable[[], object]) -> Outcome:
    try:
        return ("ok", call())
    except ChatModelError as exc:
        return ("error", type(exc), exc.op, exc.code.value, str(exc), exc.provider)


class RegistryParity(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rust = ProviderRegistry(backend="rust")
        self.python = ProviderRegistry(backend="python")
        self.model: dict[str, ProviderMetadata] = {}
        self.version = 0
        self.serial = 0

    def both(self, call: Callable[[ProviderRegistry], object]) -> Outcome:
        """Run `call` on both backends; they must agree exactly. Returns the outcome."""
        got_rust = outcome(lambda: call(self.rust))
        got_python = outcome(lambda: call(self.python))
        assert got_rust == got_python, (got_rust, got_python)
        return got_rust

    def expect(self, got: Outcome, error_code: str | None, op: str) -> None:
        if error_code is None:
            assert got[0] == "ok", got
            return
        assert got[0] == "error", f"expected {error_code}, got {got}"
        _, cls, got_op, code, message, _ = got
        assert code == error_code, got
        assert got_op == op
        assert cls is error_class_for(error_code)
        assert message.startswith(f"chatmodels.{op}: ")
        assert message.endswith(f"(code={error_code})")

    def lookup_error(self, name: object) -> str | None:
        if not model_name_ok(name):
            return "invalid_provider_name"
        if name not in self.model:
            return "provider_not_found"
        return None

    # -- writes ---------------------------------------------------------------------------

    @rule(name=any_names, caps=capabilities, replace=st.booleans())
    def register(self, name: object, caps: frozenset[Capability], replace: bool) -> None:
        self.serial += 1
        meta = (
            ProviderMetadata(name=name, capabilities=caps, version=str(self.serial))
            if isinstance(name, str)
            else None
        )

        def creator(options: ProviderOptions) -> ChatModel:
            assert meta is not None
            return Model(meta, options)

        got = self.both(lambda r: r.register(name, creator, metadata=meta, replace=replace))  # type: ignore[arg-type]
        if not model_name_ok(name):
            expected: str | None = "invalid_provider_name"
        elif name in self.model and not replace:
            expected = "provider_already_registered"
        else:
            expected = None
        self.expect(got, expected, "register")
        if expected is None:
            assert got[1] is meta
            assert meta is not None
            self.model[meta.name] = meta
            self.version += 1

    @rule(name=any_names)
    def unregister(self, name: object) -> None:
        got = self.both(lambda r: r.unregister(name))  # type: ignore[arg-type]
        expected = self.lookup_error(name)
        self.expect(got, expected, "unregister")
        if expected is None:
            assert isinstance(name, str)
            del self.model[name]
            self.version += 1

    @rule()
    def clear_sometimes(self) -> None:
        if len(self.model) > 12:
            self.rust.clear()
            self.python.clear()
            self.model.clear()
            self.version += 1

    # -- resolution -------------------------------------------------------------------------

    @rule(name=any_names)
    def is_registered(self, name: object) -> None:
        got = self.both(lambda r: r.is_registered(name))  # type: ignore[arg-type]
        if model_name_ok(name):
            assert got == ("ok", name in self.model)
        else:
            self.expect(got, "invalid_provider_name", "is_registered")

    @rule(name=any_names)
    def metadata(self, name: object) -> None:
        got = self.both(lambda r: r.metadata(name))  # type: ignore[arg-type]
        expected = self.lookup_error(name)
        self.expect(got, expected, "metadata")
        if expected is None:
            assert got[1] is self.model[name]  # type: ignore[index]

    @rule(name=any_names)
    def create(self, name: object) -> None:
        got = self.both(lambda r: r.create(name).metadata)  # type: ignore[arg-type]
        expected = self.lookup_error(name)
        self.expect(got, expected, "create")
        if expected is None:
            assert got[1] is self.model[name]  # type: ignore[index]

    @rule(name=st.sampled_from(KNOWN))
    def suggestion(self, name: str) -> None:
        # a near miss of a known name: both backends must suggest the same thing
        typo = name[:-1]
        got = self.both(lambda r: r.metadata(typo))
        self.expect(got, self.lookup_error(typo), "metadata")

    # -- queries ----------------------------------------------------------------------------

    @rule()
    def list_names(self) -> None:
        assert self.both(lambda r: r.names()) == ("ok", sorted(self.model))

    @rule(cap=st.sampled_from(list(Capability)), as_str=st.booleans())
    def by_capability(self, cap: Capability, as_str: bool) -> None:
        query: Capability | str = cap.value if as_str else cap
        got = self.both(lambda r: r.by_capability(query))
        assert got == ("ok", sorted(n for n, m in self.model.items() if cap in m.capabilities))

    @rule(cap=st.sampled_from(["streamin", "CHAT", "", "telepathy"]))
    def by_unknown_capability(self, cap: str) -> None:
        got = self.both(lambda r: r.by_capability(cap))
        self.expect(got, "invalid_config", "by_capability")

    @invariant()
    def same_size_and_version(self) -> None:
        assert len(self.rust) == len(self.python) == len(self.model)
        assert self.rust.version == self.python.version == self.version


RegistryParity.TestCase.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
TestRegistryParity = RegistryParity.TestCase
