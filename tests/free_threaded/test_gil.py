"""Only collected on a free-threaded interpreter (see conftest.py): the GIL stays off."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_importing_everything_keeps_the_gil_disabled() -> None:
    # A fresh process: an extension that is not declared free-threading-safe re-enables the
    # GIL on import, and that must fail here.
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import chatmodels, chatmodels._core
        assert not sys._is_gil_enabled(), "import chatmodels enabled the GIL"
        # What the async transport and the telemetry load on first use.
        import aiohttp, opentelemetry.sdk.metrics, opentelemetry.sdk.trace
        assert not sys._is_gil_enabled(), "a dependency enabled the GIL"
        package = importlib.import_module("chatmodels")
        for info in pkgutil.walk_packages(package.__path__, "chatmodels."):
            if info.name.endswith("__main__"):
                continue
            importlib.import_module(info.name)
            assert not sys._is_gil_enabled(), f"importing {info.name} enabled the GIL"
        print("ok", chatmodels.backend())
        """
    )
    env = {"PYTHONWARNINGS": "error::RuntimeWarning"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "rust"]


def test_what_every_resolving_thread_shares_is_immortal() -> None:
    # Without the GIL, threads that take references to one object contend on its reference
    # count; the hot path's shared objects are immortal so that resolution scales.
    import chatmodels
    from chatmodels._core import RegistryTable
    from chatmodels._global import get_global_registry

    immortal = 2**32 - 1  # what sys.getrefcount reports for an immortal object on 3.13t
    shared = [
        chatmodels.is_provider_registered,
        chatmodels.get_provider_metadata,
        get_global_registry()._table,
        RegistryTable.__dict__["contains"],
        RegistryTable.__dict__["get"],
    ]
    assert [sys.getrefcount(obj) for obj in shared] == [immortal] * len(shared)
    assert sys.getrefcount(object()) < immortal
