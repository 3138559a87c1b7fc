"""No code or document points outside the repository, except the project inputs that live
beside it by design: the recorded exchanges (../shared/cassettes) and the free-threaded
CPython build tool (../shared/tools)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("python", "tests", "benches", "docs", "examples", "scripts", "rust", ".github")
TOP_FILES = ("README.md", "Makefile", "pyproject.toml", "Cargo.toml")
SUFFIXES = {".py", ".pyi", ".md", ".rs", ".toml", ".sh", ".yml", ".yaml", ".txt", ".cfg", ""}
# An absolute path into a machine (a home, a scratch or a work directory), or a relative
# path that climbs out of the repository to anything but the two shared inputs.
OUTSIDE = re.compile(
    r"(?<![\w.:/])/(?:work|root|home|tmp|Users)/[\w.-]"
    r"|(?<![\w.])\.\./(?!shared/(?:cassettes|tools)\b)[\w.-]"
    r"|(?<![\w.])~/[\w.-]"
)


def _files() -> list[Path]:
    found = [ROOT / name for name in TOP_FILES if (ROOT / name).is_file()]
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*")):
            skipped = {"__pycache__", "target", "cassettes"} & set(path.parts)
            if path.is_file() and path.suffix in SUFFIXES and not skipped:
                found.append(path)
    return found


def _outside(text: str) -> list[str]:
    return [match.group(0) for match in OUTSIDE.finditer(text)]


def test_the_pattern_finds_what_it_must() -> None:
    assert _outside("see /work/notes/PROVIDERS.md") == ["/work/n"]
    assert _outside("from ../other/thing and ~/.config") == ["../o", "~/."]
    assert _outside("the cassettes in ../shared/cassettes/openai, ../shared/tools/x") == []
    assert _outside("https://example.com/home/x and a/tmp/b") == []


def test_nothing_points_outside_the_repository() -> None:
    offenders = []
    for path in _files():
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if _outside(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
