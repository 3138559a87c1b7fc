"""Routes under load: many concurrent calls while a deployment fails, routes replaced while
calls run, rate limits and strategies with an injected clock (both backends)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chatmodels import (
    Breaker,
    ChatModel,
    Deployment,
    ProviderMetadata,
    ProviderOptions,
    ProviderRegistry,
    RateLimitError,
    RoutedModel,
)
from chatmodels._providers._builtins import register_builtins
from chatmodels._providers._fake import FAKE_METADATA, FakeChatModel
from chatmodels.testing import OpenAICompatibleServer, ReceivedRequest, ScriptedError

pytestmark = pytest.mark.stress


@pytest.fixture
def reg(backend: str) -> Iterator[ProviderRegistry]:
    registry = ProviderRegistry(backend=backend)  # type: ignore[arg-type]
    register_builtins(registry)
    yield registry
    registry.clear()


def dep(server: OpenAICompatibleServer, **kw: Any) -> Deployment:
    options = {"model": "m", "api_key": "sk-test", "base_url": server.base_url}
    return Deployment("openai", options, **kw)


def test_1000_concurrent_calls_while_one_deployment_fails_half(
    reg: ProviderRegistry,
    seed_routes: Callable[[int], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    counter = itertools.count()
    healed = threading.Event()

    def half(request: ReceivedRequest) -> ScriptedError | None:
        if healed.is_set():
            return None
        return ScriptedError(503) if next(counter) % 2 == 0 else None

    def transitions() -> list[str]:
        return [
            "opened" if " opened " in r.getMessage() else "closed"
            for r in caplog.records
            if r.name == "chatmodels.routes" and " circuit of deployment 0 " in r.getMessage()
        ]

    seed_routes(5)
    caplog.set_level(logging.INFO, logger="chatmodels.routes")
    now = [0.0]
    with OpenAICompatibleServer(half) as flaky, OpenAICompatibleServer() as healthy:
        reg.register_route(
            "chat",
            [dep(flaky), dep(healthy)],
            strategy="weighted",
            breaker=Breaker(failures=5, window=30.0, failure_rate=0.5, min_calls=10, cooldown=10.0),
            clock=lambda: now[0],
        )
        model = reg.create("chat")
        assert isinstance(model, RoutedModel)
        assert model.status()[0].circuit == "closed"

        async def run() -> list[Any]:
            gate = asyncio.Semaphore(50)  # 50 in flight at a time, 1000 in all

            async def one(i: int) -> Any:
                async with gate:
                    return await model.ainvoke(f"n{i}")

            return await asyncio.gather(*(one(i) for i in range(1000)), return_exceptions=True)

        results = asyncio.run(run())
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == []
        # The clock stood still: it opened once and stayed open for the whole run.
        assert transitions() == ["opened"]
        status = model.status()[0]
        assert (status.circuit, status.seconds_until_close) == ("open", 10.0)
        assert model.status()[1].circuit == "closed"
        sent_to_flaky = len(flaky.requests)
        # Weighted evenly it would get 500; once open (after ~10 calls at a 50% failure
        # rate), calls stopped going there: only what was in flight when it opened got in.
        assert sent_to_flaky < 150
        now[0] = 9.999
        assert model.status()[0].circuit == "open"
        now[0] = 10.0
        assert model.status()[0].circuit == "half_open"
        healed.set()  # the trial succeeds
        for i in range(50):  # weighted: calls go to either until one is the trial
            model.invoke(f"after {i}")
            if len(flaky.requests) > sent_to_flaky:
                break
        assert len(flaky.requests) == sent_to_flaky + 1  # exactly one trial was sent
        assert model.status()[0].circuit == "closed"
        assert transitions() == ["opened", "closed"]


def test_a_route_replaced_50_times_during_1000_calls(reg: ProviderRegistry) -> None:
    made: list[FakeChatModel] = []
    lock = threading.Lock()

    def creator(options: ProviderOptions) -> ChatModel:
        model = FakeChatModel(reg.metadata("fake"), options, latency=0.002)
        with lock:
            made.append(model)
        return model

    reg.register("fake", creator, metadata=FAKE_METADATA, replace=True)
    reg.register_route("chat", [Deployment("fake", {"model": "f"})])
    model = reg.create("chat")
    assert isinstance(model, RoutedModel)
    routes = [model.route]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        for i in range(n):
            try:
                model.invoke(f"call {i}")
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(125,)) for _ in range(8)]
    for t in threads:
        t.start()
    for _ in range(50):
        reg.register_route(
            "chat",
            [Deployment("fake", {"model": "f"}), Deployment("fake", {"model": "g"})][
                : 1 + len(routes) % 2
            ],
            replace=True,
        )
        routes.append(model.route)
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(map(id, routes))) == 51
    for old in routes[:-1]:
        assert old.retired
        assert old.in_flight == 0
        assert all(m.closed for m in old.models)  # every old model closed once drained
    assert not any(m.closed for m in routes[-1].models)


def test_rpm_holds_in_any_window_and_max_wait_zero_fails_locally(reg: ProviderRegistry) -> None:
    now = [0.0]
    with OpenAICompatibleServer() as server:
        reg.register_route("chat", [dep(server, rpm=5)], clock=lambda: now[0])
        model = reg.create("chat")
        for i in range(5):
            model.invoke(f"n{i}")
            now[0] += 1.0
        with pytest.raises(RateLimitError) as info:
            model.invoke("one too many")
        assert info.value.retry_after == pytest.approx(55.0)  # the first leaves at t=60
        assert "nothing was sent" in str(info.value)
        assert len(server.requests) == 5
        now[0] = 59.999
        with pytest.raises(RateLimitError):
            model.invoke("still in the window")
        now[0] = 60.0
        model.invoke("the first left the window")
        assert len(server.requests) == 6


def test_tpm_is_corrected_by_the_reported_usage(reg: ProviderRegistry) -> None:
    now = [0.0]
    with OpenAICompatibleServer() as server:
        reg.register_route("chat", [dep(server, tpm=1000)], clock=lambda: now[0])
        model = reg.create("chat")
        assert isinstance(model, RoutedModel)
        # est: input (short) + max_tokens 600 > what is left after a 600-token estimate, but
        # the server reports 3 tokens, so the window holds only 3 after the first call.
        model.invoke("hi", max_tokens=600)
        assert model.status()[0].tpm_left == 1000 - 3
        model.invoke("hi", max_tokens=600)
        with pytest.raises(RateLimitError):
            model.invoke("x" * 4000, max_tokens=10)  # ~1000 input tokens estimated


def test_max_wait_waits_for_capacity(reg: ProviderRegistry) -> None:
    with OpenAICompatibleServer() as server:
        reg.register_route("chat", [dep(server, rpm=1)], max_wait=0.0)
        model = reg.create("chat")
        model.invoke("one")
        with pytest.raises(RateLimitError):
            model.invoke("two")
        assert len(server.requests) == 1


def test_concurrency_cap_sends_the_overflow_elsewhere(reg: ProviderRegistry) -> None:
    gate = threading.Event()
    seen: Counter[str] = Counter()

    def creator_for(name: str) -> Any:
        def create(options: ProviderOptions) -> ChatModel:
            class Held(FakeChatModel):
                def _invoke(self, request: Any, scope: Any) -> Any:
                    seen[name] += 1
                    gate.wait(5)
                    return super()._invoke(request, scope)

            return Held(ProviderMetadata(name=name, capabilities=["chat"]), options)

        return create

    for name in ("a", "b"):
        reg.register(name, creator_for(name), metadata={"capabilities": ["chat"]})
    reg.register_route(
        "chat",
        [Deployment("a", {"model": "m"}, max_concurrency=2), Deployment("b", {"model": "m"})],
    )
    model = reg.create("chat")
    threads = [threading.Thread(target=model.invoke, args=("x",)) for _ in range(5)]
    for t in threads:
        t.start()
    for _ in range(100):
        if sum(seen.values()) == 5:
            break
        threading.Event().wait(0.02)
    assert seen == {"a": 2, "b": 3}
    gate.set()
    for t in threads:
        t.join()


def _fakes(reg: ProviderRegistry, names: str, latency: dict[str, float] | None = None) -> None:
    for name in names:

        def create(options: ProviderOptions, name: str = name) -> ChatModel:
            return FakeChatModel(
                ProviderMetadata(name=name, capabilities=["chat", "streaming"]),
                options,
                responses=[name] * 10_000,
                latency=(latency or {}).get(name, 0.0),
            )

        reg.register(name, create, metadata={"capabilities": ["chat", "streaming"]})


def test_priority_takes_the_first_eligible(reg: ProviderRegistry) -> None:
    _fakes(reg, "abc")
    reg.register_route("chat", [Deployment(n, {"model": "m"}) for n in "abc"])
    model = reg.create("chat")
    assert {model.invoke("x").text for _ in range(20)} == {"a"}


def test_weighted_picks_by_weight(reg: ProviderRegistry) -> None:
    _fakes(reg, "ab")
    reg.register_route(
        "chat",
        [Deployment("a", {"model": "m"}, weight=1), Deployment("b", {"model": "m"}, weight=3)],
        strategy="weighted",
    )
    model = reg.create("chat")
    counts = Counter(model.invoke("x").text for _ in range(2000))
    # b's share is 0.75; 2000 draws: sd = sqrt(2000 * .75 * .25) = 19.4, so +-5 sd = 97
    assert abs(counts["b"] - 1500) < 97


def test_least_busy_takes_the_fewest_in_flight(reg: ProviderRegistry) -> None:
    _fakes(reg, "ab", latency={"a": 0.3, "b": 0.3})
    reg.register_route("chat", [Deployment(n, {"model": "m"}) for n in "ab"], strategy="least_busy")
    model = reg.create("chat")

    async def run() -> list[str]:
        replies = await asyncio.gather(*(model.ainvoke("x") for _ in range(6)))
        return [r.text for r in replies]

    counts = Counter(asyncio.run(run()))
    assert counts == {"a": 3, "b": 3}  # each new call went to the less busy one


def test_weighted_choices_repeat_for_a_seed(
    reg: ProviderRegistry, seed_routes: Callable[[int], None]
) -> None:
    _fakes(reg, "abc")
    deployments = [Deployment(n, {"model": "m"}) for n in "abc"]

    def picks(seed: int) -> list[str]:
        seed_routes(seed)
        reg.register_route("chat", deployments, strategy="weighted", replace=True)
        model = reg.create("chat")
        return [model.invoke("x").text for _ in range(60)]

    first = picks(7)
    assert picks(7) == first  # the same seed: the same choices
    assert picks(8) != first  # another seed: others (60 draws alike by chance: ~3**-60)
    assert set(first) == {"a", "b", "c"}


def test_latency_prefers_the_fastest_and_still_explores(
    reg: ProviderRegistry, seed_routes: Callable[[int], None]
) -> None:
    seed_routes(3)  # the exploration's draws are fixed: the counts below are exact per backend
    _fakes(reg, "ab", latency={"a": 0.03, "b": 0.001})
    reg.register_route("chat", [Deployment(n, {"model": "m"}) for n in "ab"], strategy="latency")
    model = reg.create("chat")
    first = [model.invoke("x").text for _ in range(2)]
    assert sorted(first) == ["a", "b"]  # no sample yet: each is tried first once
    counts = Counter(model.invoke("x").text for _ in range(300))
    assert counts["b"] > 250  # the lowest average takes nearly every call
    assert counts["a"] >= 1  # and the other still gets an occasional one (5%: ~7 expected)
