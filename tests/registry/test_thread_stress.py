"""Thread stress: 32 threads x 10,000 mixed operations on one registry, per backend.

Each thread registers, replaces and unregisters names of its own, replaces a shared hot
provider while the others resolve it, resolves, lists and queries by capability. Only the
expected error codes may appear, the hot provider is always resolvable and always whole (never
half old, half new), no registration is lost, and the final state is exactly what the threads
left. Every check can fail: a registry whose replace keeps the old metadata, or swaps the
creator and the metadata in two steps, fails `resolve_own` and `resolve_hot`.
"""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Iterator

import pytest
from chatmodels import (
    Capability,
    ChatModel,
    ChatModelError,
    ErrorCode,
    ProviderMetadata,
    ProviderOptions,
    ProviderRegistry,
)

THREADS = 32
OPERATIONS = 10_000
HOT = "hot"
OWN_LIMIT = 8  # names each thread keeps registered at most

# The two versions of the hot provider: metadata and creator must always match each other.
# Each metadata names its own key variable, so a created model's api_key tells which metadata
# `create` validated its options with, and its class which creator made it: the two must be
# of one entry. (The creators pass their own metadata to the model, so a model's `metadata`
# alone could not tell.)
KEY_ENV = {"a": "CHATMODELS_STRESS_KEY_A", "b": "CHATMODELS_STRESS_KEY_B"}
HOT_A = ProviderMetadata(
    name=HOT, version="a", capabilities=["chat", "streaming"], api_key_env=KEY_ENV["a"]
)
HOT_B = ProviderMetadata(
    name=HOT, version="b", capabilities=["chat", "vision"], api_key_env=KEY_ENV["b"]
)


class HotA(ChatModel):
    version = "a"


class HotB(ChatModel):
    version = "b"


def create_a(options: ProviderOptions) -> ChatModel:
    return HotA(HOT_A, options)


def create_b(options: ProviderOptions) -> ChatModel:
    return HotB(HOT_B, options)


HOT_PAIRS = {"a": HotA, "b": HotB}
OWN_META_CAPS = (["chat"], ["chat", "tool_calling"], ["embeddings"])
EXPECTED_CODES = {ErrorCode.PROVIDER_NOT_FOUND, ErrorCode.PROVIDER_ALREADY_REGISTERED}


def own_creator(options: ProviderOptions) -> ChatModel:
    return ChatModel(ProviderMetadata(name="own"), options)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads often, so that operations interleave even on the GIL build."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-3)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class Worker:
    def __init__(self, registry: ProviderRegistry, index: int, start: threading.Barrier) -> None:
        self.registry = registry
        self.index = index
        self.start = start
        self.random = random.Random(index)
        self.own: dict[str, ProviderMetadata] = {}
        self.serial = 0
        self.writes = 0
        self.replaced = 0
        self.hot_checks = 0
        self.failures: list[str] = []
        self.codes: dict[str, int] = {}

    def fail(self, what: str) -> None:
        if len(self.failures) < 10:
            self.failures.append(f"thread {self.index}: {what}")

    def run(self) -> None:
        self.start.wait()
        last_version = self.registry.version
        registry = self.registry
        for _ in range(OPERATIONS):
            roll = self.random.random()
            try:
                if roll < 0.12:
                    self.register_own()
                elif roll < 0.17:
                    self.unregister_own()
                elif roll < 0.20:
                    self.replace_own()
                elif roll < 0.26:
                    hot = self.random.choice((HOT_A, HOT_B))
                    registry.register(
                        HOT, create_a if hot is HOT_A else create_b, metadata=hot, replace=True
                    )
                    self.writes += 1
                elif roll < 0.44:
                    self.resolve_hot()
                elif roll < 0.58:
                    self.resolve_own()
                elif roll < 0.69:
                    # another thread's name: there or not (or gone in between), both fine
                    other = f"t{self.random.randrange(THREADS)}-{self.random.randrange(40)}"
                    if registry.is_registered(other):
                        registry.metadata(other)
                elif roll < 0.70:
                    registry.metadata(f"nobody-{self.index}")  # expected: not found
                    self.fail("an unknown name resolved")
                elif roll < 0.74:
                    if self.own:
                        name = self.random.choice(list(self.own))
                        registry.register(name, own_creator)  # taken: expected error
                        self.fail(f"duplicate {name} was accepted")
                elif roll < 0.87:
                    self.check_listing(registry.names())
                else:
                    self.check_capability()
            except ChatModelError as exc:
                self.codes[exc.code.value] = self.codes.get(exc.code.value, 0) + 1
                if exc.code not in EXPECTED_CODES:
                    self.fail(f"unexpected {exc!r}")
            except Exception as exc:  # anything else is a bug
                self.fail(f"unexpected {type(exc).__name__}: {exc}")
            version = registry.version
            if version < last_version:
                self.fail(f"version went back from {last_version} to {version}")
            last_version = version

    def register_own(self) -> None:
        if len(self.own) >= OWN_LIMIT:
            return self.unregister_own()
        self.serial += 1
        name = f"t{self.index}-{self.serial % 40}"
        if name in self.own:
            return None
        caps = self.random.choice(OWN_META_CAPS)
        meta = ProviderMetadata(name=name, capabilities=caps, version=str(self.serial))
        self.registry.register(name, own_creator, metadata=meta)
        self.own[name] = meta
        self.writes += 1
        return None

    def replace_own(self) -> None:
        """Replace one of this thread's names with new metadata (new capabilities too)."""
        if not self.own:
            return
        name = self.random.choice(list(self.own))
        self.serial += 1
        caps = self.random.choice(OWN_META_CAPS)
        meta = ProviderMetadata(name=name, capabilities=caps, version=str(self.serial))
        self.registry.register(name, own_creator, metadata=meta, replace=True)
        self.own[name] = meta
        self.writes += 1
        self.replaced += 1

    def unregister_own(self) -> None:
        if not self.own:
            return
        name = self.random.choice(list(self.own))
        self.registry.unregister(name)
        del self.own[name]
        self.writes += 1
        if self.registry.is_registered(name):
            self.fail(f"{name} still registered after unregister")

    def resolve_hot(self) -> None:
        registry = self.registry
        if not registry.is_registered(HOT):
            self.fail("hot provider not registered during a replace")
        meta = registry.metadata(HOT)
        if meta is not HOT_A and meta is not HOT_B:
            self.fail(f"hot metadata is neither version: {meta!r}")
        model = registry.create(HOT)
        made_by = getattr(type(model), "version", None)
        assert model.options.api_key is not None
        validated_by = model.options.api_key.get_secret_value()
        if made_by is None or validated_by != made_by:
            self.fail(f"half-updated entry: creator {made_by} with metadata {validated_by}")
        self.hot_checks += 1

    def resolve_own(self) -> None:
        if not self.own:
            return
        name = self.random.choice(list(self.own))
        if not self.registry.is_registered(name):
            self.fail(f"lost registration of {name}")
        if self.registry.metadata(name) is not self.own[name]:
            self.fail(f"{name} has metadata other than its last registration's")

    def check_listing(self, names: list[str]) -> None:
        if names != sorted(names):
            self.fail("names() not sorted")
        present = set(names)
        if HOT not in present:
            self.fail("hot provider missing from names()")
        missing = set(self.own) - present
        if missing:
            self.fail(f"own names missing from names(): {sorted(missing)}")

    def check_capability(self) -> None:
        cap = self.random.choice((Capability.CHAT, Capability.TOOL_CALLING, Capability.EMBEDDINGS))
        names = self.registry.by_capability(cap)
        if names != sorted(names):
            self.fail("by_capability() not sorted")
        if cap is Capability.CHAT and HOT not in names:
            self.fail("hot provider missing from the chat providers")
        wanted = {n for n, m in self.own.items() if cap in m.capabilities}
        if not wanted <= set(names):
            self.fail(f"own {cap.value} providers missing: {sorted(wanted - set(names))}")


@pytest.mark.stress
@pytest.mark.timeout(600)
@pytest.mark.usefixtures("fast_switching")
def test_thread_stress(registry: ProviderRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    for version, variable in KEY_ENV.items():
        monkeypatch.setenv(variable, version)
    registry.register(HOT, create_a, metadata=HOT_A)
    registry.register("bystander", own_creator, metadata={"capabilities": ["chat"]})
    start_version = registry.version
    start = threading.Barrier(THREADS)
    workers = [Worker(registry, i, start) for i in range(THREADS)]
    threads = [threading.Thread(target=w.run, name=f"stress-{w.index}") for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    failures = [f for w in workers for f in w.failures]
    assert failures == []
    # the expected errors did happen, so the interesting paths were exercised
    codes = {code for w in workers for code in w.codes}
    assert codes == {"provider_not_found", "provider_already_registered"}
    # and so were the replaces of own names and the checks of the hot entry
    assert sum(w.replaced for w in workers) > THREADS
    assert sum(w.hot_checks for w in workers) > THREADS
    # nothing lost: exactly what each thread left registered, plus the two fixed ones
    expected = {HOT, "bystander"}
    for worker in workers:
        expected |= set(worker.own)
        for name, meta in worker.own.items():
            assert registry.metadata(name) is meta
    assert registry.names() == sorted(expected)
    assert len(registry) == len(expected)
    # every successful write counted once
    assert registry.version == start_version + sum(w.writes for w in workers)
    # at rest, the hot entry is one whole version: its metadata and its creator's model
    hot = registry.metadata(HOT)
    assert hot is HOT_A or hot is HOT_B
    assert type(registry.create(HOT)) is HOT_PAIRS[hot.version]
