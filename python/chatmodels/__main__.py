"""The `chatmodels` command (also `python -m chatmodels`), built only on the public API.

chatmodels providers                      the registered providers, as a table
chatmodels chat -p PROVIDER [-m MODEL] PROMPT   stream a reply to the terminal
chatmodels health [PROVIDER ...]          probe providers (and each route's deployments)
chatmodels routes [ROUTE ...]             the routes' deployments: circuit, load, limits
chatmodels check-config PATH              validate a TOML file of routes
chatmodels --version                      the installed version

`health` and `routes` take ``--config PATH`` (default: $CHATMODELS_CONFIG), a TOML file of
routes to load first.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence

import chatmodels

CONFIG_ENV = "CHATMODELS_CONFIG"
ROUTE_PROVIDER = "chatmodels.route"  # a route's metadata.gen_ai_provider_name


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


def _load_config(args: argparse.Namespace) -> None:
    """Register the routes of ``--config`` (or $CHATMODELS_CONFIG), replacing any of the same
    name (the file may already have been loaded with the registry)."""
    path = args.config or os.environ.get(CONFIG_ENV)
    if path:
        chatmodels.load_config(path, replace=True)


def _check_config(args: argparse.Namespace) -> int:
    """Load the file into a scratch registry (the built-ins and plugins, nothing of the
    global one changed): every check a real load makes, options included."""
    registry = chatmodels.ProviderRegistry()
    from chatmodels._providers._builtins import register_builtins

    register_builtins(registry)
    registry.load_plugins()
    try:
        names = chatmodels.load_config(args.path, registry=registry)
    finally:
        registry.clear()
    print(f"{args.path}: ok, {len(names)} route(s): {', '.join(names) or '-'}")
    return 0


def _health_row(name: str, status: chatmodels.HealthStatus) -> str:
    latency = f"{status.latency * 1000:.0f} ms" if status.latency is not None else "-"
    code = f" code={status.error_code}" if status.error_code else ""
    detail = f" {status.detail}" if status.detail else ""
    return f"{name:<20} {status.status:<10} {latency:>8}{code}{detail}"


def _health(args: argparse.Namespace) -> int:
    _load_config(args)
    report = chatmodels.health_check(args.providers or None, timeout=args.timeout)
    for name, status in report.items():
        if isinstance(status, chatmodels.RouteHealth):
            # the route's own detail lists its deployments, shown a line each below
            print(_health_row(name, dataclasses.replace(status, detail="")))
            for label, deployment in status.deployments:
                print(_health_row(f"  {label}", deployment))
        else:
            print(_health_row(name, status))
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


def _is_route(name: str) -> bool:
    return chatmodels.get_provider_metadata(name).gen_ai_provider_name == ROUTE_PROVIDER


def _route_names(wanted: Sequence[str]) -> list[str]:
    """The registered routes (those named in `wanted`, when given, in that order)."""
    return list(wanted) if wanted else [n for n in chatmodels.list_providers() if _is_route(n)]


def _cell(value: float | int | None, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def _routes(args: argparse.Namespace) -> int:
    _load_config(args)
    rows: list[tuple[str, ...]] = []
    for name in _route_names(args.routes):
        if not _is_route(name):
            print(f"error: {name!r} is a provider, not a route", file=sys.stderr)
            return 2
        model = chatmodels.new_registry_provider(name)
        assert isinstance(model, chatmodels.RoutedModel)
        for index, d in enumerate(model.status()):
            closes = f"{d.seconds_until_close:.1f}" if d.circuit == "open" else "-"
            latency = None if d.latency is None else d.latency * 1000
            rows.append(
                (name, str(index), d.provider, d.model or "-", d.circuit, closes,
                 str(d.in_flight), _cell(d.rpm_left), _cell(d.tpm_left),
                 _cell(latency, "{:.1f} ms"))
            )  # fmt: skip
    if not rows:
        print("no routes registered (register_route, or --config PATH)")
        return 0
    headers = ("route", "#", "provider", "model", "circuit", "closes in s", "in flight",
               "rpm left", "tpm left", "latency")  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for row in (headers, tuple("-" * w for w in widths), *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


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
    health.add_argument("--config", metavar="PATH", help=f"a routes file (default: ${CONFIG_ENV})")
    health.set_defaults(run=_health)
    routes = commands.add_parser("routes", help="show the routes' deployments")
    routes.add_argument("routes", nargs="*", metavar="ROUTE")
    routes.add_argument("--config", metavar="PATH", help=f"a routes file (default: ${CONFIG_ENV})")
    routes.set_defaults(run=_routes)
    check = commands.add_parser("check-config", help="validate a TOML file of routes")
    check.add_argument("path")
    check.set_defaults(run=_check_config)
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
