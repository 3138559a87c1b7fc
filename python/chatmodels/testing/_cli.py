"""Loopback HTTP servers for tests, demos and benchmarks: the command line,
``python -m chatmodels.testing serve|replay ...``."""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Sequence

from ._openai import OpenAICompatibleServer
from ._replay import ReplayServer


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chatmodels.testing serve|replay ...``: run a server in the foreground."""
    parser = argparse.ArgumentParser(
        prog="python -m chatmodels.testing",
        description="Loopback HTTP servers for tests, demos and benchmarks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="an OpenAI-compatible server with the echo reply")
    replay = commands.add_parser("replay", help="serve a vcrpy cassette's recorded responses")
    replay.add_argument("cassette", help="path to the cassette YAML file")
    replay.add_argument("--repeat", action="store_true", help="start over after the last one")
    for command in (serve, replay):
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--api-key", help="require this bearer token")
    args = parser.parse_args(argv)

    server: OpenAICompatibleServer | ReplayServer
    if args.command == "serve":
        server = OpenAICompatibleServer(api_key=args.api_key, host=args.host, port=args.port)
    else:
        server = ReplayServer.from_cassette(
            args.cassette, repeat=args.repeat, host=args.host, port=args.port
        )
    with server:
        print(f"serving on {server.base_url} (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0
