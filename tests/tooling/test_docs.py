"""The documentation's runnable code blocks run, and do what they say.

A fenced ``python`` block right after a ``<!-- runnable -->`` line in docs/ is runnable. The
runnable blocks of one page run in order, in one namespace, in a child interpreter (they
register providers and configure telemetry, which must not leak into this process), against
loopback servers only. An assertion in a block is a test of the documentation.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MARKER = "<!-- runnable -->"
_BLOCK = re.compile(r"^<!-- runnable -->\n```python[^\n]*\n(.*?)^```$", re.M | re.S)
# Pages that must keep runnable examples: a lost marker would silently stop testing them.
EXPECTED = {"getting-started.md": 1, "registry.md": 3, "testing.md": 2, "telemetry.md": 1}


def runnable_blocks(text: str) -> list[str]:
    """The runnable blocks of a page, in order; a marker not followed by a python fence is an
    error (it would otherwise test nothing)."""
    blocks = _BLOCK.findall(text)
    if len(blocks) != text.count(MARKER):
        raise ValueError(f"{text.count(MARKER)} markers but {len(blocks)} python blocks after one")
    return blocks


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if MARKER in p.read_text(encoding="utf-8"))


def test_the_marked_pages_keep_their_runnable_blocks() -> None:
    found = {p.name: len(runnable_blocks(p.read_text(encoding="utf-8"))) for p in _pages()}
    for page, count in EXPECTED.items():
        assert found.get(page, 0) >= count, (page, found)


def test_a_marker_without_a_python_block_is_refused() -> None:
    assert runnable_blocks(f"{MARKER}\n```python\nx = 1\n```\n") == ["x = 1\n"]
    with pytest.raises(ValueError, match="2 markers but 1"):
        runnable_blocks(f"{MARKER}\n```python\nx = 1\n```\n{MARKER}\n```sh\nls\n```\n")


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_runnable_blocks_run(page: Path, tmp_path: Path) -> None:
    code = "\n".join(runnable_blocks(page.read_text(encoding="utf-8")))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{page.name}:\n{done.stdout}\n{done.stderr}"


def _load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_providers_table_is_generated_from_the_builtin_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chatmodels._providers._builtins import BUILTINS

    monkeypatch.setattr(sys, "path", list(sys.path))  # the hook puts python/ on it
    hooks = _load_hooks()
    assert {module for module, _ in BUILTINS} <= set(hooks.WIRE_FORMATS)
    rows = hooks.providers_table().splitlines()
    assert rows[0] == "| name | wire format | capabilities | default model | key variable |"
    by_name = {row.split(" | ")[0].strip("| `"): row for row in rows[2:]}
    assert set(by_name) == {meta.name for _, meta in BUILTINS}
    for module, meta in BUILTINS:
        cells = [cell.strip() for cell in by_name[meta.name].strip("|").split("|")]
        assert cells[1] == hooks.WIRE_FORMATS[module]
        assert cells[2] == ", ".join(sorted(c.value for c in meta.capabilities))
        assert cells[3] == (f"`{meta.default_model}`" if meta.default_model else "-")
        assert cells[4] == (f"`{meta.api_key_env}`" if meta.api_key_env else "-")
    page = (DOCS / "providers.md").read_text(encoding="utf-8")
    assert hooks.MARKER in page
    assert "| --- |" not in page  # the page holds the marker, never a hand-written table


def _normalised(line: str) -> str:
    """A span-tree line without what changes from run to run (timings, the backend)."""
    line = re.sub(r", \d+\.\d+ ms\]", "]", line)
    line = re.sub(r"(time_to_first_chunk = )[\d.]+", r"\1T", line)
    return re.sub(r"(chatmodels\.backend = )'\w+'", r"\1B", line)


def test_the_telemetry_pages_span_tree_is_the_demos() -> None:
    page = (DOCS / "telemetry.md").read_text(encoding="utf-8")
    match = re.search(r"The demo's span tree.*?```text\n(.*?)^```$", page, re.M | re.S)
    assert match is not None
    documented = [_normalised(line) for line in match.group(1).splitlines()]
    done = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "examples" / "telemetry_demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.split("== spans\n", 1)[1]
    shown = [_normalised(line) for line in printed.split("\n\n", 1)[0].splitlines()]
    # Every documented line is printed, in the same order; a "..." line stands for lines left out
    # (and a line ending in "..." for the rest of that line).
    position = 0
    for line in documented:
        if line.strip().startswith("..."):
            continue
        prefix = line.removesuffix("...") if line.endswith("...") else None
        while position < len(shown) and not (
            shown[position] == line or (prefix is not None and shown[position].startswith(prefix))
        ):
            position += 1
        assert position < len(shown), f"documented but not printed by the demo: {line!r}"
        position += 1
    assert len([line for line in documented if "[CLIENT" in line]) == len(
        [line for line in shown if "[CLIENT" in line]
    )
