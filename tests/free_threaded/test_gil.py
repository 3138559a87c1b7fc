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
