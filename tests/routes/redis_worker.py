"""A separate process for the Redis state tests (run as a script by test_redis_state.py).

Modes:
  calls URL PREFIX BASE_URL RPM THREADS SECONDS: call a route with rpm RPM from THREADS
      threads for SECONDS; print {"ok": n, "limited": n, "other": n} as JSON.
  hold URL PREFIX CAP LEASE: take CAP slots of a route with max_concurrency CAP, print "held",
      then sleep until killed.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from chatmodels import ChatModelError, Deployment, ErrorCode, ProviderRegistry, RedisState
from chatmodels._providers._builtins import register_builtins
from chatmodels._routes._state import Limits


def calls(url: str, prefix: str, base_url: str, rpm: int, threads: int, seconds: float) -> None:
    registry = ProviderRegistry()
    register_builtins(registry)
    registry.register_route(
        "chat",
        [Deployment("openai", {"model": "m", "base_url": base_url, "api_key": "k"}, rpm=rpm)],
        state=RedisState(url, prefix=prefix),
    )
    model = registry.create("chat")
    counts = {"ok": 0, "limited": 0, "other": 0}
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def run() -> None:
        while time.monotonic() < end:
            try:
                model.invoke("hi")
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
    print(json.dumps(counts), flush=True)


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
    if mode == "calls":
        calls(args[0], args[1], args[2], int(args[3]), int(args[4]), float(args[5]))
    else:
        hold(args[0], args[1], int(args[2]), float(args[3]))
