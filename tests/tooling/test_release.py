"""One version, in Cargo.toml: the installed distribution, `chatmodels.__version__` and
`chatmodels --version` all say it, and the changelog has a section for it."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import chatmodels
import pytest
from chatmodels.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def _cargo_version() -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    assert match is not None
    return match.group(1)


def test_the_installed_version_is_cargo_tomls() -> None:
    assert version("chatmodels") == _cargo_version()
    assert chatmodels.__version__ == _cargo_version()


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"chatmodels {_cargo_version()}\n"


def test_python_m_chatmodels_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chatmodels", "--version"], capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (0, f"chatmodels {_cargo_version()}\n")


def test_the_changelog_has_the_version_and_an_unreleased_section() -> None:
    headings = re.findall(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == "Unreleased"
    assert _cargo_version() in headings
