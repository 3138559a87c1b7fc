"""The Redis route-state benchmarks: what a decision in Redis costs, how exact the limits are
across processes, how fast a circuit reaches another process. Against a redis-server on
loopback started here (Debian's package); ratios against baselines measured in the same run.

    python benches/bench_routes_redis.py [--quick]

1. Decision: one `acquire_first` + `release` on a `RedisState` route state (the release is
   queued; the next decision sends it in its own round trip) against a bare redis-py
   ``PING`` round trip and the in-process (Rust) decision, wall time, medians of interleaved
   rounds, and CPU per call of this process and of redis-server; and a routed `invoke` with
   Redis state against the same with in-process state, on bench_chat's canned loopback
   server. Goal: decision <= PING x 1.2 + in-process decision.
2. Saturation: 4 processes x 4 threads deciding as fast as they can on one deployment for
   2 s, rpm 200 (and tpm 2,000 with estimates of 10 tokens corrected to 5): requests (tokens)
   admitted / the limit. Goal: <= 1.0 and >= 0.95.
3. Propagation: process A opens a deployment's circuit (a failure, breaker failures=1) 100
   times; process B decides on it in a loop; the delay from A's failure to B's last admission
   while the circuit is open. Goal: p99 <= 100 ms.

Nothing asserts a time: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chatmodels
import redis
from bench_chat import MESSAGES, Servers
from chatmodels import Breaker, Deployment, ProviderRegistry, RedisState
from chatmodels._providers._builtins import register_builtins
from chatmodels._routes._state import Limits, Outcome, RouteState, new_route_state


class Model:
    """What `RedisState.route_state` reads of a model."""

    class metadata:
        name = "openai"

    class options:
        base_url = "http://bench"
        model = "m"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed (apt-get install redis-server)"
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


def bare(url: str, prefix: str, limits: Limits, breaker: Breaker | None = None) -> Any:
    # (a generous timeout: on a loaded machine a slow reply would switch to local state)
    store = RedisState(url, prefix=prefix, timeout=2)
    return store.route_state("r", [Model], [limits], breaker, jitter=0.0)  # type: ignore[list-item]


def wall_rounds(
    cases: dict[str, Callable[[], object]], number: int, repeat: int
) -> dict[str, list[float]]:
    """µs of wall time per call of each case, `repeat` interleaved rounds."""
    for fn in cases.values():
        for _ in range(min(50, number)):
            fn()
    out: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            out[name].append((time.perf_counter() - start) / number * 1e6)
    return out


def cpu_per_call(fn: Callable[[], object], number: int, server_pid: int) -> tuple[float, float]:
    """µs of this process's CPU and of the Redis server's CPU per call of `fn` (Linux /proc;
    the server's at clock-tick resolution, so `number` should be large)."""
    tick = os.sysconf("SC_CLK_TCK")

    def server() -> float:
        fields = Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    s0, c0 = server(), time.process_time()
    for _ in range(number):
        fn()
    return (time.process_time() - c0) / number * 1e6, (server() - s0) / number * 1e6


def decide(state: RouteState) -> Callable[[], None]:
    def call() -> None:
        admission = state.acquire_first((0,), time.monotonic(), 10)
        state.release(0, admission.ticket, time.monotonic(), Outcome.SUCCESS, 5, 0.01)

    return call


def decision(url: str, server_pid: int, number: int, repeat: int) -> None:
    limits = Limits(rpm=10_000_000, tpm=1_000_000_000, max_concurrency=100)
    ping_client = redis.Redis.from_url(url, socket_timeout=2)
    redis_state = bare(url, "bench-decision", limits)
    local = new_route_state([limits], None, backend="rust")

    servers = Servers(1)
    registries = {}
    try:
        chatmodels.configure(level="off")  # the calls' own telemetry is the same on both sides
        options = {"model": "gpt-4o-mini", "api_key": "sk-bench", "base_url": servers.base_url}
        routed = {}
        for name, state in (("in-process", None), ("redis", RedisState(url, timeout=2))):
            reg = registries[name] = ProviderRegistry(backend="rust")
            register_builtins(reg)
            reg.register_route("chat", [Deployment("openai", options, rpm=10**7)], state=state)
            routed[name] = reg.create("chat")
        cases: dict[str, Callable[[], object]] = {
            "PING": ping_client.ping,
            "in-process decision": decide(local),
            "redis decision": decide(redis_state),
            "routed invoke, in-process": lambda: routed["in-process"].invoke(MESSAGES),
            "routed invoke, redis": lambda: routed["redis"].invoke(MESSAGES),
        }
        times = wall_rounds(cases, number, repeat)
        cpu = {
            name: cpu_per_call(cases[name], number * 3, server_pid)
            for name in ("PING", "redis decision")
        }
    finally:
        servers.close()
        for reg in registries.values():
            reg.clear()
    med = {name: statistics.median(values) for name, values in times.items()}
    ping, inproc = med["PING"], med["in-process decision"]
    print("\n1. a decision in Redis against a PING round trip (wall µs, medians)")
    print(f"  {'case':<28} {'median':>9} {'(x - in-process) / PING':>24}")
    for name in ("PING", "in-process decision", "redis decision"):
        ratio = (
            "" if name in ("PING", "in-process decision") else f"{(med[name] - inproc) / ping:.2f}"
        )
        print(f"  {name:<28} {med[name]:9.1f} {ratio:>24}")
    added = statistics.median(
        a - b
        for a, b in zip(
            times["routed invoke, redis"], times["routed invoke, in-process"], strict=True
        )
    )
    print(f"  {'routed invoke, in-process':<28} {med['routed invoke, in-process']:9.1f}")
    print(f"  {'routed invoke, redis':<28} {med['routed invoke, redis']:9.1f} {added / ping:24.2f}")
    for name, (client_cpu, server_cpu) in cpu.items():
        where = f"this process {client_cpu:.1f} µs, redis-server {server_cpu:.1f} µs"
        print(f"  CPU per call, {name}: {where}")
    goal = (med["redis decision"] - inproc) / ping
    print(
        f"  goal: decision <= PING x 1.2 + in-process: {goal:.2f}",
        "met" if goal <= 1.2 else "MISSED",
    )
    ping_client.close()


# -- 2. saturation ------------------------------------------------------------------------


def saturate_worker(
    url: str, prefix: str, rpm: int, tpm: int, threads: int, seconds: float
) -> None:
    state = bare(url, prefix, Limits(rpm=rpm or None, tpm=tpm or None))
    admitted = [0] * threads
    print("ready", flush=True)
    sys.stdin.readline()
    end = time.monotonic() + seconds

    def run(k: int) -> None:
        while time.monotonic() < end:
            admission = state.acquire_first((0,), 0.0, 10)
            if admission.admitted:
                admitted[k] += 1
                state.release(0, admission.ticket, 0.0, Outcome.SUCCESS, 5)
            else:
                time.sleep(0.002)

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    state._owner.flush()
    print(json.dumps({"admitted": sum(admitted), "outages": state.outages}), flush=True)


def spawn(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def saturation(url: str, seconds: float) -> None:
    print("\n2. saturation across 4 processes x 4 threads (admitted / limit)")
    print(f"  {'limit':<26} {'admitted':>9} {'ratio':>7} {'outages':>8}  goal <= 1.0, >= 0.95")
    for label, rpm, tpm in (("rpm 200", 200, 0), ("tpm 2,000 (10 est, 5 used)", 0, 2000)):
        prefix = f"bench-sat-{rpm}-{tpm}-{time.monotonic_ns()}"
        procs = [
            spawn("saturate", url, prefix, str(rpm), str(tpm), "4", str(seconds)) for _ in range(4)
        ]
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
        admitted = sum(r["admitted"] for r in results)
        outages = sum(r["outages"] for r in results)
        used = admitted if rpm else admitted * 5
        ratio = used / (rpm or tpm)
        verdict = "met" if 0.95 <= ratio <= 1.0 else "MISSED"
        print(f"  {label:<26} {used:9d} {ratio:7.3f} {outages:8d}  {verdict}")


# -- 3. propagation -----------------------------------------------------------------------

BREAKER = Breaker(failures=1, cooldown=0.03, max_cooldown=0.03)


def follow_worker(url: str, prefix: str, seconds: float) -> None:
    state = bare(url, prefix, Limits(), BREAKER)
    times: list[float] = []
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        admission = state.acquire_first((0,), 0.0, 0)
        if admission.admitted:
            times.append(time.monotonic())  # CLOCK_MONOTONIC: one clock for all processes
            state.release(0, admission.ticket, 0.0, Outcome.NOT_COUNTED)
    print(json.dumps(times), flush=True)


def propagation(url: str, openings: int) -> None:
    prefix = f"bench-prop-{time.monotonic_ns()}"
    state = bare(url, prefix, Limits(), BREAKER)
    follower = spawn("follow", url, prefix, str(openings * 0.08 + 2))
    assert follower.stdout is not None
    assert follower.stdout.readline().strip() == "ready"
    opened: list[float] = []
    time.sleep(0.2)
    for _ in range(openings):
        while not (admission := state.acquire_first((0,), 0.0, 0)).admitted:
            time.sleep(0.001)  # half open: B may hold the trial
        opened.append(time.monotonic())
        state.release(0, admission.ticket, 0.0, Outcome.FAILURE)  # opens for 30 ms
        time.sleep(0.06)
    admitted = json.loads(follower.communicate(timeout=60)[0])
    delays = []
    for t in opened:
        during = [a for a in admitted if t <= a < t + 0.025]
        delays.append((max(during) - t if during else 0.0) * 1e3)
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(f"\n3. circuit propagation, {openings} openings: A's failure -> B's last admission (ms)")
    print(f"  p50 {statistics.median(delays):.2f}  p99 {p99:.2f}  max {delays[-1]:.2f}")
    print("  goal p99 <= 100 ms:", "met" if p99 <= 100 else "MISSED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, *rest = args.worker
        if mode == "saturate":
            saturate_worker(
                rest[0], rest[1], int(rest[2]), int(rest[3]), int(rest[4]), float(rest[5])
            )
        else:
            follow_worker(rest[0], rest[1], float(rest[2]))
        return
    number, repeat = (300, 5) if args.quick else (1000, 9)
    proc, url = start_redis()
    try:
        decision(url, proc.pid, number, repeat)
        saturation(url, 2.0)
        propagation(url, 30 if args.quick else 100)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
