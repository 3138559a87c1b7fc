"""`health_check`: probe registered providers concurrently and report, never raising."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from ._errors import ChatModelError, ErrorCode
from ._global import get_global_registry
from ._registry import ProviderRegistry, _telemetry
from ._types import HealthStatus

__all__ = ["HealthReport", "ahealth_check", "health_check"]


@dataclasses.dataclass(frozen=True)
class HealthReport(Mapping[str, HealthStatus]):
    """Per provider name, its `HealthStatus`; `healthy` is true when every probed one answered."""

    statuses: Mapping[str, HealthStatus]

    def __getitem__(self, name: str) -> HealthStatus:
        return self.statuses[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.statuses)

    def __len__(self) -> int:
        return len(self.statuses)

    @property
    def healthy(self) -> bool:
        """Whether no provider is unhealthy (unknown ones do not count against it)."""
        return all(s.status != "unhealthy" for s in self.statuses.values())


def _targets(registry: ProviderRegistry, names: Iterable[str] | None) -> tuple[list[str], bool]:
    if names is None:
        return registry.names(), False
    if isinstance(names, str):
        return [names], True
    return list(names), True


def _probe(registry: ProviderRegistry, name: str, timeout: float, explicit: bool) -> HealthStatus:
    start = time.perf_counter()
    try:
        if not registry._metadata(name, "health_check").supports_health_check:
            return HealthStatus("unknown", None, "the provider has no health probe")
        with registry._create(name, None, timeout, op="health_check", container=None) as model:
            return model.health_check(timeout=timeout)
    except ChatModelError as exc:
        return _failed(exc, start, explicit)
    except Exception as exc:  # a probe never raises into the caller
        return HealthStatus("unhealthy", time.perf_counter() - start, repr(exc), "internal")


async def _aprobe(
    registry: ProviderRegistry, name: str, timeout: float, explicit: bool
) -> HealthStatus:
    start = time.perf_counter()
    try:
        if not registry._metadata(name, "ahealth_check").supports_health_check:
            return HealthStatus("unknown", None, "the provider has no health probe")
        model = await registry._acreate(name, None, timeout, op="ahealth_check", container=None)
        async with model:
            return await model.ahealth_check(timeout=timeout)
    except ChatModelError as exc:
        return _failed(exc, start, explicit)
    except Exception as exc:
        return HealthStatus("unhealthy", time.perf_counter() - start, repr(exc), "internal")


_UNCONFIGURED = HealthStatus("unknown", None, "not configured")


def _failed(exc: ChatModelError, start: float, explicit: bool) -> HealthStatus:
    if exc.code is ErrorCode.INVALID_CONFIG and not explicit:
        # Probing everything: a provider without its key is not configured, not broken.
        return _UNCONFIGURED
    return HealthStatus("unhealthy", time.perf_counter() - start, exc.detail, exc.code.value)


def health_check(
    names: Iterable[str] | str | None = None,
    *,
    timeout: float = 5.0,
    registry: ProviderRegistry | None = None,
) -> HealthReport:
    """Probe providers concurrently: the named ones, or every registered one.

    Each provider is created through the registry and asked for its cheap probe within
    `timeout` seconds. A provider without a probe is reported as unknown (never as healthy);
    one that is not configured (say, no API key) as unknown when probing everything and as
    unhealthy when named. Never raises.
    """
    registry = registry if registry is not None else get_global_registry()
    targets, explicit = _targets(registry, names)
    if not targets:
        return HealthReport({})
    from concurrent.futures import ThreadPoolExecutor

    with (
        _observed(registry, "health_check") as record,
        ThreadPoolExecutor(min(16, len(targets))) as pool,
    ):
        futures = {
            n: pool.submit(contextvars.copy_context().run, _probe, registry, n, timeout, explicit)
            for n in targets
        }
        report = HealthReport({n: f.result() for n, f in futures.items()})
        record(report)
        return report


async def ahealth_check(
    names: Iterable[str] | str | None = None,
    *,
    timeout: float = 5.0,
    registry: ProviderRegistry | None = None,
) -> HealthReport:
    """Async `health_check`: the probes run concurrently on the event loop."""
    registry = registry if registry is not None else get_global_registry()
    targets, explicit = _targets(registry, names)
    import asyncio

    with _observed(registry, "ahealth_check") as record:
        results = await asyncio.gather(*(_aprobe(registry, n, timeout, explicit) for n in targets))
        report = HealthReport(dict(zip(targets, results, strict=True)))
        record(report)
        return report


@contextlib.contextmanager
def _observed(registry: ProviderRegistry, api: str) -> Iterator[Callable[[HealthReport], None]]:
    """A health span around the probes (once telemetry is loaded); yields the report's sink."""
    hooks = _telemetry()
    if hooks is None:
        yield lambda report: None
        return
    container = registry.container
    with hooks.registry_operation("health", registry=registry, api=api):
        yield lambda report: hooks.record_health(report, container=container)
