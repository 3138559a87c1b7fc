"""Loopback HTTP servers for tests, demos and benchmarks.

Two servers, both HTTP/1.1 with keep-alive on 127.0.0.1 (port 0 picks a free port), each
running an asyncio loop in a background thread, both standard library only:

- `OpenAICompatibleServer` speaks the OpenAI Chat Completions API (JSON and SSE streaming,
  tool calls, ``GET /v1/models``) with scripted replies and injectable errors:

      with OpenAICompatibleServer([ScriptedReply(text="Hi!"), ScriptedError(429)]) as server:
          client = OpenAI(base_url=server.base_url, api_key="test")
          ...
          assert server.requests[0].json["model"] == "gpt-4o-mini"

- `ReplayServer` serves the exchanges recorded in a vcrpy cassette, in order, byte for byte:

      with ReplayServer.from_cassette("openai/chat_completion_streaming.yaml") as server:
          ...  # point the client at server.base_url
          server.check_requests()

  `ReplayServer.from_cassette` and `load_cassette` need PyYAML (``pip install pyyaml``).

From a shell: ``python -m chatmodels.testing serve --port 8000`` (or ``replay CASSETTE``); its
first line of output is ``serving on <base_url> ...``. A server in a background thread shares
the GIL with the code under test; benchmarks of CPU-bound clients should run it that way, in a
separate process.
"""

from __future__ import annotations

from ._cli import main
from ._openai import OpenAICompatibleServer, ScriptedError, ScriptedReply, ScriptedToolCall
from ._replay import (
    RecordedInteraction,
    RecordedRequest,
    RecordedResponse,
    ReplayServer,
    assert_bodies_equivalent,
    load_cassette,
)
from ._server import ReceivedRequest

__all__ = [
    "OpenAICompatibleServer",
    "ReceivedRequest",
    "RecordedInteraction",
    "RecordedRequest",
    "RecordedResponse",
    "ReplayServer",
    "ScriptedError",
    "ScriptedReply",
    "ScriptedToolCall",
    "assert_bodies_equivalent",
    "load_cassette",
    "main",
]
