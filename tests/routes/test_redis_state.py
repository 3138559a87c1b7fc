"""`RedisState` against a real redis-server on loopback: the same rules as the in-process
state, exact limits across processes, circuits seen by every process, and calls that go on
when Redis goes away."""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chatmodels import (
    Breaker,
    Deployment,
    InvalidConfigError,
    ProviderRegistry,
    RedisState,
)
from chatmodels._providers._builtins import register_builtins
from chatmodels._routes._pystate import RouteState as TwinState
from chatmodels._routes._redis import _RedisRouteState
from chatmodels._routes._state import Limits, breaker_tuple
from chatmodels.testing import OpenAICompatibleServer, ScriptedError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_helpers import WORKER, RedisServer, free_port, worker_env


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


STORES: list[RedisState] = []


def make_store(*args: Any, **kwargs: Any) -> RedisState:
    """A RedisState closed after the test."""
    store = RedisState(*args, **kwargs)
    STORES.append(store)
    return store


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while REGISTRIES:
        REGISTRIES.pop().clear()
    while STORES:
        STORES.pop().close()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


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


def dep(s: OpenAICompatibleServer, **limits: Any) -> Deployment:
    return Deployment("openai", {"model": "m", "base_url": s.base_url, "api_key": "k"}, **limits)


REGISTRIES: list[ProviderRegistry] = []


def registry(backend: str) -> ProviderRegistry:
    """A registry with the built-ins, cleared (its models closed) after the test."""
    reg = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    register_builtins(reg)
    REGISTRIES.append(reg)
    return reg


class _Model:
    """What `RedisState.route_state` reads of a model: its provider, base URL and model."""

    def __init__(self, n: int | str) -> None:
        base_url = n if isinstance(n, str) else f"http://d{n}"
        self.metadata = type("M", (), {"name": "openai"})()
        self.options = type("O", (), {"base_url": base_url, "model": "m"})()


def bare_state(
    store: RedisState, limits: list[Limits], breaker: Breaker | None
) -> _RedisRouteState:
    state = store.route_state("r", [_Model(i) for i in range(len(limits))], limits, breaker)  # type: ignore[misc]
    assert isinstance(state, _RedisRouteState)
    state._jitter = "0.0"
    return state


# -- bad input and secrets ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "http://localhost:6379",
        "redis://",
        "redis://host:notaport/0",
        "unix://",
        "localhost:6379",
        b"redis://localhost",
        42,
        None,
        object(),
    ],
)
def test_bad_input_is_invalid_config(bad: object) -> None:
    with pytest.raises(InvalidConfigError):
        RedisState(bad)


@pytest.mark.parametrize("field", ["timeout", "lease", "retry_interval"])
@pytest.mark.parametrize("value", [0, -1, float("nan"), True])
def test_bad_settings(field: str, value: object) -> None:
    with pytest.raises(InvalidConfigError):
        RedisState("redis://localhost", **{field: value})  # type: ignore[arg-type]


def test_bad_prefix() -> None:
    with pytest.raises(InvalidConfigError):
        RedisState("redis://localhost", prefix="a{b}")


def test_password_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    store = make_store(f"redis://alice:hunter2secret@127.0.0.1:{free_port()}/0")
    assert "hunter2secret" not in repr(store)
    assert "alice" in repr(store)
    with caplog.at_level(logging.WARNING, "chatmodels.routes"):
        bare_state(store, [Limits()], None)
    assert caplog.records
    assert all("hunter2secret" not in r.getMessage() for r in caplog.records)
    with pytest.raises(InvalidConfigError) as info:
        RedisState("redis://alice:hunter2secret@host:bad/0")
    assert "hunter2secret" not in str(info.value)


def test_accepts_clients(server: RedisServer, prefix: str) -> None:
    import redis.asyncio

    for client in (server.client(), redis.asyncio.Redis(port=server.port)):
        store = make_store(client, prefix=prefix)
        state = bare_state(store, [Limits(rpm=1)], None)
        assert state.try_acquire(0, 0.0, 0).admitted is (client is not None)
        assert state.shared
        prefix += "x"


def test_unreachable_at_registration_is_logged_not_raised(
    backend: str, http: list[OpenAICompatibleServer], caplog: pytest.LogCaptureFixture
) -> None:
    s = serve(http)
    reg = registry(backend)
    store = make_store(f"redis://127.0.0.1:{free_port()}/0")
    with caplog.at_level(logging.WARNING, "chatmodels.routes"):
        reg.register_route("chat", [dep(s)], state=store)
    # (records of this route only: another test's state may still be renewing its leases)
    mine = [r for r in caplog.records if "'chat'" in r.getMessage()]
    assert [r.levelname for r in mine] == ["WARNING"]
    assert reg.create("chat").invoke("hi").text == "Echo: hi"


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(InvalidConfigError, match=r"chatmodels\[redis\]"):
        RedisState("redis://localhost")


def test_keys_hash_tagged_with_ttl_and_no_secret(
    server: RedisServer, prefix: str, backend: str, http: list[OpenAICompatibleServer]
) -> None:
    s = serve(http)
    reg = registry(backend)
    secret = "sk-very-secret-key"
    reg.register_route(
        "chat",
        [Deployment("openai", {"model": "m", "base_url": s.base_url, "api_key": secret}, rpm=9)],
        state=make_store(server.url, prefix=prefix),
    )
    reg.create("chat").invoke("a prompt text")
    client = server.client()
    try:
        keys = client.keys(f"{{{prefix}:chat}}:*")
        assert keys
        for key in keys:
            assert client.ttl(key) > 0
            dump = repr(client.dump(key)) + key.decode()
            assert secret not in dump
            assert "prompt" not in dump
    finally:
        client.close()


# -- the same rules as the in-process state -------------------------------------------------

ACQUIRE = st.tuples(
    st.just("acquire"),
    st.sampled_from([[0], [1], [0, 1], [1, 0], []]),
    st.integers(0, 40),
)
RELEASE = st.tuples(
    st.just("release"),
    st.integers(0, 10),
    st.sampled_from([0, 1, 1, 2]),
    st.one_of(st.none(), st.integers(0, 60)),
    st.one_of(st.none(), st.none(), st.sampled_from([0.0, 0.005, 0.5])),
)
OPS = st.lists(
    st.one_of(ACQUIRE, RELEASE, st.tuples(st.just("sleep"), st.sampled_from([0.006, 0.012]))),
    min_size=5,
    max_size=40,
)


def drive(server: RedisServer, ops: list[Any]) -> None:
    """Run `ops` on a Redis state and on the Python twin fed the server's times; they agree."""
    limits = [Limits(rpm=3, tpm=70), Limits(max_concurrency=2)]
    breaker = Breaker(
        failures=2, window=30, failure_rate=0.5, min_calls=3, cooldown=0.01, max_cooldown=0.04
    )
    store = make_store(server.url, prefix=f"h{uuid.uuid4().hex[:10]}", timeout=1)
    redis_state = bare_state(store, limits, breaker)
    twin = TwinState([tuple(lim) for lim in limits], breaker_tuple(breaker), 0.0, 0)
    held: list[tuple[int, int]] = []
    for op in ops:
        if op[0] == "acquire":
            _, order, est = op
            got = redis_state.acquire_first(order, 0.0, est)
            want = twin.acquire_first(order, redis_state.clock, est)
            assert (got.reason, got.index, got.ticket, got.trial) == (
                want.reason,
                want.index,
                want.ticket,
                want.trial,
            ), op
            assert got.wait == pytest.approx(want.wait)
            if got.admitted:
                held.append((got.index, got.ticket))
        elif op[0] == "release":
            _, pick, outcome, tokens, retry = op
            if not held:
                continue
            index, ticket = held.pop(pick % len(held))
            latency = 0.1 if outcome == 0 else None
            redis_state.release(index, ticket, 0.0, outcome, tokens, latency, retry)
            redis_state.flush()  # the write is queued: send it, so the twin gets its time
            twin.release(index, ticket, redis_state.clock, outcome, tokens, latency, retry)
        else:
            time.sleep(op[1])
        for i in range(2):
            got_s = redis_state.snapshot(i, 0.0)
            want_s = twin.snapshot(i, redis_state.clock)
            assert (got_s.circuit, got_s.in_flight, got_s.rpm_left, got_s.tpm_left) == (
                want_s.circuit,
                want_s.in_flight,
                want_s.rpm_left,
                want_s.tpm_left,
            ), (i, op)
            assert got_s.latency == pytest.approx(want_s.latency)
            assert got_s.seconds_until_close == pytest.approx(want_s.seconds_until_close)
    store.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=OPS)
def test_agrees_with_the_twin(server: RedisServer, ops: list[Any]) -> None:
    drive(server, ops)


A0 = ("acquire", [0], 0)
FAIL = ("release", 0, 1, None, None)
OK = ("release", 0, 0, 5, None)


@pytest.mark.parametrize(
    "ops",
    [
        pytest.param([A0, A0, FAIL, FAIL, A0], id="opens-on-a-streak"),
        pytest.param([A0, A0, A0, OK, FAIL, FAIL], id="opens-on-the-rate"),
        pytest.param(
            [
                A0,
                ("release", 0, 1, None, 0.005),
                ("sleep", 0.006),
                A0,
                A0,
                FAIL,
                ("sleep", 0.006),
                A0,
                ("sleep", 0.05),
                A0,
                OK,
                A0,
            ],
            id="trial-fails-with-a-doubled-cooldown-then-closes",
        ),
        pytest.param(
            [("acquire", [0], 30)] * 3
            + [("release", 0, 0, 1, None), ("acquire", [0], 30), ("acquire", [0, 1], 30)],
            id="tpm-corrected-by-actual-tokens",
        ),
        pytest.param([A0, A0, A0, A0, ("acquire", [0, 1], 0)], id="rpm-then-the-next"),
        pytest.param([("acquire", [1], 0)] * 3 + [("acquire", [1, 0], 0)], id="concurrency"),
    ],
)
def test_agrees_with_the_twin_on_each_rule(server: RedisServer, ops: list[Any]) -> None:
    drive(server, ops)


# -- leases ---------------------------------------------------------------------------------


def test_lease_renewed_while_held_and_freed_on_release(server: RedisServer, prefix: str) -> None:
    store = make_store(server.url, prefix=prefix, lease=0.3)
    state = bare_state(store, [Limits(max_concurrency=1)], None)
    first = state.try_acquire(0, 0.0, 0)
    assert first.admitted
    time.sleep(0.9)  # three leases: only the renewals keep the slot
    assert state.try_acquire(0, 0.0, 0).reason == 3
    state.release(0, first.ticket, 0.0, 0)
    assert state.try_acquire(0, 0.0, 0).admitted


def test_killed_process_frees_its_slots_within_the_lease(server: RedisServer, prefix: str) -> None:
    env = worker_env()
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), "hold", server.url, prefix, "2", "1.0"],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"held"
        store = make_store(server.url, prefix=prefix)
        # the worker's deployment: the same provider, base URL and model, so the same keys
        mine = store.route_state("held", [_Model("http://held")], [Limits(max_concurrency=2)], None)  # type: ignore[list-item]
        time.sleep(0.5)
        assert mine.try_acquire(0, 0.0, 0).reason == 3  # renewed by the live worker
        proc.kill()
        proc.wait()
        killed = time.monotonic()
        while not mine.try_acquire(0, 0.0, 0).admitted:
            assert time.monotonic() - killed < 1.5
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# -- routed calls ---------------------------------------------------------------------------


def test_circuit_opened_in_one_process_is_seen_by_the_next(
    server: RedisServer, prefix: str, backend: str, http: list[OpenAICompatibleServer]
) -> None:
    down = serve(http, lambda request: ScriptedError(503, "down"))
    up = serve(http)
    breaker = Breaker(failures=1, cooldown=30)
    a, b = registry(backend), registry(backend)
    for reg in (a, b):
        reg.register_route(
            "chat",
            [dep(down), dep(up)],
            breaker=breaker,
            state=make_store(server.url, prefix=prefix),
        )
    assert a.create("chat").invoke("hi").text == "Echo: hi"
    assert len(down.requests) == 1
    for _ in range(5):
        assert b.create("chat").invoke("hi").text == "Echo: hi"
    assert len(down.requests) == 1  # B never sent to the deployment A found down
    assert len(up.requests) == 6


def test_redis_killed_mid_run_then_back(
    backend: str, http: list[OpenAICompatibleServer], caplog: pytest.LogCaptureFixture
) -> None:
    own = RedisServer().start()
    try:
        s = serve(http)
        reg = registry(backend)
        store = make_store(own.url, prefix="kill", retry_interval=0.2)
        reg.register_route("chat", [dep(s)], state=store)
        model = reg.create("chat")
        route_state = reg._table.get("chat", "t").make.state
        errors: list[BaseException] = []
        done = threading.Event()

        def run() -> None:
            while not done.is_set():
                try:
                    model.invoke("hi")
                except BaseException as exc:
                    errors.append(exc)

        with caplog.at_level(logging.INFO, "chatmodels.routes"):
            threads = [threading.Thread(target=run) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.3)
            assert route_state.shared
            own.kill()
            time.sleep(0.6)
            assert not route_state.shared
            own.start()
            time.sleep(0.6)
            done.set()
            for t in threads:
                t.join()
        assert errors == []
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert route_state.shared
        client = own.client()
        assert client.keys("{kill:chat}:*")
        client.close()
        assert len(s.requests) > 50
    finally:
        own.stop()


def test_slow_redis_never_blocks_a_call_past_timeout(
    backend: str, http: list[OpenAICompatibleServer]
) -> None:
    own = RedisServer().start()
    try:
        s = serve(http)
        reg = registry(backend)
        reg.register_route("chat", [dep(s)], state=make_store(own.url, prefix="slow", timeout=0.05))
        model = reg.create("chat")
        model.invoke("warm")
        assert own.proc is not None
        own.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert model.invoke("hi").text == "Echo: hi"
            # one acquire times out (0.05 s), then local state until the retry interval
            assert time.monotonic() - started < 0.5
        finally:
            own.proc.send_signal(signal.SIGCONT)
    finally:
        own.stop()


def test_toml_state(tmp_path: Path, server: RedisServer, prefix: str) -> None:
    from chatmodels._routes._config import read_config

    path = tmp_path / "routes.toml"
    path.write_text(
        f'[routes.chat]\nstate = "{server.url}"\n'
        '[[routes.chat.deployments]]\nprovider = "openai"\noptions = {model = "m"}\n'
    )
    (spec,) = read_config(path)
    assert isinstance(spec.settings["state"], RedisState)
    path.write_text(
        '[routes.chat]\nstate = "http://x"\n'
        '[[routes.chat.deployments]]\nprovider = "openai"\noptions = {model = "m"}\n'
    )
    with pytest.raises(InvalidConfigError, match=r"routes\.chat\.state"):
        read_config(path)


# -- the after-call write, off the caller's path --------------------------------------------


@contextlib.contextmanager
def paused(server: RedisServer) -> Iterator[None]:
    """Redis stopped (SIGSTOP): it answers nothing until the block ends."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.proc.send_signal(signal.SIGCONT)


def test_release_is_queued_and_sent_by_the_writer(server: RedisServer, prefix: str) -> None:
    store = make_store(server.url, prefix=prefix, timeout=5)
    state = bare_state(store, [Limits(max_concurrency=1)], None)
    other = bare_state(make_store(server.url, prefix=prefix), [Limits(max_concurrency=1)], None)
    first = state.try_acquire(0, 0.0, 0)
    assert first.admitted
    with paused(server):  # Redis answers nothing: release must not wait for it
        state.release(0, first.ticket, 0.0, 0)
        assert state.queued or state.writing  # queued, or on the writer's wire: not sent here
    assert store.flush()
    assert not state.queued
    assert not state.writing
    assert other.try_acquire(0, 0.0, 0).admitted  # another process sees the slot freed


def test_a_process_sees_its_own_queued_writes(server: RedisServer, prefix: str) -> None:
    state = bare_state(make_store(server.url, prefix=prefix), [Limits(max_concurrency=1)], None)
    for _ in range(50):  # release then acquire at once: the queued write goes first
        admission = state.try_acquire(0, 0.0, 0)
        assert admission.admitted
        state.release(0, admission.ticket, 0.0, 0)
    assert state.snapshot(0, 0.0).in_flight == 0


def test_queued_writes_are_sent_in_pipelines(
    server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatmodels._routes import _redis_writer

    sent: list[int] = []
    send = _redis_writer._send

    def counting(client: Any, sha: str, calls: Any) -> list[Any]:
        sent.append(len(calls))
        return send(client, sha, calls)

    monkeypatch.setattr(_redis_writer, "_send", counting)
    store = make_store(server.url, prefix=prefix, timeout=5)
    state = bare_state(store, [Limits(rpm=1000, max_concurrency=1000)], None)
    tickets = [state.try_acquire(0, 0.0, 0).ticket for _ in range(200)]
    with paused(server):  # the writer's first batch waits on the wire; the rest queue
        for ticket in tickets:
            state.release(0, ticket, 0.0, 0)
    assert store.flush()
    assert sum(sent) == 200
    assert len(sent) <= 2  # the writes queued meanwhile share one round trip
    snap = state.snapshot(0, 0.0)
    assert snap.in_flight == 0
    assert snap.rpm_left == 800


def test_writes_over_the_bound_are_dropped_and_their_leases_expire(
    server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatmodels._routes import _redis_writer

    monkeypatch.setattr(_redis_writer, "MAX_PENDING", 1)
    store = make_store(server.url, prefix=prefix, lease=0.5, timeout=5)
    state = bare_state(store, [Limits(max_concurrency=3)], None)
    a, b, c = (state.try_acquire(0, 0.0, 0) for _ in range(3))
    with paused(server):
        state.release(0, a.ticket, 0.0, 0)
        deadline = time.monotonic() + 5
        while not state.writing:  # the writer took a's write: on the wire, Redis paused
            assert time.monotonic() < deadline
            time.sleep(0.001)
        state.release(0, b.ticket, 0.0, 0)  # queued: one write waiting
        state.release(0, c.ticket, 0.0, 0)  # over the bound: dropped
    assert store.flush()
    assert store._writer.dropped == 1
    assert state.snapshot(0, 0.0).in_flight == 1  # c's slot is held until its lease ends
    deadline = time.monotonic() + 3
    while state.snapshot(0, 0.0).in_flight:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_reopening_jitter_is_seeded(server: RedisServer) -> None:
    breaker = Breaker(failures=1, cooldown=0.01, max_cooldown=10)

    def reopenings(seed: int) -> list[float]:
        store = make_store(server.url, prefix=f"j{uuid.uuid4().hex[:8]}")
        state = store.route_state("r", [_Model(0)], [Limits()], breaker, jitter=0.5, seed=seed)  # type: ignore[list-item]
        assert isinstance(state, _RedisRouteState)
        out = []
        first = state.try_acquire(0, 0.0, 0)
        state.release(0, first.ticket, 0.0, 1)
        for _ in range(3):
            while not (trial := state.try_acquire(0, 0.0, 0)).admitted:
                time.sleep(0.005)
            state.release(0, trial.ticket, 0.0, 1)  # the trial fails: a doubled cooldown
            out.append(state.snapshot(0, 0.0).seconds_until_close)
        return out

    first, again, other = reopenings(7), reopenings(7), reopenings(8)
    for x, y in zip(first, again, strict=True):
        assert x == pytest.approx(y, abs=0.003)
    assert any(abs(x - y) > 0.003 for x, y in zip(first, other, strict=True))


# -- the outage metric ----------------------------------------------------------------------


def test_outage_metric_through_the_sdk(backend: str, http: list[OpenAICompatibleServer]) -> None:
    from chatmodels import telemetry
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    container = telemetry.Container().with_meter_provider(provider)

    def points(name: str) -> dict[str, int]:
        data = reader.get_metrics_data()
        assert data is not None
        return {
            str(p.attributes["chatmodels.route.name"]): p.value  # type: ignore[index,union-attr]
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for p in m.data.data_points
        }

    own = RedisServer().start()
    try:
        s = serve(http)
        reg = ProviderRegistry(backend=backend, container=container)  # type: ignore[arg-type]
        register_builtins(reg)
        REGISTRIES.append(reg)
        store = make_store(own.url, prefix="metric", retry_interval=60)
        reg.register_route("chat", [dep(s)], state=store)
        reg.register_route("local", [dep(s)])
        model = reg.create("chat")
        model.invoke("hi")
        reg.create("local").invoke("hi")
        assert store.flush()
        assert points("chatmodels.route.state.outages") == {"chat": 0}  # in-process: none
        assert points("chatmodels.route.state.fallbacks") == {"chat": 0}
        own.kill()
        for _ in range(5):
            assert model.invoke("hi").text == "Echo: hi"
        assert points("chatmodels.route.state.outages") == {"chat": 1}
        assert points("chatmodels.route.state.fallbacks") == {"chat": 5}
    finally:
        own.stop()
        provider.shutdown()


def test_acl_user_limited_to_the_prefix(server: RedisServer) -> None:
    prefix = f"acl{uuid.uuid4().hex[:6]}"
    admin = server.client()
    admin.execute_command(
        "ACL", "SETUSER", prefix, "on", ">s3cret-pw", f"~{{{prefix}:*", "+evalsha",
        "+script|load", "+time", "+@hash", "+@sortedset", "+@list", "+expire", "+del",
    )  # fmt: skip
    try:
        store = make_store(f"redis://{prefix}:s3cret-pw@127.0.0.1:{server.port}/0", prefix=prefix)
        assert "s3cret-pw" not in repr(store)
        state = bare_state(store, [Limits(rpm=1, max_concurrency=1)], Breaker(failures=1))
        first = state.try_acquire(0, 0.0, 0)
        assert first.admitted
        assert state.shared
        state.release(0, first.ticket, 0.0, 1)
        assert state.snapshot(0, 0.0).circuit == "open"
        assert state.shared
        assert state.outages == 0
    finally:
        admin.execute_command("ACL", "DELUSER", prefix)
        admin.close()
