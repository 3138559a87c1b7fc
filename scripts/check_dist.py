"""Check the release artifacts in dist/ before anything installs them; exit 1 on any failure.

Each wheel: its file name claims the manylinux tag given (manylinux_2_17_x86_64 by default),
`auditwheel show` finds it consistent with that tag (no symbol newer than the policy allows)
and needing no shared library outside the policy, and it holds the extension, the stub,
py.typed and the license at Cargo.toml's version. The sdist holds what a build from source
needs. `twine check --strict` passes on every artifact (the README renders as the long
description; license, classifiers and Requires-Python are in the metadata, and each project
URL, if any, is https).

    usage: python scripts/check_dist.py [--tag manylinux_2_17_x86_64] [DIST_DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SDIST_MEMBERS = (
    "PKG-INFO",
    "pyproject.toml",
    "Cargo.toml",
    "Cargo.lock",
    "build.rs",
    "LICENSE",
    "README.md",
    "rust/lib.rs",
    "python/chatmodels/__init__.py",
    "python/chatmodels/_core.pyi",
    "python/chatmodels/py.typed",
)
# Project-URL is not among them: the project has no public home yet (pyproject.toml says so),
# and each URL it declares once it has must be `label, https://...`.
METADATA_FIELDS = ("License-Expression", "Requires-Python", "Classifier")


def cargo_version() -> str:
    """The package version: Cargo.toml's [package] version, its only home."""
    match = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    if match is None:
        raise SystemExit("no version in Cargo.toml")
    return match.group(1)


def glibc(tag: str) -> tuple[int, int]:
    """(2, 17) for manylinux_2_17_x86_64, with the legacy aliases mapped (PEP 600)."""
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    for name, version in legacy.items():
        if tag.startswith(name + "_"):
            return version
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)_\w+", tag)
    if match is None:
        raise ValueError(f"{tag!r} is not a manylinux tag")
    return int(match.group(1)), int(match.group(2))


def check_metadata(name: str, text: str, version: str) -> list[str]:
    """Problems in a METADATA / PKG-INFO text."""
    meta = HeaderParser().parsestr(text)
    problems = [f"{name}: no {field}" for field in METADATA_FIELDS if not meta.get_all(field)]
    for url in meta.get_all("Project-URL") or []:
        if not re.fullmatch(r"[^,]+, https://\S+", url):
            problems.append(f"{name}: Project-URL {url!r} is not `label, https://...`")
    if meta["Version"] != version:
        problems.append(f"{name}: version {meta['Version']}, Cargo.toml says {version}")
    if not str(meta.get("Description-Content-Type", "")).startswith("text/markdown"):
        problems.append(f"{name}: the long description is not the README as markdown")
    return problems


def check_wheel(wheel: Path, tag: str, version: str) -> list[str]:
    """Problems of one wheel: its tags, auditwheel's verdict, its contents."""
    name = wheel.name
    platform_tags = name.removesuffix(".whl").split("-")[-1].split(".")
    if tag not in platform_tags:
        return [f"{name}: does not claim {tag} (claims {', '.join(platform_tags)})"]
    shown = subprocess.run(
        [BIN / "auditwheel", "show", "--json", wheel], capture_output=True, text=True
    )
    if shown.returncode != 0:
        return [f"{name}: auditwheel show failed: {shown.stderr.strip() or shown.stdout}"]
    report = json.loads(shown.stdout)
    problems = []
    overall = report["overall_tag"]
    if not overall.startswith("manylinux") or glibc(overall) > glibc(tag):
        problems.append(f"{name}: auditwheel finds it consistent with {overall} only, not {tag}")
    if report["external_libs"]:
        problems.append(
            f"{name}: needs shared libraries outside the policy: "
            f"{', '.join(report['external_libs'])}"
        )
    for upgrade, needs in report["policy_upgrades"].items():
        if glibc(upgrade) >= glibc(tag):
            problems.append(f"{name}: {upgrade} would need {needs}")
    with zipfile.ZipFile(wheel) as archive:
        members = archive.namelist()
        dist_info = f"chatmodels-{version}.dist-info"
        wanted = {
            "the extension": r"chatmodels/_core\..*\.so",
            "the stub": r"chatmodels/_core\.pyi",
            "py.typed": r"chatmodels/py\.typed",
            "the license": re.escape(f"{dist_info}/licenses/LICENSE"),
            "the entry points": re.escape(f"{dist_info}/entry_points.txt"),
        }
        for what, pattern in wanted.items():
            if not any(re.fullmatch(pattern, member) for member in members):
                problems.append(f"{name}: {what} is missing")
        metadata = f"{dist_info}/METADATA"
        if metadata in members:
            problems += check_metadata(name, archive.read(metadata).decode(), version)
        else:
            problems.append(f"{name}: no {metadata}")
    return problems


def check_sdist(sdist: Path, version: str) -> list[str]:
    """Problems of the sdist: what a build from source needs, and its metadata."""
    prefix = f"chatmodels-{version}/"
    with tarfile.open(sdist) as archive:
        members = set(archive.getnames())
        problems = [
            f"{sdist.name}: {member} is missing"
            for member in SDIST_MEMBERS
            if prefix + member not in members
        ]
        pkg_info = archive.extractfile(prefix + "PKG-INFO")
        if pkg_info is not None:
            problems += check_metadata(sdist.name, pkg_info.read().decode(), version)
    return problems


def main() -> int:
    """Check every artifact in the dist directory; 0 when all pass."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dist", nargs="?", type=Path, default=ROOT / "dist")
    parser.add_argument("--tag", default="manylinux_2_17_x86_64")
    args = parser.parse_args()
    version = cargo_version()
    wheels = sorted(args.dist.glob("*.whl"))
    sdists = sorted(args.dist.glob("*.tar.gz"))
    problems = [] if wheels else [f"no wheel in {args.dist}"]
    if len(sdists) != 1:
        problems.append(f"{len(sdists)} sdists in {args.dist}, want 1")
    for wheel in wheels:
        problems += check_wheel(wheel, args.tag, version)
    for sdist in sdists:
        problems += check_sdist(sdist, version)
    twine = subprocess.run([BIN / "twine", "check", "--strict", *wheels, *sdists])
    if twine.returncode != 0:
        problems.append("twine check --strict failed (above)")
    for problem in problems:
        print(f"check_dist: {problem}", file=sys.stderr)
    if not problems:
        names = ", ".join(p.name for p in (*wheels, *sdists))
        print(
            f"check_dist: {len(wheels)} wheels ({args.tag}, auditwheel clean) and the sdist "
            f"pass: {names}"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
