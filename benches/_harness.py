"""What the benchmark scripts share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def contention(
    resolve: Callable[[str], object],
    replace: Callable[[], None],
    *,
    threads: int = 8,
    seconds: float = 1.0,
    batch: int = 32,
) -> tuple[float, float]:
    """p50 and p99 ns per resolution with `threads` resolvers and one writer replacing 1,000/s.

    Each sample times a batch of `batch` resolutions (the clock costs more than one lookup).
    """
    stop = threading.Event()
    samples: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def resolver(out: list[float]) -> None:
        clock = time.perf_counter_ns
        barrier.wait()
        while not stop.is_set():
            start = clock()
            for _ in range(batch):
                resolve("openai")
            out.append((clock() - start) / batch)

    def writer() -> None:
        barrier.wait()
        next_at = time.perf_counter()
        while not stop.is_set():
            replace()
            next_at += 0.001
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    workers = [threading.Thread(target=resolver, args=(out,)) for out in samples]
    workers.append(threading.Thread(target=writer))
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    merged = sorted(s for out in samples for s in out)
    return merged[len(merged) // 2], merged[int(len(merged) * 0.99)]
