"""`setup_otlp` against a collector that accepts connections and never answers: `shutdown()`
and process exit end within `export_timeout` (plus a small margin), whatever is queued.

The SDK's own shutdown exports what is queued one batch after another, each allowed the whole
export timeout, and retries with backoff: 3,000 spans against such a collector took 10-11 s
to shut down, and process exit without shutdown 9 s more."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chatmodels import telemetry
from telemetry_fakes import call, sample_response

EXPORT_TIMEOUT = 1.0
MARGIN = 0.5  # threads starting and joining, on a shared machine
CALLS = 3000


class SilentCollector:
    """A loopback TCP server that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(128)
        self._socket.settimeout(0.05)
        self.port: int = self._socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.accepted.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def collector() -> Iterator[SilentCollector]:
    server = SilentCollector()
    yield server
    server.close()


def test_shutdown_is_bounded_by_the_export_timeout(collector: SilentCollector) -> None:
    previous = telemetry.get_container()
    otlp = telemetry.setup_otlp(
        f"http://127.0.0.1:{collector.port}",
        export_timeout=EXPORT_TIMEOUT,
        schedule_delay=0.2,
        metric_interval=0.5,
        set_global=False,
    )
    try:
        observer = telemetry.TelemetryObserver(otlp.container)
        for _ in range(CALLS):
            observer.start(*call()).end(sample_response())
        time.sleep(0.3)  # an export is in flight, others queued behind it
        started = time.monotonic()
        otlp.shutdown()
        took = time.monotonic() - started
        again = time.monotonic()
        otlp.shutdown()  # a second call has nothing left to wait for
        took_again = time.monotonic() - again
    finally:
        telemetry.set_container(previous)
    assert collector.accepted, "the exporter never reached the collector"
    assert took <= EXPORT_TIMEOUT + MARGIN, f"shutdown took {took:.2f} s"
    assert took_again <= MARGIN
    assert otlp.failed_exports >= 1


SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from chatmodels import telemetry
from telemetry_fakes import call, sample_response
otlp = telemetry.setup_otlp("http://127.0.0.1:{port}", export_timeout={timeout},
                            schedule_delay=0.2, metric_interval=0.5)
observer = telemetry.TelemetryObserver()
for _ in range({calls}):
    observer.start(*call()).end(sample_response())
time.sleep(0.3)
{shutdown}
print(time.time(), flush=True)
"""


@pytest.mark.parametrize("shutdown", [False, True], ids=["exit only", "shutdown then exit"])
def test_process_exit_is_bounded_by_the_export_timeout(
    collector: SilentCollector, shutdown: bool
) -> None:
    script = textwrap.dedent(
        SCRIPT.format(
            tests=str(Path(__file__).parent),
            port=collector.port,
            timeout=EXPORT_TIMEOUT,
            calls=CALLS,
            shutdown="otlp.shutdown()" if shutdown else "",
        )
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    line = child.stdout.readline()  # the script's last line, just before the exit begins
    _, err = child.communicate(timeout=60)
    ended = time.time()
    assert child.returncode == 0, err
    exiting = ended - float(line)
    # The interpreter's own teardown (its modules, the spans still held) is part of it.
    assert exiting <= EXPORT_TIMEOUT + 1.5, f"exit took {exiting:.2f} s"
    assert collector.accepted
