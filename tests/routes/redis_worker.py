"""A separate process for the Redis state tests (run as a script by the test_redis_*.py files).

Modes:
  calls URL PREFIX BASE_URL RPM TPM THREADS SECONDS: call a route (limits rpm RPM, tpm TPM;
      0 = none) from THREADS threads for SECONDS, with max_tokens 5; print {"ok": n,
      "limited": n, "other": n} as JSON.
  acalls URL PREFIX BASE_URL RPM TPM TASKS SECONDS: the same from TASKS asyncio tasks with
      `ainvoke`, the state built on a redis.asyncio client.
  follow URL PREFIX DOWN_URL UP_URL COOLDOWN SECONDS: call a route of two deployments
      (priority, breaker failures=1) in a loop for SECONDS; print "ready" after the first
      call, then {"ok": n, "other": n, "outages": n}.
  hold URL PREFIX CAP LEASE: take CAP slots of a route with max_concurrency CAP, print "held",
      then sleep until killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any

from chatmodels import (
    Breaker,
    ChatModelError,
    Deployment,
    ErrorCode,
    ProviderRegistry,
    RedisState,
)
from chatmodels._providers._builtins import register_builtins
from chatmodels._routes._state import Limits


def deployment(base_url: str, rpm: int = 0, tpm: int = 0) -> Deployment:
    return Deployment(
        "openai",
        {"model": "m", "base_url": base_url, "api_key": "k"},
        rpm=rpm or None,
        tpm=tpm or None,
    )


def route(state: RedisState, base_url: str, rpm: int, tpm: int) -> ProviderRegistry:
    registry = ProviderRegistry()
    register_builtins(registry)
    registry.register_route("chat", [deployment(base_url, rpm, tpm)], state=state)
    return registry


def outages(registry: ProviderRegistry) -> int:
    """The outages the route's state saw (a reply later than its timeout is one)."""
    state: Any = registry._table.get("chat", "t").make.state
    return int(state.outages)


def calls(url: str, prefix: str, base_url: str, rpm: int, tpm: int, threads: int,
          seconds: float) -> None:  # fmt: skip
    # (a timeout for a loaded machine: these runs are about exactness while Redis is up)
    registry = route(RedisState(url, prefix=prefix, timeout=2), base_url, rpm, tpm)
    model = registry.create("chat")
    counts = {"ok": 0, "limited": 0, "other": 0}
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def run() -> None:
        while time.monotonic() < end:
            try:
                model.invoke("hi", max_tokens=5)
                kind = "ok"
            except ChatModelError as exc:
                kind = "limited" if exc.code is ErrorCode.RATE_LIMITED else "other"
                time.sleep(0.005)
            with lock:
                counts[kind] += 1

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(json.dumps({**counts, "outages": outages(registry)}), flush=True)


def acalls(url: str, prefix: str, base_url: str, rpm: int, tpm: int, tasks: int,
           seconds: float) -> None:  # fmt: skip
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    registry = route(RedisState(client, prefix=prefix, timeout=2), base_url, rpm, tpm)
    model = registry.create("chat")
    counts = {"ok": 0, "limited": 0, "other": 0}

    async def run(end: float) -> None:
        while time.monotonic() < end:
            try:
                await model.ainvoke("hi", max_tokens=5)
                kind = "ok"
            except ChatModelError as exc:
                kind = "limited" if exc.code is ErrorCode.RATE_LIMITED else "other"
                await asyncio.sleep(0.005)
            counts[kind] += 1

    async def main() -> None:
        end = time.monotonic() + seconds
        await asyncio.gather(*(run(end) for _ in range(tasks)))

    asyncio.run(main())
    print(json.dumps({**counts, "outages": outages(registry)}), flush=True)


def follow(url: str, prefix: str, down_url: str, up_url: str, cooldown: float,
           seconds: float) -> None:  # fmt: skip
    registry = ProviderRegistry()
    register_builtins(registry)
    registry.register_route(
        "chat",
        [deployment(down_url), deployment(up_url)],
        breaker=Breaker(failures=1, cooldown=cooldown),
        state=RedisState(url, prefix=prefix, timeout=2),
    )
    model = registry.create("chat")
    counts = {"ok": 0, "other": 0}
    end = time.monotonic() + seconds
    first = True
    while time.monotonic() < end:
        try:
            model.invoke("from-b")
            counts["ok"] += 1
        except ChatModelError:
            counts["other"] += 1
        if first:
            print("ready", flush=True)
            first = False
        time.sleep(0.001)
    print(json.dumps({**counts, "outages": outages(registry)}), flush=True)


def hold(url: str, prefix: str, cap: int, lease: float) -> None:
    class Model:
        class metadata:
            name = "openai"

        class options:
            base_url = "http://held"
            model = "m"

    store = RedisState(url, prefix=prefix, lease=lease)
    state = store.route_state("held", [Model], [Limits(max_concurrency=cap)], None)  # type: ignore[list-item]
    for _ in range(cap):
        assert state.try_acquire(0, 0.0, 0).admitted
    print("held", flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode in ("calls", "acalls"):
        run = calls if mode == "calls" else acalls
        run(args[0], args[1], args[2], int(args[3]), int(args[4]), int(args[5]), float(args[6]))
    elif mode == "follow":
        follow(args[0], args[1], args[2], args[3], float(args[4]), float(args[5]))
    else:
        hold(args[0], args[1], int(args[2]), float(args[3]))
