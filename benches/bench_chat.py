"""The chat benchmarks: chatmodels against the raw clients, ratios measured in the same run.

    python benches/bench_chat.py [--quick] [--servers N] [--skip-concurrency]

One table: sync `invoke` and `stream` (20 content chunks) against raw `http.client`
keep-alive doing the same exchange; 1,000 concurrent `astream` calls against raw aiohttp;
`import chatmodels` in a fresh interpreter beside other imports; creating a provider through
the registry against constructing it directly. Reference rows (httpx, the openai SDK) are
measured when those packages are installed; they have no target.

The server is a canned OpenAI-compatible responder in its own process (``--serve``), so it
does not share our GIL and costs as little as possible: its time is in both sides of every
ratio, so a slower server would flatter the ratios. With ``--servers 2`` two processes share
the port (SO_REUSEPORT). The table says how busy the server was during the concurrent phase;
near 100 % of a core means the server, not the client, bounded the throughput.

Baselines do what any client must: encode the request body, read the response, split the SSE
events and JSON-decode each one. Medians of interleaved rounds; a ratio is the median of the
per-round ratios. Nothing asserts a time: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

CHUNKS = 20
PATH = "/v1/chat/completions"
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
MESSAGES = [{"role": "user", "content": "Say hello in twenty words."}]
MODEL = "gpt-4o-mini"

# -- the canned server ------------------------------------------------------------------------


def _responses() -> tuple[bytes, bytes]:
    """The JSON reply and the SSE reply (20 content chunks, finish, usage, [DONE]), as wire
    bytes with their heads; the stream goes out chunked, one HTTP chunk per event, like the
    real API."""
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    common = {
        "id": "chatcmpl-bench",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_bench",
    }
    words = [f"word{i} " for i in range(CHUNKS)]
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": CHUNKS,
        "total_tokens": 12 + CHUNKS,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    body = dumps(
        {
            **common,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(words), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
    ).encode()
    chunk = {**common, "object": "chat.completion.chunk"}

    def event(choices: list[Any], extra: dict[str, Any] | None = None) -> bytes:
        return b"data: " + dumps({**chunk, "choices": choices, **(extra or {})}).encode() + b"\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    events = [event([choice({"role": "assistant", "content": "", "refusal": None})])]
    events += [event([choice({"content": w})]) for w in words]
    events.append(event([choice({}, "stop")]))
    events.append(event([], {"usage": usage}))
    events.append(b"data: [DONE]\n\n")
    json_wire = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-request-id: req_b\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    sse_wire = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"x-request-id: req_b\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)
        + b"0\r\n\r\n"
    )
    return json_wire, sse_wire


def serve(port: int) -> None:
    """Answer every chat completion with the canned bytes (keep-alive, pipelining-safe)."""
    json_wire, sse_wire = _responses()

    class Protocol(asyncio.Protocol):
        def __init__(self) -> None:
            self.buf = b""
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.buf += data
            out = []
            while True:
                head, sep, rest = self.buf.partition(b"\r\n\r\n")
                if not sep:
                    break
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if len(rest) < length:
                    break
                body, self.buf = rest[:length], rest[length:]
                out.append(sse_wire if b'"stream":true' in body else json_wire)
            if out and self.transport is not None:
                self.transport.write(b"".join(out))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            Protocol, "127.0.0.1", port, reuse_port=True, backlog=4096
        )
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


class Servers:
    """`count` canned-server processes sharing one loopback port."""

    def __init__(self, count: int) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.port = 0
        for _ in range(count):
            proc = subprocess.Popen(
                [sys.executable, __file__, "--serve", str(self.port)],
                stdout=subprocess.PIPE,
                text=True,
            )
            self.procs.append(proc)
            assert proc.stdout is not None
            self.port = int(proc.stdout.readline())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def cpu_seconds(self) -> float:
        """User + system CPU the servers have used so far (Linux /proc)."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for proc in self.procs:
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return float("nan")
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


# -- per-call measurements --------------------------------------------------------------------


def rounds(
    cases: dict[str, Callable[[], object]], number: int, repeat: int
) -> dict[str, list[float]]:
    """µs per call of each case, `repeat` interleaved rounds of `number` calls each."""
    for fn in cases.values():
        for _ in range(min(200, number)):
            fn()
    out: dict[str, list[float]] = {name: [] for name in cases}
    clock = time.perf_counter
    for _ in range(repeat):
        for name, fn in cases.items():
            start = clock()
            for _ in range(number):
                fn()
            out[name].append((clock() - start) / number * 1e6)
    return out


def paired_ratio(ours: Sequence[float], base: Sequence[float]) -> float:
    """The median of per-round ratios (rounds run back to back share the machine's mood)."""
    return statistics.median(a / b for a, b in zip(ours, base, strict=True))


def split_sse(buf: bytes, out: list[Any]) -> tuple[bytes, bool]:
    """Decode the complete events in `buf` into `out`; returns the rest and whether
    ``[DONE]`` came. What any SSE client must do."""
    *events, rest = buf.split(b"\n\n")
    for raw in events:
        for line in raw.split(b"\n"):
            if line.startswith(b"data: "):
                payload = line[6:]
                if payload == b"[DONE]":
                    return rest, True
                out.append(json.loads(payload))
    return rest, False


def sync_cases(
    base_url: str, *, references: bool = True
) -> tuple[dict[str, Callable[[], object]], list[Any]]:
    """The per-call cases (raw, chatmodels, and with `references` httpx / openai when
    installed); the second item lists what to close."""
    import chatmodels

    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    conn = http.client.HTTPConnection("127.0.0.1", port)
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    closers: list[Any] = [conn]

    def raw_invoke() -> object:
        body = dumps({"messages": MESSAGES, "model": MODEL}).encode()
        conn.request("POST", PATH, body, HEADERS)
        return json.loads(conn.getresponse().read())

    def raw_stream() -> object:
        body = dumps(
            {
                "messages": MESSAGES,
                "model": MODEL,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()
        conn.request("POST", PATH, body, HEADERS)
        resp = conn.getresponse()
        events: list[Any] = []
        buf, done = b"", False
        while not done:
            data = resp.read1(65536)
            if not data:
                break
            buf, done = split_sse(buf + data, events)
        while resp.read1(65536):  # the chunked terminator, so the connection is reusable
            pass
        assert len(events) == CHUNKS + 3
        return events

    model = chatmodels.new_registry_provider(
        "openai", {"base_url": base_url, "api_key": "sk-bench", "model": MODEL}
    )
    closers.append(model)

    def invoke() -> object:
        return model.invoke(MESSAGES)

    def stream() -> object:
        n = 0
        for _ in model.stream(MESSAGES):
            n += 1
        assert n == CHUNKS + 3
        return n

    from chatmodels import _observe

    def quiet(fn: Callable[[], object]) -> Callable[[], object]:
        """`fn` with the telemetry observer swapped for the no-op one."""

        def call() -> object:
            previous = _observe.set_observer(None)
            try:
                return fn()
            finally:
                _observe.set_observer(previous)

        return call

    cases: dict[str, Callable[[], object]] = {
        "raw_invoke": raw_invoke,
        "invoke": invoke,
        "invoke_quiet": quiet(invoke),
        "raw_stream": raw_stream,
        "stream": stream,
        "stream_quiet": quiet(stream),
    }
    if not references:
        return cases, closers
    try:
        import httpx

        client = httpx.Client(base_url=base_url, headers=HEADERS)
        closers.append(client)

        def httpx_invoke() -> object:
            return client.post("/chat/completions", json={"messages": MESSAGES, "model": MODEL})

        cases["httpx_invoke"] = httpx_invoke
    except ImportError:
        pass
    try:
        import openai

        sdk: Any = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
        closers.append(sdk)

        def sdk_invoke() -> object:
            return sdk.chat.completions.create(messages=MESSAGES, model=MODEL)

        def sdk_stream() -> object:
            return list(
                sdk.chat.completions.create(
                    messages=MESSAGES,
                    model=MODEL,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )

        cases["sdk_invoke"] = sdk_invoke
        cases["sdk_stream"] = sdk_stream
    except ImportError:
        pass
    return cases, closers


def creation_cases() -> dict[str, Callable[[], object]]:
    """Creating an `openai` provider: through the registry, and directly."""
    import chatmodels
    from chatmodels import ProviderOptions, Secret
    from chatmodels._providers._http import HTTPChatModel
    from chatmodels._providers._openai import OpenAIAdapter

    meta = chatmodels.get_provider_metadata("openai")
    chatmodels.new_registry_provider("openai", {"api_key": "sk-bench"})  # imports the module

    def registry() -> object:
        return chatmodels.new_registry_provider("openai", {"api_key": "sk-bench"})

    def direct() -> object:
        options = ProviderOptions(api_key=Secret("sk-bench"))
        return HTTPChatModel(meta, options, OpenAIAdapter("openai", "sk-bench"))

    return {"registry": registry, "direct": direct}


# -- the table --------------------------------------------------------------------------------

Row = tuple[str, str, str, str, str, str]  # what, chatmodels, baseline, ratio, target, verdict


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_table(title: str, rows: Sequence[Row]) -> None:
    headers: Row = ("measure", "chatmodels", "baseline (same run)", "ratio", "target", "")
    widths = [max(len(r[i]) for r in (headers, *rows)) for i in range(len(headers))]
    print(title)
    for row in (headers, tuple("-" * w for w in widths), *rows):
        cells = [
            cell.ljust(w) if i in (0, 2, 5) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="fewer calls and rounds, no httpx/openai rows"
    )
    parser.add_argument("--servers", type=int, default=1, help="server processes (default 1)")
    parser.add_argument("--skip-concurrency", action="store_true")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0

    import bench_concurrency
    import bench_import

    number, repeat = (300, 5) if args.quick else (1000, 7)
    rows: list[Row] = []
    refs: list[Row] = []
    servers = Servers(args.servers)
    try:
        cases, closers = sync_cases(servers.base_url, references=not args.quick)
        t = rounds(cases, number, repeat)
        for closer in closers:
            closer.close()
        med = {name: statistics.median(v) for name, v in t.items()}
        r = paired_ratio(t["invoke"], t["raw_invoke"])
        rows.append(
            (
                "sync invoke, µs/call",
                f"{med['invoke']:.0f}",
                f"raw http.client + json {med['raw_invoke']:.0f}",
                f"{r:.2f}x",
                "≤ 1.50x",
                verdict(r <= 1.5),
            )
        )
        r = paired_ratio(t["stream"], t["raw_stream"])
        rows.append(
            (
                f"stream {CHUNKS} chunks, µs/call",
                f"{med['stream']:.0f}",
                f"raw http.client + SSE split + json {med['raw_stream']:.0f}",
                f"{r:.2f}x",
                "≤ 1.50x",
                verdict(r <= 1.5),
            )
        )
        for key, label, base in (
            ("invoke_quiet", "invoke, telemetry observer off, µs/call", "raw_invoke"),
            ("stream_quiet", f"stream {CHUNKS} chunks, telemetry off, µs/call", "raw_stream"),
            ("httpx_invoke", "httpx.Client post (no decode), µs/call", "raw_invoke"),
            ("sdk_invoke", "openai SDK create, µs/call", "raw_invoke"),
            ("sdk_stream", f"openai SDK stream {CHUNKS} chunks, µs/call", "raw_stream"),
        ):
            if key in t:
                ratio = paired_ratio(t[key], t[base])
                refs.append((label, f"{med[key]:.0f}", "(reference)", f"{ratio:.2f}x", "", ""))

        if not args.skip_concurrency:
            result = bench_concurrency.run(
                servers.base_url,
                concurrency=1000,
                calls_per_task=2 if args.quick else 3,
                repeat=2 if args.quick else 3,
                server_cpu=servers.cpu_seconds,
            )
            rows.extend(result.rows())
            refs.extend(result.notes())
    finally:
        servers.close()

    created = rounds(creation_cases(), 2000 if args.quick else 5000, repeat)
    reg, direct = statistics.median(created["registry"]), statistics.median(created["direct"])
    rows.append(
        (
            "create 'openai' via registry, µs",
            f"{reg:.1f}",
            f"direct HTTPChatModel(...) {direct:.1f}",
            f"{paired_ratio(created['registry'], created['direct']):.2f}x",
            "≤ 50 µs",
            verdict(reg <= 50),
        )
    )
    sdk_client = None if args.quick else bench_import.openai_client_ms()
    if sdk_client is not None:
        refs.append(("openai.OpenAI(), µs", f"{sdk_client * 1000:.0f}", "(reference)", "", "", ""))

    modules = bench_import.MODULES[:5] if args.quick else bench_import.MODULES
    imports = bench_import.measure(modules, runs=7 if args.quick else 15)
    ours = imports.pop("chatmodels")
    with_chat = imports.pop(bench_import.CHAT_API)
    base = " ".join(f"{name} {ms:.1f}" for name, ms in imports.items())
    rows.append(
        (
            "import chatmodels, ms (fresh interpreter)",
            f"{ours:.1f}",
            base,
            "",
            "≤ 50 ms",
            verdict(ours <= 50),
        )
    )
    # The chat API loads on first use: report what a chat program pays, beside the target.
    refs.append(
        (
            "import chatmodels + first use of the chat API, ms",
            f"{with_chat:.1f}",
            "(ChatModel, ChatChunk, health_check)",
            "",
            "",
            "(reference)",
        )
    )
    mode = "quick" if args.quick else "full"
    title = (
        f"chatmodels chat benchmarks ({mode}; loopback, {args.servers} canned server process(es);"
        f" medians of {repeat} interleaved rounds; ratio = median of per-round ratios)"
    )
    print_table(title, [*rows, *refs])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
