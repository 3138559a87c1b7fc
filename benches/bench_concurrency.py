"""1,000 concurrent `astream` calls against raw aiohttp doing the same, in one run.

    python benches/bench_concurrency.py [--servers N]   (or as part of bench_chat.py)

1,000 tasks start at once; each makes `calls_per_task` streamed calls one after another, so
1,000 are in flight until the end. Both sides use a connection limit of 100 (aiohttp's
default and the transport's). The raw side encodes the body, reads the SSE body, splits the
events and JSON-decodes each one. Rounds alternate raw / chatmodels; throughput and p99 are
medians over rounds. The servers' CPU use over the chatmodels rounds says whether they
bounded the throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench_chat import CHUNKS, HEADERS, MESSAGES, MODEL, Row, split_sse, verdict

LIMIT = 100


@dataclasses.dataclass
class Round:
    """One round: requests per second, latency percentiles in ms, errors, servers' CPU share."""

    throughput: float
    p50: float
    p99: float
    errors: int
    server_busy: float
    client_busy: float


@dataclasses.dataclass
class Result:
    """The rounds of each side."""

    concurrency: int
    raw: list[Round]
    ours: list[Round]
    quiet: list[Round]  # chatmodels with the no-op telemetry observer

    def _med(self, side: list[Round], field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in side))

    def rows(self) -> list[Row]:
        """The table rows with targets."""
        tput = statistics.median(
            o.throughput / r.throughput for o, r in zip(self.ours, self.raw, strict=True)
        )
        p99 = statistics.median(o.p99 / r.p99 for o, r in zip(self.ours, self.raw, strict=True))
        errors = sum(r.errors for r in self.ours)
        raw_errors = sum(r.errors for r in self.raw)
        n = f"{self.concurrency:,}"
        return [
            (
                f"{n} concurrent astream, req/s",
                f"{self._med(self.ours, 'throughput'):,.0f}",
                f"raw aiohttp + SSE split + json {self._med(self.raw, 'throughput'):,.0f}",
                f"{tput:.2f}x",
                "≥ 0.90x",
                verdict(tput >= 0.9),
            ),
            (
                f"{n} concurrent astream, p99 ms",
                f"{self._med(self.ours, 'p99'):.0f}",
                f"raw aiohttp {self._med(self.raw, 'p99'):.0f}",
                f"{p99:.2f}x",
                "≤ 1.20x",
                verdict(p99 <= 1.2),
            ),
            (
                f"{n} concurrent astream, errors",
                str(errors),
                f"raw aiohttp {raw_errors}",
                "",
                "0",
                verdict(errors == 0),
            ),
        ]

    def notes(self) -> list[Row]:
        """How busy servers and client were (a server near 100 % bounds the throughput)."""
        tput = statistics.median(
            q.throughput / r.throughput for q, r in zip(self.quiet, self.raw, strict=True)
        )
        p99 = statistics.median(q.p99 / r.p99 for q, r in zip(self.quiet, self.raw, strict=True))
        return [
            (
                "  astream with telemetry off, req/s",
                f"{self._med(self.quiet, 'throughput'):,.0f}",
                f"p99 {self._med(self.quiet, 'p99'):.0f} ms ({p99:.2f}x raw)",
                f"{tput:.2f}x",
                "",
                "(reference)",
            ),
            (
                "  server CPU during astream rounds",
                f"{self._med(self.ours, 'server_busy'):.0%}",
                f"during raw rounds {self._med(self.raw, 'server_busy'):.0%}",
                "",
                "",
                "(of one core)",
            ),
            (
                "  client CPU during astream rounds",
                f"{self._med(self.ours, 'client_busy'):.0%}",
                f"during raw rounds {self._med(self.raw, 'client_busy'):.0%}",
                "",
                "",
                "(of one core)",
            ),
        ]


async def _round(
    one: Callable[[], Awaitable[None]],
    concurrency: int,
    calls_per_task: int,
    server_cpu: Callable[[], float],
) -> Round:
    latencies: list[float] = []
    errors = 0
    clock = time.perf_counter

    async def task() -> None:
        nonlocal errors
        for _ in range(calls_per_task):
            start = clock()
            try:
                await one()
            except Exception:
                errors += 1
                continue
            latencies.append(clock() - start)

    cpu0, proc0, start = server_cpu(), time.process_time(), clock()
    await asyncio.gather(*(task() for _ in range(concurrency)))
    wall = clock() - start
    cpu1, proc1 = server_cpu(), time.process_time()
    latencies.sort()
    done = len(latencies)
    return Round(
        throughput=done / wall,
        p50=latencies[done // 2] * 1000 if done else float("nan"),
        p99=latencies[min(done - 1, int(done * 0.99))] * 1000 if done else float("nan"),
        errors=errors,
        server_busy=(cpu1 - cpu0) / wall,
        client_busy=(proc1 - proc0) / wall,
    )


async def _run(
    base_url: str,
    concurrency: int,
    calls_per_task: int,
    repeat: int,
    server_cpu: Callable[[], float],
) -> Result:
    import aiohttp
    import chatmodels
    from chatmodels import _observe

    url = base_url + "/chat/completions"
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=LIMIT))

    async def raw() -> None:
        body = dumps(
            {
                "messages": MESSAGES,
                "model": MODEL,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()
        async with session.post(url, data=body, headers=HEADERS) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            events: list[Any] = []
            buf, done = b"", False
            async for data in resp.content.iter_any():
                buf, done = split_sse(buf + data, events)
                if done:
                    break
            if len(events) != CHUNKS + 3:
                raise RuntimeError(f"{len(events)} events")

    model = chatmodels.new_registry_provider(
        "openai", {"base_url": base_url, "api_key": "sk-bench", "model": MODEL}
    )

    async def ours() -> None:
        n = 0
        async for _ in model.astream(MESSAGES):
            n += 1
        if n != CHUNKS + 3:
            raise RuntimeError(f"{n} chunks")

    try:
        # warm up both pools
        await _round(raw, LIMIT, 2, server_cpu)
        await _round(ours, LIMIT, 2, server_cpu)
        result = Result(concurrency, [], [], [])
        for _ in range(repeat):
            result.raw.append(await _round(raw, concurrency, calls_per_task, server_cpu))
            result.ours.append(await _round(ours, concurrency, calls_per_task, server_cpu))
            previous = _observe.set_observer(None)
            try:
                result.quiet.append(await _round(ours, concurrency, calls_per_task, server_cpu))
            finally:
                _observe.set_observer(previous)
        return result
    finally:
        await session.close()
        await model.aclose()


def run(
    base_url: str,
    *,
    concurrency: int = 1000,
    calls_per_task: int = 3,
    repeat: int = 3,
    server_cpu: Callable[[], float] = lambda: float("nan"),
) -> Result:
    """Run the rounds against an OpenAI-compatible `base_url`."""
    return asyncio.run(_run(base_url, concurrency, calls_per_task, repeat, server_cpu))


def main(argv: Sequence[str] | None = None) -> int:
    from bench_chat import Servers, print_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--calls-per-task", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    servers = Servers(args.servers)
    try:
        result = run(
            servers.base_url,
            concurrency=args.concurrency,
            calls_per_task=args.calls_per_task,
            repeat=args.repeat,
            server_cpu=servers.cpu_seconds,
        )
    finally:
        servers.close()
    print_table(
        f"concurrent astream ({args.servers} server process(es))", [*result.rows(), *result.notes()]
    )
    sides = (("raw", result.raw), ("chatmodels", result.ours), ("quiet", result.quiet))
    for side, rounds in sides:
        for r in rounds:
            print(
                f"  {side:<10} {r.throughput:8,.0f} req/s  p50 {r.p50:6.0f} ms  p99 {r.p99:6.0f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
