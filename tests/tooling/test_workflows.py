"""The GitHub workflows: every action pinned to a commit SHA with its release tag beside it, and
the wheels workflow building the tags `make wheels` builds here (`make lint` runs actionlint
and zizmor on the same files; these tests hold what those tools cannot know)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# `owner/repo@<40 hex> # vX.Y.Z` (a path inside the repository may follow the name).
_PINNED = re.compile(r"[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40} # v\d+\.\d+\.\d+")
_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(.+?)\s*$", re.M)


def _uses_lines() -> list[tuple[str, str]]:
    return [(path.name, m.group(1)) for path in WORKFLOWS for m in _USES.finditer(path.read_text())]


def _pyproject_value(key: str) -> str:
    """A string value of pyproject.toml's [tool.cibuildwheel] tables (tomllib is 3.11+)."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(rf'^{re.escape(key)}\s*=\s*"([^"]*)"', text, re.M)
    assert match is not None, key
    return match.group(1)


def test_there_are_workflows_and_each_parses() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "wheels.yml", "bench.yml"}
    for path in WORKFLOWS:
        assert isinstance(yaml.safe_load(path.read_text())["jobs"], dict), path.name


def test_the_pin_pattern_refuses_what_it_must() -> None:
    sha = "08c6903cd8c0fde910a37f88322edcfb5dd907a8"
    assert _PINNED.fullmatch(f"actions/checkout@{sha} # v5.0.0")
    for ref in (
        "actions/checkout@v5",
        f"actions/checkout@{sha}",
        f"actions/checkout@{sha[:7]} # v5.0.0",
        f"actions/checkout@{sha} # v5",
        "dtolnay/rust-toolchain@stable",
    ):
        assert not _PINNED.fullmatch(ref), ref


def test_every_action_is_pinned_to_a_sha_with_its_tag() -> None:
    uses = _uses_lines()
    assert len(uses) >= 10
    assert [(name, ref) for name, ref in uses if not _PINNED.fullmatch(ref)] == []


def test_one_action_at_one_tag_has_one_sha() -> None:
    seen: dict[str, set[str]] = {}
    for _, ref in _uses_lines():
        action, _, rest = ref.partition("@")
        sha, _, tag = rest.partition(" # ")
        seen.setdefault(f"{action} {tag}", set()).add(sha)
        seen.setdefault(f"{action}@{sha}", set()).add(tag)
    assert {key: values for key, values in seen.items() if len(values) > 1} == {}


def test_zizmor_requires_hash_pins() -> None:
    config = yaml.safe_load((ROOT / ".github" / "zizmor.yml").read_text())
    policies = config["rules"]["unpinned-uses"]["config"]["policies"]
    assert policies == {"*": "hash-pin"}


def test_the_wheels_workflow_builds_the_tags_make_wheels_builds() -> None:
    script = (ROOT / "scripts" / "build-wheels.sh").read_text()
    # make wheels: manylinux2014 (= manylinux_2_17) for this interpreter and for 3.13t
    assert "--compatibility manylinux2014" in script
    assert "build-free-threaded-cpython" in script
    assert _pyproject_value("manylinux-x86_64-image") == "manylinux2014"
    assert _pyproject_value("manylinux-aarch64-image") == "manylinux2014"
    selectors = _pyproject_value("build").split()
    here = "cp{}{}-*".format(*sys.version_info[:2])
    assert {here, "cp313t-*"} <= set(selectors), selectors
    assert re.search(
        r'^enable = \[[^]]*"cpython-freethreading"', (ROOT / "pyproject.toml").read_text(), re.M
    )
    # ... and the manylinux_2_17 tag is the one scripts/check_dist.py holds the wheels to
    assert 'default="manylinux_2_17_x86_64"' in (ROOT / "scripts" / "check_dist.py").read_text()

    wheels = yaml.safe_load((ROOT / ".github" / "workflows" / "wheels.yml").read_text())
    runners = wheels["jobs"]["wheels"]["strategy"]["matrix"]["os"]
    assert "ubuntu-latest" in runners  # x86_64 Linux, the platform make wheels builds for
    steps = wheels["jobs"]["wheels"]["steps"]
    assert any(str(step.get("uses", "")).startswith("pypa/cibuildwheel@") for step in steps)
    # No CIBW_* override in the workflow: pyproject.toml's settings are the ones that apply.
    assert "CIBW_" not in (ROOT / ".github" / "workflows" / "wheels.yml").read_text()
    check = wheels["jobs"]["check"]["steps"]
    assert any("twine check --strict" in str(step.get("run", "")) for step in check)
