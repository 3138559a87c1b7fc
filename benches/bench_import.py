"""Import time in a fresh interpreter: `import chatmodels` beside other modules, same run.

    python benches/bench_import.py [--runs 15]

Each sample is a new ``python -c`` that times one import with `time.perf_counter`
(interpreter start-up excluded); runs are interleaved across modules, and the median is
reported. Modules that are not installed are left out. Every module is timed as an installed
package is imported: from its compiled bytecode (pip writes it at install time; a development
tree gets it from a first, untimed import, even under PYTHONDONTWRITEBYTECODE).

``import chatmodels`` loads the registry; the chat API (`ChatModel`, the message and response
types, health checks) loads on first attribute access. So that the first number misleads no
one, ``chatmodels + chat API`` times the import followed by that first use.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence

CHAT_API = "chatmodels + chat API"
MODULES = ("chatmodels", CHAT_API, "json", "http.client", "asyncio", "httpx", "openai")

_TIMER = (
    "import time, sys; t = time.perf_counter(); import {0}; "
    "print(time.perf_counter() - t); assert '{0}' in sys.modules"
)
# `import chatmodels`, then the first use of the chat API (what a chat program pays).
_CHAT_TIMER = (
    "import time, sys; t = time.perf_counter(); import chatmodels; "
    "chatmodels.ChatModel, chatmodels.ChatChunk, chatmodels.health_check; "
    "print(time.perf_counter() - t); assert 'chatmodels._model' in sys.modules"
)


def _code(module: str) -> str:
    return _CHAT_TIMER if module == CHAT_API else _TIMER.format(module)


def installed(name: str) -> bool:
    """Whether `name` can be imported here (without importing it)."""
    if name == CHAT_API:
        name = "chatmodels"
    return importlib.util.find_spec(name.split(".")[0]) is not None


def measure(modules: Sequence[str] = MODULES, runs: int = 15) -> dict[str, float]:
    """Median milliseconds to import each installed module in a fresh interpreter."""
    present = [m for m in modules if installed(m)]
    samples: dict[str, list[float]] = {m: [] for m in present}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for module in present:  # writes the bytecode a source tree lacks (not timed)
        subprocess.run(
            [sys.executable, "-c", _code(module)], env=env, check=True, capture_output=True
        )
    for _ in range(runs):
        for module in present:
            out = subprocess.run(
                [sys.executable, "-c", _code(module)],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            samples[module].append(float(out.stdout) * 1000)
    return {m: statistics.median(v) for m, v in samples.items()}


def openai_client_ms(runs: int = 5) -> float | None:
    """Median ms to construct ``openai.OpenAI()`` (once imported), or None without openai."""
    if not installed("openai"):
        return None
    code = (
        "import time, openai\n"
        "t = time.perf_counter(); openai.OpenAI(api_key='k'); print(time.perf_counter() - t)"
    )
    values = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        * 1000
        for _ in range(runs)
    ]
    return statistics.median(values)


def lazy_check() -> list[str]:
    """Modules `import chatmodels` should not load, and did."""
    code = (
        "import sys, chatmodels\n"
        "heavy = ('chatmodels._providers', 'aiohttp', 'asyncio', 'pydantic', 'httpx',"
        " 'opentelemetry', 'concurrent.futures', 'ssl')\n"
        "print(' '.join(m for m in sys.modules if m.startswith(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    for module, ms in measure(runs=args.runs).items():
        print(f"import {module:<22} {ms:8.1f} ms")
    loaded = lazy_check()
    print("heavy modules loaded by import chatmodels:", " ".join(loaded) or "none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
