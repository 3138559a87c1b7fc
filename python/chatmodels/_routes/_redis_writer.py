"""The after-call writes of a `RedisState`, off the caller's path.

`release` queues its write here and returns; one background thread per `RedisState` sends
the queued writes (and the renewals of the leases in flight) in pipelines: the writes queued
while a batch is on the wire go together in the next one. A route's next decision or snapshot
in the same process takes that route's queued writes out of the queue and sends them in its
own round trip, before its own script call (so a process always sees its own writes, at no
extra round trip); when the thread has them on the wire already, it waits for that reply.

(Holding the first write back for a few milliseconds, so that more would share a pipeline
and the thread would wake less, measured no better in benches/bench_routes_redis.py, table 1,
so the thread sends at once.)

A queued write is lost when the process dies, when Redis fails it, or when more than
`MAX_PENDING` writes wait: the call's lease then expires by itself (its slot comes back
within the lease), its estimate stays in the token window, and its outcome does not count
toward the breaker.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._redis import _RedisRouteState

__all__ = ["MAX_PENDING", "Write", "Writer", "run_pipeline"]

MAX_PENDING = 10_000
"""The most writes one `RedisState` keeps waiting; past it a write is dropped (and lost)."""

_BATCH = 512

Write = tuple[list[str], list[str]]
"""One script call: its keys and its arguments."""


def run_pipeline(
    client: Any, sha: str, load: Callable[[], str], calls: Sequence[Write]
) -> list[Any]:
    """Send `calls` (``EVALSHA sha``) in one pipeline; each result or its exception.

    Calls the server does not know the script for are sent again after `load` (the script
    is gone after a restart). A connection error or timeout raises.
    """
    from redis.exceptions import NoScriptError

    results = _send(client, sha, calls)
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:
        sha = load()
        again = _send(client, sha, [calls[i] for i in missing])
        for i, r in zip(missing, again, strict=True):
            results[i] = r
    return results


def _send(client: Any, sha: str, calls: Sequence[Write]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for keys, args in calls:
        pipe.evalsha(sha, len(keys), *keys, *args)
    try:
        return list(pipe.execute(raise_on_error=False))
    finally:
        pipe.reset()


class Writer:
    """The queue and the thread of one `RedisState` (started at its first write or lease).

    Every attribute but `states` is guarded by `cond`.
    """

    def __init__(self, client: Any, sha: str, load: Callable[[], str], lease: float) -> None:
        self.client = client
        self.sha = sha
        self.load = load
        self.lease = lease
        self.cond = threading.Condition(threading.Lock())
        self.states: weakref.WeakSet[_RedisRouteState] = weakref.WeakSet()
        self.dirty: dict[_RedisRouteState, None] = {}  # states with queued writes, in order
        self.pending = 0
        self.dropped = 0
        self.busy = 0  # batches on the wire
        self.idle = False  # the thread waits for a write (a `put` must wake it)
        self.stopping = False
        self.thread: threading.Thread | None = None

    # -- the callers' side -----------------------------------------------------------------

    def put(self, state: _RedisRouteState, write: Write) -> None:
        """Queue `write` of `state` (dropped when `MAX_PENDING` writes wait already)."""
        with self.cond:
            if self.pending >= MAX_PENDING:
                self.dropped += 1
                return
            state.queued.append(write)
            self.pending += 1
            if state not in self.dirty:
                self.dirty[state] = None
                if self.idle:  # else it is writing, and takes this write next
                    self.idle = False
                    self.cond.notify_all()  # (takers and flushers wait here too)
        if self.thread is None:
            self.start()

    def take(self, state: _RedisRouteState, timeout: float) -> list[Write]:
        """`state`'s queued writes, out of the queue, once none of its writes is on the wire
        (waiting at most `timeout` seconds for that)."""
        if not state.queued and not state.writing:
            return []
        deadline = time.monotonic() + timeout
        with self.cond:
            while state.writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            taken, state.queued = state.queued, []
            self.pending -= len(taken)
            self.dirty.pop(state, None)
        return taken

    def flush(self, timeout: float) -> bool:
        """Wait until every write queued so far is sent; False when `timeout` ran out."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.pending or self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def start(self) -> None:
        """Start the thread (once)."""
        if self.thread is not None:
            return
        with self.cond:
            if self.thread is not None or self.stopping:
                return
            self.thread = threading.Thread(
                target=self.run, name="chatmodels-redis-writer", daemon=True
            )
            self.thread.start()
        atexit.register(_flush_at_exit, weakref.ref(self))

    def stop(self, join: float | None = None) -> None:
        """End the thread after it sent what is queued (waiting `join` seconds for it)."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
            thread = self.thread
        if join is not None and thread is not None and thread is not threading.current_thread():
            thread.join(join)

    # -- the thread ------------------------------------------------------------------------

    def run(self) -> None:
        pause = self.lease / 3
        renew_at = time.monotonic() + pause
        while True:
            with self.cond:
                while not self.dirty and not self.stopping:
                    left = renew_at - time.monotonic()
                    if left <= 0:
                        break
                    self.idle = True
                    self.cond.wait(left)
                self.idle = False
                batch = self._batch()
                stop = self.stopping and not self.dirty
            renew = time.monotonic() >= renew_at
            if renew:
                renew_at = time.monotonic() + pause
            try:
                self._write(batch, renew)
            finally:
                with self.cond:
                    for state, _ in batch:
                        state.writing = False
                    self.busy -= 1
                    self.cond.notify_all()
            if stop:
                return

    def _batch(self) -> list[tuple[_RedisRouteState, list[Write]]]:
        """Take up to `_BATCH` queued writes (whole states), marked as on the wire."""
        batch = []
        count = 0
        while self.dirty and count < _BATCH:
            state = next(iter(self.dirty))
            del self.dirty[state]
            writes, state.queued = state.queued, []
            self.pending -= len(writes)
            state.writing = True
            batch.append((state, writes))
            count += len(writes)
        self.busy += 1
        return batch

    def _write(self, batch: list[tuple[_RedisRouteState, list[Write]]], renew: bool) -> None:
        owners: list[_RedisRouteState] = []
        calls: list[Write] = []
        for state, writes in batch:
            if not state.usable():
                continue  # Redis is down for this route: the writes are lost
            owners += [state] * len(writes)
            calls += writes
        if renew:
            for state in list(self.states):
                for write in state.renewals():
                    owners.append(state)
                    calls.append(write)
        if not calls:
            return
        started = time.monotonic()
        try:
            results = run_pipeline(self.client, self.sha, self.load, calls)
        except Exception as exc:
            for state in dict.fromkeys(owners):
                state.failed(exc, started)
            return
        for state, result in zip(owners, results, strict=True):
            state.wrote(result, started)


def _flush_at_exit(ref: weakref.ref[Writer]) -> None:
    """At a clean exit, send what is still queued (the thread is a daemon)."""
    writer = ref()
    if writer is not None and not writer.stopping:
        writer.flush(1.0)
