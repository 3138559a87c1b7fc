"""Provider discovery through the entry-point group ``chatmodels.providers``.

Each test installs a real-looking distribution (a ``*.dist-info`` directory with METADATA and
entry_points.txt, beside its module) in a temporary directory put on ``sys.path``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import chatmodels
import pytest
from chatmodels import Capability, ChatModel, PluginWarning, ProviderRegistry, _backend, _global

PLUGIN_MODULE = """
import chatmodels
from chatmodels import ChatModel, ProviderMetadata

CALLS = []


class AcmeModel(ChatModel):
    pass


def register(registry):
    CALLS.append("register")
    registry.register(
        "acme-fn",
        lambda options: AcmeModel(registry.metadata("acme-fn"), options),
        metadata={"capabilities": ["chat", "tool_calling"], "gen_ai_provider_name": "acme"},
    )


def register_without_argument():
    CALLS.append("register_without_argument")
    chatmodels.register_global(
        "acme-noarg", lambda options: AcmeModel(ProviderMetadata(name="acme-noarg"), options)
    )


_PAIR_META = ProviderMetadata(name="acme-pair", capabilities=["vision"])
PAIR = (lambda options: AcmeModel(_PAIR_META, options), _PAIR_META)


def creator(options):
    return AcmeModel(creator.metadata, options)


creator.metadata = ProviderMetadata(name="acme-attr", capabilities=["embeddings"])


def explode(registry):
    raise RuntimeError("acme exploded while registering")


NOT_CALLABLE = 42
"""


class Plugins:
    """A distribution of provider plugins installed into a temporary sys.path entry."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.module = f"acme_plugins_{uuid.uuid4().hex[:12]}"
        self.dist = f"acme_chatmodels_{self.module[-12:]}"

    def install(self, entry_points: dict[str, str]) -> None:
        (self.root / f"{self.module}.py").write_text(PLUGIN_MODULE)
        info = self.root / f"{self.dist}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {self.dist}\nVersion: 1.0\n")
        lines = ["[chatmodels.providers]"]
        for name, target in entry_points.items():
            target = target.replace("MODULE", self.module)
            lines.append(f"{name} = {target}")
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        importlib.invalidate_caches()

    def calls(self) -> list[str]:
        return list(sys.modules[self.module].CALLS)


GOOD = {
    "acme-fn": "MODULE:register",
    "acme-pair": "MODULE:PAIR",
    "acme-attr": "MODULE:creator",
}
BROKEN = {
    "broken-import": "no_such_module_for_chatmodels_tests:register",
    "broken-raise": "MODULE:explode",
    "broken-attr": "MODULE:does_not_exist",
    "broken-type": "MODULE:NOT_CALLABLE",
}


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plugins]:
    installed = Plugins(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield installed
    sys.modules.pop(installed.module, None)
    importlib.invalidate_caches()


@pytest.fixture
def no_global_registry(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No global registry yet; the one created on first use is of the backend under test."""
    monkeypatch.setattr(_backend, "_ACTIVE", backend)
    previous = _global._swap_global_registry(None)
    try:
        yield
    finally:
        _global._swap_global_registry(previous)


def test_the_distribution_is_visible(plugins: Plugins) -> None:
    plugins.install(GOOD)
    found = {
        ep.name: ep.value
        for ep in importlib.metadata.entry_points(group=chatmodels.ENTRY_POINT_GROUP)
    }
    assert chatmodels.ENTRY_POINT_GROUP == "chatmodels.providers"
    assert found["acme-fn"] == f"{plugins.module}:register"


def test_the_three_target_forms(plugins: Plugins, registry: ProviderRegistry) -> None:
    plugins.install(GOOD)
    loaded = registry.load_plugins()
    assert sorted(loaded) == ["acme-attr", "acme-fn", "acme-pair"]
    assert {"acme-attr", "acme-fn", "acme-pair"} <= set(registry.names())
    # a registration function, called with the registry
    assert plugins.calls() == ["register"]
    fn_meta = registry.metadata("acme-fn")
    assert fn_meta.capabilities == {Capability.CHAT, Capability.TOOL_CALLING}
    assert fn_meta.gen_ai_provider_name == "acme"
    # a (creator, metadata) pair
    assert registry.metadata("acme-pair").capabilities == {Capability.VISION}
    # a creator with a .metadata attribute
    assert registry.metadata("acme-attr").capabilities == {Capability.EMBEDDINGS}
    for name in ("acme-fn", "acme-pair", "acme-attr"):
        model = registry.create(name)
        assert isinstance(model, ChatModel)
        assert type(model).__name__ == "AcmeModel"
        assert model.provider == name
    assert registry.by_capability("vision") == ["acme-pair"]


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_a_broken_plugin_warns_logs_and_spares_the_others(
    plugins: Plugins,
    registry: ProviderRegistry,
    caplog: pytest.LogCaptureFixture,
    broken: str,
) -> None:
    plugins.install({**GOOD, broken: BROKEN[broken]})
    with pytest.warns(PluginWarning) as caught:
        loaded = registry.load_plugins()
    assert sorted(loaded) == ["acme-attr", "acme-fn", "acme-pair"]
    assert {"acme-attr", "acme-fn", "acme-pair"} <= set(registry.names())
    assert broken not in registry.names()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert f"plugin {broken!r}" in messages[0]
    records = [r for r in caplog.records if r.name == "chatmodels.registry"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert f"plugin {broken!r}" in records[0].getMessage()
    assert records[0].plugin == broken  # type: ignore[attr-defined]
    assert issubclass(PluginWarning, RuntimeWarning)


def test_a_plugin_whose_name_is_taken_warns(plugins: Plugins, registry: ProviderRegistry) -> None:
    plugins.install(GOOD)
    registry.register("acme-pair", lambda options: ChatModel(registry.metadata("acme-pair")))
    mine = registry.metadata("acme-pair")
    with pytest.warns(PluginWarning, match="'acme-pair'.*already registered"):
        loaded = registry.load_plugins()
    assert sorted(loaded) == ["acme-attr", "acme-fn"]
    assert registry.metadata("acme-pair") is mine


def test_several_broken_plugins_each_reported(plugins: Plugins, registry: ProviderRegistry) -> None:
    plugins.install({**GOOD, **BROKEN})
    with pytest.warns(PluginWarning) as caught:
        registry.load_plugins()
    reported = sorted(
        name for name in BROKEN for w in caught if f"plugin {name!r}" in str(w.message)
    )
    assert reported == sorted(BROKEN)
    assert {"acme-attr", "acme-fn", "acme-pair"} <= set(registry.names())


@pytest.mark.usefixtures("no_global_registry")
def test_the_global_registry_loads_plugins_lazily(plugins: Plugins, backend: str) -> None:
    plugins.install({**GOOD, "acme-noarg": "MODULE:register_without_argument"})
    assert plugins.module not in sys.modules  # installing imports nothing
    assert chatmodels.is_provider_registered("acme-fn") is True  # first use loads them
    assert plugins.module in sys.modules
    assert chatmodels.get_global_registry().backend == backend
    assert {"acme-attr", "acme-fn", "acme-noarg", "acme-pair"} <= set(chatmodels.list_providers())
    assert chatmodels.get_providers_by_capability("embeddings") == ["acme-attr"]
    assert isinstance(chatmodels.new_registry_provider("acme-noarg"), ChatModel)
    # once: later uses do not load again
    chatmodels.list_providers()
    chatmodels.get_global_registry()
    assert sorted(plugins.calls()) == ["register", "register_without_argument"]


@pytest.mark.usefixtures("no_global_registry")
def test_the_global_registry_survives_a_broken_plugin(plugins: Plugins) -> None:
    plugins.install({**GOOD, "broken-raise": BROKEN["broken-raise"]})
    with pytest.warns(PluginWarning, match="broken-raise"):
        names = chatmodels.list_providers()
    assert {"acme-attr", "acme-fn", "acme-pair"} <= set(names)
    assert "broken-raise" not in names


def test_import_chatmodels_with_a_broken_plugin_installed(plugins: Plugins) -> None:
    plugins.install({**GOOD, **BROKEN})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugins.root), env.get("PYTHONPATH")]))
    env.pop("PYTHONWARNINGS", None)
    script = textwrap.dedent(
        f"""
        import sys, warnings
        warnings.simplefilter("error")
        import chatmodels  # must not load (or break on) any plugin
        assert {plugins.module!r} not in sys.modules
        warnings.simplefilter("default")
        names = chatmodels.list_providers()
        print(",".join(n for n in names if n.startswith(("acme", "broken"))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "acme-attr,acme-fn,acme-pair"
    for name in BROKEN:
        assert f"plugin {name!r}" in done.stderr
    assert "PluginWarning" in done.stderr
