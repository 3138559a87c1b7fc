"""The documentation's runnable code blocks run, and do what they say.

A fenced ``python`` block right after a ``<!-- runnable -->`` line in docs/ is runnable. The
runnable blocks of one page run in order, in one namespace, in a child interpreter (they
register providers and configure telemetry, which must not leak into this process), against
loopback servers only. An assertion in a block is a test of the documentation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
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
