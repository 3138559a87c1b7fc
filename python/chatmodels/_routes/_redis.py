"""`RedisState`: a route's state shared through Redis by every process that registers it.

Each decision is one ``EVALSHA`` of one Lua script (`_redis_script.SCRIPT`, loaded again on
``NOSCRIPT``): `acquire_first` reads the circuits and takes rpm, tpm and a concurrency lease
over the candidates in one round trip. `release` queues the write of the outcome, the actual
tokens and the latency and returns; the state's background thread sends the queued writes in
pipelines, or the route's next decision in this process sends them in its own round trip
(`_redis_writer`). The rules are those of `chatmodels._routes._state`, with two differences:

- Times are the Redis server's ``TIME`` (clamped so they never run backwards), so processes
  on hosts with skewed clocks agree; the `now` the caller passes is ignored (and the route's
  injected clock drives only the local fallback).
- A concurrency slot is a lease (a sorted set of ticket -> expiry) renewed by the background
  thread while the call runs, so the slots of a process that dies come back within `lease`
  seconds; a half-open trial whose lease ran out is given to the next caller.

When Redis refuses, times out (after `timeout` seconds) or errors, the route goes on with an
in-process state (`new_route_state`) and tries Redis again after `retry_interval` seconds;
one WARNING record on ``chatmodels.routes`` per outage, one INFO record when it is back, and
the counts `outages` and `fallbacks` (the ``chatmodels.route.state.*`` metrics).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._errors import InvalidConfigError
from ._pystate import RouteAdmission, RouteSnapshot
from ._redis_writer import Write, Writer, run_pipeline
from ._state import (
    DEFAULT_JITTER,
    WINDOW,
    Limits,
    Outcome,
    Reason,
    RouteState,
    breaker_tuple,
    new_route_state,
)
from ._types import CircuitState

if TYPE_CHECKING:
    from .._backend import BackendName
    from .._model import ChatModel
    from ._types import Breaker

__all__ = ["RedisState"]

logger = logging.getLogger("chatmodels.routes")

_SCHEMES = ("redis", "rediss", "unix")
_NAMES: tuple[CircuitState, ...] = ("closed", "open", "half_open")
_OUTCOMES = (int(Outcome.SUCCESS), int(Outcome.FAILURE), int(Outcome.NOT_COUNTED))


def _redis() -> Any:
    try:
        import redis
    except ImportError:
        raise InvalidConfigError(
            "RedisState needs the redis extra: pip install 'chatmodels[redis]'", op="route_state"
        ) from None
    return redis


def _masked(url: str) -> str:
    """The URL without its password (for reprs and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises ValueError
    except ValueError:
        raise InvalidConfigError("malformed Redis URL", op="route_state") from None
    if parts.scheme not in _SCHEMES:
        raise InvalidConfigError(
            f"a Redis URL's scheme must be one of {', '.join(_SCHEMES)}, got {parts.scheme!r}",
            op="route_state",
        )
    if parts.scheme == "unix" and not parts.path:
        raise InvalidConfigError("a unix:// Redis URL needs a socket path", op="route_state")
    if parts.scheme != "unix" and not parts.hostname:
        raise InvalidConfigError("a Redis URL needs a host", op="route_state")


class RedisState:
    """Route state shared through Redis: limits and circuits hold across processes and hosts.

    A decision is one script call on the server. The write after a call is queued and sent by
    a background thread in pipelines (or by the route's next decision in this process); a
    write lost with its process is harmless: the call's slot comes back within `lease`.
    `flush()` waits for the queue; `close()` flushes, then closes the connections.

    Args:
        url_or_client: a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL, with an
            optional ACL user and password (``redis://user:password@host:6379/0``), or an
            existing redis-py client (``redis.Redis`` or ``redis.asyncio.Redis``; its
            connection settings are reused with this state's timeouts).
        prefix: the first part of every key (``{prefix:route}:...``).
        timeout: the longest a call waits on Redis (connect and read), in seconds; past it the
            route uses in-process state until Redis answers again.
        lease: seconds a concurrency slot outlives a process that died holding it.
        retry_interval: seconds between attempts to reach Redis during an outage.

    Example:
        >>> register_route("chat", [...], state=RedisState("redis://redis.internal:6379/0"))
    """

    def __init__(
        self,
        url_or_client: object,
        *,
        prefix: str = "chatmodels",
        timeout: float = 0.05,
        lease: float = 30.0,
        retry_interval: float = 1.0,
    ) -> None:
        for field, value in (("timeout", timeout), ("lease", lease), ("retry", retry_interval)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise InvalidConfigError(
                    f"RedisState.{field} must be a positive finite number, got {value!r}",
                    op="route_state",
                )
        if type(prefix) is not str or not prefix or any(ch in prefix for ch in "{}"):
            raise InvalidConfigError(
                "RedisState.prefix must be a non-empty str without braces", op="route_state"
            )
        if isinstance(url_or_client, str):
            _check_url(url_or_client)
            self._shown = _masked(url_or_client)
        elif url_or_client is None or isinstance(url_or_client, (bytes, int, float)):
            raise InvalidConfigError(
                "RedisState takes a redis://, rediss:// or unix:// URL or a redis-py client,"
                f" got {type(url_or_client).__name__}",
                op="route_state",
            )
        redis = _redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        settings: dict[str, Any] = {
            "socket_timeout": float(timeout),
            "socket_connect_timeout": float(timeout),
            "retry": Retry(NoBackoff(), 0),
        }
        if isinstance(url_or_client, str):
            try:
                client = redis.Redis.from_url(url_or_client, **settings)
            except ValueError:
                raise InvalidConfigError("malformed Redis URL", op="route_state") from None
        else:
            client = _sync_client(redis, url_or_client, settings)
            kwargs = client.connection_pool.connection_kwargs
            where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
            self._shown = f"client {where}/{kwargs.get('db', 0)}"
        self._client = client
        self._script = client.register_script(_script_text())
        self.prefix = prefix
        self.timeout = float(timeout)
        self.lease = float(lease)
        self.retry_interval = float(retry_interval)
        self._writer = Writer(client, self._script.sha, self._load, self.lease)
        weakref.finalize(self, self._writer.stop)

    def _load(self) -> str:
        sha: str = self._client.script_load(_script_text())
        return sha

    def flush(self, timeout: float = 1.0) -> bool:
        """Send the after-call writes still queued; False when `timeout` seconds ran out."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        """Send the queued writes (waiting at most a second), then close the connections to
        Redis (the routes using it fall back to local state)."""
        self._writer.flush(1.0)
        self._writer.stop(join=1.0)
        self._client.close()
        self._client.connection_pool.disconnect()

    def __repr__(self) -> str:
        return f"RedisState({self._shown!r}, prefix={self.prefix!r}, timeout={self.timeout})"

    def route_state(
        self,
        route: str,
        models: Sequence[ChatModel],
        limits: Sequence[Limits],
        breaker: Breaker | None,
        *,
        backend: BackendName | None = None,
        jitter: float = DEFAULT_JITTER,
        seed: int | None = None,
    ) -> RouteState:
        """The state of route `route` over `models` (called by `register_route`).

        `jitter` and `seed` (None: random) fix the re-opening jitter, as in
        `new_route_state` (the local fallback's too).
        """
        keys: list[tuple[str, ...]] = []
        seen: dict[str, int] = {}
        for model in models:
            options = model.options
            ident = "\0".join(
                [
                    model.metadata.name,
                    str(getattr(options, "base_url", None) or ""),
                    str(getattr(options, "model", None) or ""),
                ]
            )
            nth = seen[ident] = seen.get(ident, -1) + 1
            digest = hashlib.sha256(f"{ident}\0{nth}".encode()).hexdigest()[:16]
            base = f"{{{self.prefix}:{route}}}:{digest}"
            keys.append(tuple(f"{base}:{part}" for part in "sltco"))
        state = _RedisRouteState(
            self, route, keys, list(limits), breaker, backend, jitter=jitter, seed=seed
        )
        self._writer.states.add(state)
        state.connect()
        return state


def _sync_client(redis: Any, client: object, settings: dict[str, Any]) -> Any:
    """A sync client on `client`'s connection settings, with this state's timeouts."""
    import redis.asyncio
    import redis.connection

    if not isinstance(client, (redis.Redis, redis.asyncio.Redis)):
        raise InvalidConfigError(
            "RedisState takes a redis://, rediss:// or unix:// URL or a redis-py client,"
            f" got {type(client).__name__}",
            op="route_state",
        )
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    for key in ("retry", "socket_timeout", "socket_connect_timeout"):
        kwargs.pop(key, None)
    kwargs.update(settings)
    name = pool.connection_class.__name__
    cls = getattr(redis.connection, name, redis.connection.Connection)
    kwargs = {k: v for k, v in kwargs.items() if k not in ("connection_class",)}
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=cls, **kwargs))


_SCRIPT: str | None = None


def _script_text() -> str:
    global _SCRIPT
    if _SCRIPT is None:
        from ._redis_script import SCRIPT

        _SCRIPT = SCRIPT
    return _SCRIPT


def _opt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


class _RedisRouteState:
    """One route's `RouteState` in Redis, with an in-process fallback."""

    def __init__(
        self,
        owner: RedisState,
        route: str,
        keys: list[tuple[str, ...]],
        limits: list[Limits],
        breaker: Breaker | None,
        backend: BackendName | None,
        *,
        jitter: float,
        seed: int | None,
    ) -> None:
        self._owner = owner
        self._writer = owner._writer
        self._route = route
        self._keys = keys
        self._limits = limits
        self._rows = [
            (str(lim.rpm or 0), str(lim.tpm or 0), str(lim.max_concurrency or 0)) for lim in limits
        ]
        settings = breaker_tuple(breaker)
        self._breaker: list[str] = [] if settings is None else [repr(float(v)) for v in settings]
        self._local = new_route_state(limits, breaker, backend=backend, jitter=jitter, seed=seed)
        self._jitter = repr(float(jitter))
        self._unit = random.Random(seed).random  # u of a re-opening's jitter
        windows = [WINDOW, owner.lease]
        if breaker is not None:
            windows += [float(breaker.window), float(breaker.max_cooldown)]
        self._ttl = str(math.ceil(max(windows)) + 60)
        self._lease = repr(owner.lease)
        self._down_until = 0.0
        self._down = False
        self._up_since = 0.0  # when Redis last answered again after an outage (monotonic)
        self._down_since = 0.0  # when the last outage began
        self._lock = threading.Lock()
        n = len(keys)
        self._in_flight = [0] * n
        self._latency: list[float | None] = [None] * n
        self._held: list[set[int]] = [set() for _ in range(n)]
        self.queued: list[Write] = []
        """Writes waiting for the writer thread or the next decision (guarded by it)."""
        self.writing = False
        """Whether the writer thread has writes of this route on the wire."""
        self.outages = 0
        """Outages seen so far (each one logged once)."""
        self.fallbacks = 0
        """Decisions made on the in-process state because Redis was unreachable."""
        self.clock = 0.0
        """The Redis server's time read by the last script call (for tests)."""

    def __len__(self) -> int:
        return len(self._keys)

    # -- Redis up or down ------------------------------------------------------------------

    def connect(self) -> None:
        """Load the script (an unreachable Redis is logged, not an error: it may come later)."""
        try:
            self._owner._load()
        except Exception as exc:
            self.failed(exc)

    def usable(self) -> bool:
        """Whether to ask Redis (it is up, or an outage's retry interval has passed)."""
        return not self._down or time.monotonic() >= self._down_until

    def failed(self, exc: BaseException, started: float | None = None) -> None:
        """Redis failed a request begun at `started`: fall back to the local state (logged
        once per outage). A request begun before Redis last came back failed in the outage
        already reported: it starts no new one."""
        with self._lock:
            if started is not None and started < self._up_since:
                return
            self._down_until = time.monotonic() + self._owner.retry_interval
            if self._down:
                return
            self._down = True
            self._down_since = time.monotonic()
            self.outages += 1
        logger.warning(
            "route %r: Redis state unreachable (%s: %s); using in-process state until it is back",
            self._route,
            type(exc).__name__,
            _safe(exc),
        )

    def ok(self, started: float) -> None:
        """Redis answered a request begun at `started`. One begun before the outage did not
        cross it (a reply already on its way): it ends nothing."""
        if self._down:
            with self._lock:
                if started < self._down_since:
                    return
                was, self._down = self._down, False
                if was:
                    self._up_since = time.monotonic()
            if was:
                logger.info(
                    "route %r: Redis state reachable again; shared state resumed", self._route
                )

    def wrote(self, result: object, started: float) -> None:
        """The reply to one of this route's writes (sent by the writer or a decision)."""
        if isinstance(result, Exception):
            self.failed(result, started)
        else:
            self.ok(started)
            self.clock = float(result)  # type: ignore[arg-type]

    def _call(self, indices: Sequence[int], args: list[str]) -> Any:
        """One script call after this route's queued writes, in one round trip (raises as
        redis-py does; the writes' failures are handled here)."""
        keys = [k for i in indices for k in self._keys[i]]
        writes = self._writer.take(self, self._owner.timeout)
        if not writes:
            return self._owner._script(keys=keys, args=args)
        started = time.monotonic()
        results = run_pipeline(
            self._owner._client, self._writer.sha, self._owner._load, [*writes, (keys, args)]
        )
        for result in results[:-1]:
            self.wrote(result, started)
        if isinstance(results[-1], Exception):
            raise results[-1]
        return results[-1]

    @property
    def shared(self) -> bool:
        """Whether the last decision went to Redis (False during an outage)."""
        return not self._down

    def flush(self) -> None:
        """Send this route's queued writes now and wait for their replies (for tests)."""
        writes = self._writer.take(self, self._owner.timeout)
        if not writes:
            return
        started = time.monotonic()
        try:
            results = run_pipeline(self._owner._client, self._writer.sha, self._owner._load, writes)
        except Exception as exc:
            self.failed(exc, started)
            return
        for result in results:
            self.wrote(result, started)

    # -- the protocol ----------------------------------------------------------------------

    def _check(self, index: int) -> None:
        if not 0 <= index < len(self._keys):
            raise IndexError(f"deployment {index} out of range")

    def try_acquire(self, index: int, now: float, est_tokens: int) -> RouteAdmission:
        """`acquire_first` over `index` alone."""
        return self.acquire_first((index,), now, est_tokens)

    def acquire_first(self, order: Sequence[int], now: float, est_tokens: int) -> RouteAdmission:
        """The first admission over `order`, in one script call (see `_state.RouteState`)."""
        for index in order:
            self._check(index)
        if not math.isfinite(now):
            raise ValueError("now must be a finite number")
        if est_tokens < 0:
            raise ValueError("est_tokens must be >= 0")
        if not order:
            return RouteAdmission(Reason.CIRCUIT_OPEN, -1, -1, None, False)
        if self.usable():
            args = ["acquire", self._ttl, str(int(est_tokens)), self._lease]
            for index in order:
                args += [str(index), *self._rows[index]]
            started = time.monotonic()
            try:
                answer, seen, clock = self._call(order, args)
            except Exception as exc:
                self.failed(exc, started)
            else:
                self.ok(started)
                self.clock = float(clock)
                for k in range(0, len(seen), 3):
                    i = int(seen[k])
                    self._in_flight[i] = int(seen[k + 1])
                    lat = seen[k + 2]
                    self._latency[i] = float(lat) if lat else None
                reason, index, ticket, wait, trial = answer[:5]
                if reason == 0:
                    self._held[index].add(ticket)
                    self._writer.start()  # it renews the lease while the call runs
                return RouteAdmission(
                    int(reason),
                    int(index),
                    int(ticket),
                    None if wait is None else float(wait),
                    bool(trial),
                )
        with self._lock:
            self.fallbacks += 1
        local = self._local.acquire_first(order, now, est_tokens)
        if not local.admitted:
            return RouteAdmission(local.reason, local.index, -1, local.wait, local.trial)
        return RouteAdmission(0, local.index, -2 - local.ticket, None, local.trial)

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
        """End the admitted call `ticket`: its outcome, tokens and latency go to Redis in one
        write, queued (see `_redis_writer`)."""
        self._check(index)
        if outcome not in _OUTCOMES:
            raise ValueError("outcome must be 0 (success), 1 (failure) or 2 (not counted)")
        if actual_tokens is not None and actual_tokens < 0:
            raise ValueError("actual_tokens must be None or >= 0")
        for what, value in (("latency", latency), ("retry_after", retry_after)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{what} must be None or a finite number >= 0")
        if ticket <= -2:
            self._local.release(
                index, -2 - ticket, now, outcome, actual_tokens, latency, retry_after
            )
            return
        self._held[index].discard(ticket)
        if self._in_flight[index] > 0:
            self._in_flight[index] -= 1
        if outcome == Outcome.SUCCESS and latency is not None:
            avg = self._latency[index]
            self._latency[index] = latency if avg is None else avg + 0.25 * (latency - avg)
        args = [
            "release",
            self._ttl,
            str(ticket),
            str(outcome),
            "" if actual_tokens is None else str(int(actual_tokens)),
            _opt(latency),
            _opt(retry_after),
            repr(self._unit()),
        ]
        if self._breaker:
            args += [*self._breaker, self._jitter]
        self._writer.put(self, (list(self._keys[index]), args))

    def in_flight(self, index: int) -> int:
        """Calls in flight on `index`, as of this process's last decision on it."""
        if self._down:
            return self._local.in_flight(index)
        return self._in_flight[index]

    def latency(self, index: int) -> float | None:
        """The latency average of `index`, as of this process's last decision on it."""
        if self._down:
            return self._local.latency(index)
        return self._latency[index]

    def snapshot(self, index: int, now: float) -> RouteSnapshot:
        """The shared state of `index` (the local one during an outage), after this
        process's queued writes."""
        self._check(index)
        if not math.isfinite(now):
            raise ValueError("now must be a finite number")
        if self.usable():
            started = time.monotonic()
            try:
                state, until, in_flight, logged, tokens, lat, clock = self._call(
                    (index,), ["snapshot", self._ttl]
                )
            except Exception as exc:
                self.failed(exc, started)
            else:
                self.ok(started)
                self.clock = float(clock)
                rpm, tpm, _cap = self._limits[index]
                return RouteSnapshot(
                    _NAMES[int(state)],
                    float(until),
                    int(in_flight),
                    None if rpm is None else max(rpm - int(logged), 0),
                    None if tpm is None else max(tpm - int(tokens), 0),
                    float(lat) if lat else None,
                )
        snap = self._local.snapshot(index, now)
        return RouteSnapshot(
            snap.circuit,
            snap.seconds_until_close,
            snap.in_flight,
            snap.rpm_left,
            snap.tpm_left,
            snap.latency,
        )

    def renewals(self) -> list[Write]:
        """The writes that push the leases of this process's calls in flight."""
        if self._down:
            return []
        out: list[Write] = []
        for index, held in enumerate(self._held):
            tickets = list(held)
            if tickets:
                out.append(
                    (list(self._keys[index]), ["renew", self._ttl, self._lease, *map(str, tickets)])
                )
        return out


def _safe(exc: BaseException) -> str:
    """An error's message, cut short (redis-py's messages hold no password)."""
    return str(exc)[:200]
