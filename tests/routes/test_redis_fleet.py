"""`RedisState` across processes, against a real redis-server on loopback: rpm and tpm hold
exactly for 4 processes sharing one route, and a circuit opened by one process stops the
others' calls (and closes for them) through Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from chatmodels import Breaker, Deployment, ProviderRegistry, RedisState
from chatmodels._providers._builtins import register_builtins
from chatmodels.testing import OpenAICompatibleServer, ScriptedError, ScriptedReply
from redis_helpers import WORKER, RedisServer, worker_env

PROCESSES = 4


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def prefix() -> str:
    return f"f{uuid.uuid4().hex[:8]}"


@pytest.fixture
def http() -> Iterator[list[OpenAICompatibleServer]]:
    started: list[OpenAICompatibleServer] = []
    yield started
    for s in started:
        s.stop()


def serve(started: list[OpenAICompatibleServer], replies: Any = None) -> OpenAICompatibleServer:
    s = OpenAICompatibleServer(replies).start()
    started.append(s)
    return s


def workers(*argv: str) -> list[subprocess.Popen[bytes]]:
    env = worker_env()
    return [
        subprocess.Popen([sys.executable, str(WORKER), *argv], stdout=subprocess.PIPE, env=env)
        for _ in range(PROCESSES)
    ]


def totals(procs: list[subprocess.Popen[bytes]]) -> dict[str, int]:
    out = {"ok": 0, "limited": 0, "other": 0, "outages": 0}
    for p in procs:
        stdout, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        for k, v in json.loads(stdout).items():
            out[k] += v
    return out


@pytest.mark.parametrize("mode", ["calls", "acalls"], ids=["threads", "asyncio"])
def test_limits_exact_across_processes(
    server: RedisServer, prefix: str, http: list[OpenAICompatibleServer], mode: str
) -> None:
    s = serve(http)
    rpm = 40
    # 4 processes x 8 threads (or 8 asyncio tasks on a redis.asyncio client), 3 seconds
    got = totals(workers(mode, server.url, prefix, s.base_url, str(rpm), "0", "8", "3"))
    received = len(s.requests)
    assert received <= rpm  # one window: never more than the limit
    assert received >= 0.95 * rpm  # saturated: the limit is used
    assert got["ok"] == received
    assert got["other"] == 0
    assert got["limited"] > 0
    assert got["outages"] == 0


def test_tpm_corrected_by_usage_across_processes(
    server: RedisServer, prefix: str, http: list[OpenAICompatibleServer]
) -> None:
    # Each call is estimated at 10 tokens ("hi": 5 in, max_tokens 5) and uses 5 (the
    # server's usage): the limit admits twice the calls its estimates alone would.
    tokens_per_call = 5
    s = serve(http, lambda request: ScriptedReply(prompt_tokens=3, completion_tokens=2))
    tpm = 300
    got = totals(workers("calls", server.url, prefix, s.base_url, "0", str(tpm), "8", "3"))
    used = len(s.requests) * tokens_per_call
    assert used <= tpm  # one window: never more tokens than the limit
    assert used >= 0.95 * tpm  # saturated, with the estimates corrected by the usage
    assert got["ok"] == len(s.requests)
    assert got["other"] == 0
    assert got["limited"] > 0
    assert got["outages"] == 0


def dep(s: OpenAICompatibleServer) -> Deployment:
    return Deployment("openai", {"model": "m", "base_url": s.base_url, "api_key": "k"})


def test_circuit_propagates_within_100ms_and_closes_across_processes(
    server: RedisServer, prefix: str, http: list[OpenAICompatibleServer]
) -> None:
    cooldown = 1.0
    lock = threading.Lock()
    seen: list[tuple[float, str]] = []  # (arrival, prompt) at the first deployment

    def first(request: Any) -> ScriptedError | None:
        prompt = request.json["messages"][-1]["content"]
        with lock:
            seen.append((time.monotonic(), prompt))
        return ScriptedError(503, "down") if prompt == "from-a-fail" else None

    flaky, up = serve(http, first), serve(http)
    b = subprocess.Popen(
        [sys.executable, str(WORKER), "follow", server.url, prefix, flaky.base_url, up.base_url,
         str(cooldown), "4"],
        stdout=subprocess.PIPE,
        env=worker_env(),
    )  # fmt: skip
    reg = ProviderRegistry()
    register_builtins(reg)
    try:
        reg.register_route(
            "chat",
            [dep(flaky), dep(up)],
            breaker=Breaker(failures=1, cooldown=cooldown),
            # (a timeout for a loaded machine: a late reply would switch A to local state)
            state=RedisState(server.url, prefix=prefix, timeout=2),
        )
        model = reg.create("chat")
        state: Any = reg._table.get("chat", "t").make.state
        assert b.stdout is not None
        assert b.stdout.readline().strip() == b"ready"
        time.sleep(0.3)  # B sends to the first deployment all along
        assert model.invoke("from-a-fail").text == "Echo: from-a-fail"  # A failed over
        with lock:
            opened = next(t for t, p in seen if p == "from-a-fail")
        time.sleep(cooldown + 0.7)
        assert model.invoke("from-a-ok").text == "Echo: from-a-ok"
        assert state.outages == 0  # A decided in Redis throughout
        stdout, _ = b.communicate(timeout=30)
    finally:
        b.kill()
        b.wait()
        reg.clear()
    with lock:
        from_b = [t for t, p in seen if p == "from-b"]
        a_ok = [t for t, p in seen if p == "from-a-ok"]
    assert json.loads(stdout.splitlines()[-1]) == {"ok": mock.ANY, "other": 0, "outages": 0}
    assert any(opened - 0.3 < t < opened for t in from_b)  # B was sending before it opened
    during = [t for t in from_b if opened <= t < opened + cooldown]
    # B's last request to it after A opened the circuit: within 100 ms (its calls in flight)
    delay = max(during, default=opened) - opened
    assert delay <= 0.1, delay
    after = [t for t in from_b if t >= opened + 0.1]
    assert after, "B never went back to the first deployment after the cooldown"
    assert after[0] >= opened + cooldown - 0.01  # closed only after the cooldown
    assert after[0] <= opened + cooldown + 0.5  # B took the half-open trial
    assert a_ok, "A's call after the cooldown did not go to the first deployment (closed)"
    assert len(up.requests) > 0  # B's calls went to the second one meanwhile
