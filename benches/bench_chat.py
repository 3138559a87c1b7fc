# ruff: noqa: E501  (the embedded server script keeps its wire bytes on one line)
"""Per-call cost of `invoke` / `stream` against raw `http.client` on loopback, same run.

A minimal OpenAI-compatible server runs in a subprocess (so it does not share our GIL) and
answers every request with the same bytes. Prints a table; run:
    python benches/bench_chat.py
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import chatmodels

SERVER = textwrap.dedent(
    r"""
    import asyncio, json, sys
    BODY = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!"},
        "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}).encode()
    EVENTS = b"".join(
        b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"w%d "},"finish_reason":null}]}\n\n' % i
        for i in range(20)
    ) + b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":20,"total_tokens":25}}\n\ndata: [DONE]\n\n'
    JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    SSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s" % (len(EVENTS), EVENTS)
    class P(asyncio.Protocol):
        def connection_made(self, t): self.t, self.buf = t, b""
        def data_received(self, data):
            self.buf += data
            while True:
                head, sep, rest = self.buf.partition(b"\r\n\r\n")
                if not sep: return
                n = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"): n = int(line.split(b":")[1])
                if len(rest) < n: return
                body, self.buf = rest[:n], rest[n:]
                self.t.write(SSE if b'"stream":true' in body else JSON)
    async def main():
        server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()
    asyncio.run(main())
    """
)

REQUEST = json.dumps({"messages": [{"role": "user", "content": "hi"}], "model": "m"}).encode()
STREAM_REQUEST = json.dumps(
    {"messages": [{"role": "user", "content": "hi"}], "model": "m", "stream": True}
).encode()


def per_call(fn: Callable[[], object], n: int) -> float:
    for _ in range(200):
        fn()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def main() -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        conn = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Content-Type": "application/json", "Authorization": "Bearer k"}

        def raw() -> object:
            conn.request("POST", "/v1/chat/completions", REQUEST, headers)
            return json.loads(conn.getresponse().read())

        def raw_stream() -> object:
            conn.request("POST", "/v1/chat/completions", STREAM_REQUEST, headers)
            resp = conn.getresponse()
            while resp.read1(65536):
                pass
            resp.close()
            return None

        model = chatmodels.new_registry_provider(
            "openai_compatible",
            {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "k", "model": "m"},
        )

        def invoke() -> object:
            return model.invoke("hi")

        def stream() -> object:
            for _ in model.stream("hi"):
                pass
            return None

        def create() -> object:
            return chatmodels.new_registry_provider("openai", {"api_key": "k"})

        n = 3000
        rows = [
            ("raw http.client + json.loads", per_call(raw, n)),
            ("chatmodels invoke", per_call(invoke, n)),
            ("raw http.client, 21-event SSE body", per_call(raw_stream, n)),
            ("chatmodels stream (21 events)", per_call(stream, n)),
            ("new_registry_provider('openai')", per_call(create, n)),
        ]
        print(f"{'case':45} {'µs/call':>10}")
        for name, us in rows:
            print(f"{name:45} {us:10.1f}")
        print(
            f"invoke / raw = {rows[1][1] / rows[0][1]:.2f}x, stream / raw = {rows[3][1] / rows[2][1]:.2f}x"
        )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
