"""The Rust core of chatmodels (PyO3): the registry table, the metric aggregator and the
route state.

`RegistryTable` is the twin of `chatmodels._pytable.RegistryTable`: same methods, results and
errors (built by the factories in `chatmodels._errors`). Reads take no lock; writes build a new
snapshot and publish it atomically. Safe on free-threaded CPython (the module does not enable
the GIL). `RouteState` is the twin of `chatmodels._routes._pystate.RouteState` (the rules are
in `chatmodels._routes._state`): a short critical section per deployment for each decision,
atomic reads for `in_flight` and `latency`. A Rust panic in the table is raised as
`chatmodels._errors.InternalError`, never an abort.
"""

from collections.abc import Sequence
from typing import Any, Literal, final

__all__ = [
    "CallGate",
    "MetricAggregator",
    "RegistryTable",
    "RouteAdmission",
    "RouteSnapshot",
    "RouteState",
]

@final
class RegistryTable:
    """name → (entry, capability bits), with lock-free reads and serialized writes."""

    def __new__(cls) -> RegistryTable: ...
    def contains(self, name: str, op: str) -> bool:
        """Whether `name` is registered; raises invalid_provider_name for a bad name."""

    def get(self, name: str, op: str) -> Any:
        """The entry registered as `name`; raises provider_not_found with a suggestion."""

    def insert(self, name: str, entry: Any, capabilities: int, replace: bool, op: str) -> int:
        """Register `entry` as `name`; returns the table version after the write.

        `capabilities` must fit in 64 bits (OverflowError otherwise).
        """

    def remove(self, name: str, op: str) -> Any:
        """Unregister `name` and return its entry; raises provider_not_found."""

    def clear(self) -> None:
        """Unregister everything."""

    def names(self) -> list[str]:
        """Every registered name, sorted."""

    def names_with(self, mask: int) -> list[str]:
        """The sorted names whose capability bits include every bit of `mask`."""

    def entries(self) -> list[tuple[str, Any]]:
        """(name, entry) pairs from one snapshot, sorted by name."""

    @property
    def version(self) -> int:
        """How many writes the table has seen."""

    @property
    def resolutions(self) -> int:
        """How many `contains` and `get` calls the table has answered, found or not (a call
        refused with invalid_provider_name included). Counted per thread in striped atomic
        slots, so exact and uncontended on free-threaded CPython."""

    @property
    def resolution_misses(self) -> int:
        """How many of those found nothing: `contains` returned False, or `contains` or `get`
        raised (provider_not_found, invalid_provider_name)."""

    def __len__(self) -> int: ...

@final
class MetricAggregator:
    """Counters in atomic cells, histogram values in a bounded buffer; the twin of
    `chatmodels.telemetry._pymetrics.MetricAggregator`."""

    def __new__(
        cls, counters: int, max_keys: int = 1024, capacity: int = 65536
    ) -> MetricAggregator: ...
    @property
    def capacity(self) -> int:
        """How many histogram values the buffer holds before it drops new ones."""

    def add(self, counter: int, key: int, value: int) -> None:
        """Add `value` to `counter`'s cell for `key` (IndexError for an unknown counter)."""

    def counter_values(self, counter: int) -> list[tuple[int, int]]:
        """(key, total) of `counter`'s cells (IndexError for an unknown counter)."""

    def record(self, histogram: int, key: int, value: float) -> None:
        """Buffer one `histogram` value for `key`; counted as dropped when full."""

    def record_many(self, histogram: int, key: int, values: list[float]) -> None:
        """Buffer as many of `values` as fit; the rest are counted as dropped."""

    def record_call(self, key: int, duration: float, input_tokens: int, output_tokens: int) -> None:
        """Buffer a call's duration and its token counts (a negative count is left out),
        all or none of them."""

    def drain(self) -> list[tuple[int, int, float]]:
        """Take every buffered (histogram, key, value), leaving the buffer empty."""

    def pending(self) -> int:
        """How many values are buffered."""

    def dropped(self) -> int:
        """How many values were dropped because the buffer was full."""

@final
class RouteAdmission:
    """The answer of `RouteState.try_acquire` (see `chatmodels._routes._state.Admission`)."""

    @property
    def reason(self) -> int:
        """A `Reason`: 0 (ADMITTED) when admitted."""

    @property
    def index(self) -> int:
        """The deployment this answer is about (-1 when there was no candidate)."""

    @property
    def ticket(self) -> int:
        """What `release` needs; -1 when refused."""

    @property
    def wait(self) -> float | None:
        """Seconds until the refusing condition may lift (None: unknown)."""

    @property
    def trial(self) -> bool:
        """Whether this admission is the half-open circuit's trial call."""

    @property
    def admitted(self) -> bool:
        """Whether the call may go to the deployment."""

@final
class RouteSnapshot:
    """One deployment's state at a time (see `chatmodels._routes._state.StateSnapshot`)."""

    @property
    def circuit(self) -> Literal["closed", "open", "half_open"]: ...
    @property
    def seconds_until_close(self) -> float: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def rpm_left(self) -> int | None: ...
    @property
    def tpm_left(self) -> int | None: ...
    @property
    def latency(self) -> float | None: ...

@final
class RouteState:
    """The in-process state of a route's deployments; the twin of
    `chatmodels._routes._pystate.RouteState` (same arguments, results and errors)."""

    def __new__(
        cls,
        limits: list[tuple[int | None, int | None, int | None]],
        breaker: tuple[int, float, float, int, float, float] | None = None,
        jitter: float = 0.1,
        seed: int | None = None,
        plan: tuple[str, list[float], list[int], list[int | None]] | None = None,
    ) -> RouteState: ...
    def __len__(self) -> int: ...
    def set_plan(self, plan: tuple[str, list[float], list[int], list[int | None]]) -> None:
        """Replace the plan `choose` orders by (a `Plan.row()`)."""

    def choose(
        self,
        now: float,
        est_tokens: int,
        needs: int = 0,
        tried: Sequence[int] = ...,
        min_window: int | None = None,
    ) -> RouteAdmission:
        """The strategy's choice among the eligible deployments, admitted, in one call."""

    def finish(
        self,
        admission: RouteAdmission,
        now: float,
        outcome: int,
        actual_tokens: int | None = None,
        latency: float | None = None,
        retry_after: float | None = None,
    ) -> int:
        """`release` of an admission; 1 when it closed the circuit, 2 when it opened it, else 0."""

    def try_acquire(self, index: int, now: float, est_tokens: int) -> RouteAdmission:
        """Take a request, `est_tokens` tokens and a slot of deployment `index`, or nothing."""

    def acquire_first(self, order: Sequence[int], now: float, est_tokens: int) -> RouteAdmission:
        """`try_acquire` on each of `order` in turn; the first admission, or a refusal."""

    def release(
        self,
        index: int,
        ticket: int,
        now: float,
        outcome: int,
        actual_tokens: int | None = None,
        latency: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        """End the admitted call `ticket` of deployment `index` with an `Outcome`."""

    def in_flight(self, index: int) -> int:
        """Calls in flight on deployment `index` (an atomic read)."""

    def latency(self, index: int) -> float | None:
        """The latency moving average of deployment `index` (an atomic read)."""

    def snapshot(self, index: int, now: float) -> RouteSnapshot:
        """The state of deployment `index` at `now`."""

@final
class CallGate:
    """A route's calls in flight and whether it is retired, in one atomic word; the twin of
    `chatmodels._routes._pystate.CallGate`."""

    def __new__(cls) -> CallGate: ...
    def enter(self) -> bool:
        """Count a call in; False once retired (nothing counted)."""

    def exit(self) -> bool:
        """Count a call out; True for the last call out of a retired gate."""

    def retire(self) -> bool:
        """Refuse calls from now on; True when this retired it with no call in flight."""

    @property
    def active(self) -> int:
        """Calls in flight."""

    @property
    def retired(self) -> bool:
        """Whether `retire` was called."""

def _make_immortal(obj: object) -> bool:
    """Mark a process-lifetime object immortal on free-threaded CPython (no-op, False, with
    the GIL), so threads sharing it do not contend on its reference count."""

def _panic_for_tests(op: str) -> None:
    """Panic in Rust on purpose; raises `InternalError` for `op` (tests only)."""
