"""The hot-path metric aggregator in pure Python: the twin of the Rust ``MetricAggregator``.

Callers intern each attribute set to a small int key once, then per call:
- `add(counter, key, value)` adds to a counter cell (the Rust core uses an atomic);
- `record(histogram, key, value)` appends the exact value to a bounded buffer;
- `record_call(key, duration, input_tokens, output_tokens)` does the three records of a
  finished chat call in one crossing (a token count below 0 means "not reported").
Collection, on the exporter's thread, reads `counter_values` and `drain`s the buffer into the
OpenTelemetry instruments. A full buffer drops values and counts them in `dropped`.
"""

from __future__ import annotations

import threading

__all__ = [
    "DURATION",
    "REGISTRY_CREATION",
    "TIME_PER_OUTPUT_CHUNK",
    "TIME_TO_FIRST_CHUNK",
    "TOKENS_INPUT",
    "TOKENS_OUTPUT",
    "MetricAggregator",
]

# Histogram ids shared with the Rust core.
DURATION = 0
TOKENS_INPUT = 1
TOKENS_OUTPUT = 2
TIME_TO_FIRST_CHUNK = 3
TIME_PER_OUTPUT_CHUNK = 4
REGISTRY_CREATION = 5


class MetricAggregator:
    """Counters in fixed cells and a bounded buffer of exact histogram values.

    Args:
        counters: how many counters.
        max_keys: attribute-set keys per counter; a larger key lands in the last cell.
        capacity: how many histogram values the buffer holds between two drains.
    """

    def __init__(self, counters: int, max_keys: int = 1024, capacity: int = 65536) -> None:
        if counters < 0 or max_keys < 1 or capacity < 1:
            raise ValueError("counters >= 0, max_keys >= 1 and capacity >= 1 are required")
        self._max_keys = max_keys
        self._capacity = capacity
        self._cells = [0] * (counters * max_keys)
        self._counters = counters
        self._buffer: list[tuple[int, int, float]] = []
        self._dropped = 0
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        """How many values the histogram buffer holds."""
        return self._capacity

    def add(self, counter: int, key: int, value: int) -> None:
        """Add `value` (>= 0) to `counter` for attribute set `key`."""
        if not 0 <= counter < self._counters:
            raise IndexError(f"counter {counter} out of range")
        cell = counter * self._max_keys + min(key, self._max_keys - 1)
        with self._lock:
            self._cells[cell] += value

    def counter_values(self, counter: int) -> list[tuple[int, int]]:
        """The cumulative (key, total) pairs of `counter` that are not zero."""
        if not 0 <= counter < self._counters:
            raise IndexError(f"counter {counter} out of range")
        base = counter * self._max_keys
        cells = self._cells[base : base + self._max_keys]
        return [(key, total) for key, total in enumerate(cells) if total]

    def record(self, histogram: int, key: int, value: float) -> None:
        """Buffer one exact value of `histogram` for attribute set `key`."""
        with self._lock:
            if len(self._buffer) < self._capacity:
                self._buffer.append((histogram, key, value))
            else:
                self._dropped += 1

    def record_many(self, histogram: int, key: int, values: list[float]) -> None:
        """Buffer several values of one histogram and key, such as a stream's chunk gaps."""
        with self._lock:
            room = self._capacity - len(self._buffer)
            if room < len(values):
                self._dropped += len(values) - max(room, 0)
                values = values[: max(room, 0)]
            self._buffer.extend((histogram, key, value) for value in values)

    def record_call(self, key: int, duration: float, input_tokens: int, output_tokens: int) -> None:
        """Buffer a finished call's duration and, when reported (>= 0), its token counts."""
        with self._lock:
            room = self._capacity - len(self._buffer)
            wanted = 1 + (input_tokens >= 0) + (output_tokens >= 0)
            if room < wanted:
                self._dropped += wanted
                return
            self._buffer.append((DURATION, key, duration))
            if input_tokens >= 0:
                self._buffer.append((TOKENS_INPUT, key, float(input_tokens)))
            if output_tokens >= 0:
                self._buffer.append((TOKENS_OUTPUT, key, float(output_tokens)))

    def drain(self) -> list[tuple[int, int, float]]:
        """Take every buffered (histogram, key, value), oldest first, emptying the buffer."""
        with self._lock:
            taken, self._buffer = self._buffer, []
        return taken

    def pending(self) -> int:
        """How many values wait in the buffer."""
        return len(self._buffer)

    def dropped(self) -> int:
        """How many histogram values were dropped because the buffer was full."""
        return self._dropped
