"""MkDocs hooks of the documentation site (mkdocs.yml names this file under ``hooks``).

- The providers page's table is generated at build time from the built-in metadata
  (`chatmodels._providers._builtins.BUILTINS`): a page holding the marker
  ``<!-- providers-table -->`` gets the table in its place. Nothing of it is written by hand
  but each wire format's name.
- Every public name (the ``__all__`` of the documented modules, and the public members of
  their classes) must have a docstring: one without makes a warning, which fails
  ``mkdocs build --strict``.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- providers-table -->"
# The modules the API reference documents; their __all__ names are the public ones.
PUBLIC_MODULES = ("chatmodels", "chatmodels.telemetry", "chatmodels.testing", "chatmodels._core")
# Each adapter module's wire format. A provider served by a module missing here fails the build.
WIRE_FORMATS = {
    "._openai": "OpenAI Chat Completions",
    "._anthropic": "Anthropic Messages",
    "._gemini": "Google Gen AI generateContent",
    "._ollama": "Ollama /api/chat",
    "._bedrock": "Bedrock Converse",
    "._cohere": "Cohere v2 Chat",
    "._mistral": "Mistral chat completions",
    "._fake": "in-process (no network)",
}

log = logging.getLogger("mkdocs.plugins.chatmodels")


def _builtins() -> Any:
    """`chatmodels._providers._builtins.BUILTINS` of the source tree being documented (the
    metadata is pure Python: without a built extension the registry falls back to its twin,
    silently)."""
    source = str(ROOT / "python")
    if source not in sys.path:
        sys.path.insert(0, source)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "the chatmodels Rust extension", RuntimeWarning)
        from chatmodels._providers._builtins import BUILTINS
    return BUILTINS


def providers_table() -> str:
    """The built-in providers as a Markdown table, from their registered metadata."""
    builtins = _builtins()

    rows = [
        "| name | wire format | capabilities | default model | key variable |",
        "| --- | --- | --- | --- | --- |",
    ]
    for module, meta in sorted(builtins, key=lambda entry: entry[1].name):
        wire = WIRE_FORMATS.get(module)
        if wire is None:
            log.warning("providers table: no wire format named for %s (%s)", module, meta.name)
            wire = module
        caps = ", ".join(sorted(c.value for c in meta.capabilities))
        model = f"`{meta.default_model}`" if meta.default_model else "-"
        key = f"`{meta.api_key_env}`" if meta.api_key_env else "-"
        rows.append(f"| `{meta.name}` | {wire} | {caps} | {model} | {key} |")
    return "\n".join(rows)


def missing_docstrings(search_path: Path = ROOT / "python") -> list[str]:
    """The public names (and public class members) that have no docstring."""
    import griffe

    missing: list[str] = []
    loader = griffe.GriffeLoader(search_paths=[str(search_path)])
    for module_name in PUBLIC_MODULES:
        package, _, rest = module_name.partition(".")
        loaded = loader.load(package)
        module: Any = loaded if not rest else loaded[rest]
        loader.resolve_aliases(external=False, implicit=False)
        names = module.exports if module.exports is not None else []
        for name in names:
            name = name if isinstance(name, str) else name.name
            try:
                obj = module[name].final_target if module[name].is_alias else module[name]
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                missing.append(f"{module_name}.{name} (not found)")
                continue
            if obj.is_attribute:
                continue  # constants and type aliases: described where they are used
            if not obj.docstring:
                missing.append(f"{module_name}.{name}")
            if obj.is_class:
                for member_name, member in obj.members.items():
                    if member_name.startswith("_") or member.is_alias or member.is_attribute:
                        continue
                    if not member.docstring:
                        missing.append(f"{module_name}.{name}.{member_name}")
    return sorted(set(missing))


def on_config(config: Any) -> Any:
    """Check the docstrings before anything is rendered."""
    for name in missing_docstrings():
        log.warning("public name without a docstring: %s", name)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Put the generated providers table where the marker is."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, providers_table())
    return markdown


if __name__ == "__main__":
    # python scripts/mkdocs_hooks.py: print what the hooks would generate and report.
    print(providers_table())
    problems = missing_docstrings()
    print("\n".join(f"no docstring: {name}" for name in problems) or "every public name has one")
    sys.exit(1 if problems else 0)
