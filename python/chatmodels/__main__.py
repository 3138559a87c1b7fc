"""The `chatmodels` command (also `python -m chatmodels`), built only on the public API.

chatmodels providers                      the registered providers, as a table
chatmodels chat -p PROVIDER [-m MODEL] PROMPT   stream a reply to the terminal
chatmodels health [PROVIDER ...]          probe providers and report
chatmodels --version                      the installed version
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import chatmodels


def _providers(_: argparse.Namespace) -> int:
    rows = []
    for name in chatmodels.list_providers():
        meta = chatmodels.get_provider_metadata(name)
        caps = ",".join(sorted(c.value for c in meta.capabilities))
        if meta.api_key_env is None:
            key = "not needed"
        else:
            key = "set" if os.environ.get(meta.api_key_env) else f"unset ({meta.api_key_env})"
        rows.append((name, caps, meta.default_model or "-", key))
    headers = ("provider", "capabilities", "default model", "API key")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for row in (headers, tuple("-" * w for w in widths), *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _chat(args: argparse.Namespace) -> int:
    options: dict[str, object] = {}
    if args.model:
        options["model"] = args.model
    if args.base_url:
        options["base_url"] = args.base_url
    with chatmodels.new_registry_provider(args.provider, options) as model:
        for chunk in model.stream(args.prompt):
            print(chunk.text, end="", flush=True)
    print()
    return 0


def _health(args: argparse.Namespace) -> int:
    report = chatmodels.health_check(args.providers or None, timeout=args.timeout)
    for name, status in report.items():
        latency = f"{status.latency * 1000:.0f} ms" if status.latency is not None else "-"
        code = f" code={status.error_code}" if status.error_code else ""
        detail = f" {status.detail}" if status.detail else ""
        print(f"{name:<20} {status.status:<10} {latency:>8}{code}{detail}")
    return 0 if report.healthy else 1


class _VersionAction(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"chatmodels {chatmodels.__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(prog="chatmodels", description="chat-model providers")
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("providers", help="list the registered providers").set_defaults(
        run=_providers
    )
    chat = commands.add_parser("chat", help="stream a reply to a prompt")
    chat.add_argument("-p", "--provider", required=True)
    chat.add_argument("-m", "--model")
    chat.add_argument("--base-url", help="the API root, e.g. a local server")
    chat.add_argument("prompt")
    chat.set_defaults(run=_chat)
    health = commands.add_parser("health", help="probe providers")
    health.add_argument("providers", nargs="*")
    health.add_argument("--timeout", type=float, default=5.0)
    health.set_defaults(run=_health)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except chatmodels.ChatModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
