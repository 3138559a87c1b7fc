"""Against a real collector process (rotel): spans and metrics arrive with their attributes;
with the collector killed mid-run every call still succeeds and the process exits promptly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chatmodels import telemetry
from telemetry_fakes import call, sample_response

ROTEL = Path(__import__("rotel").__file__).parent / "rotel-agent"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"the collector never listened on {port}")


def _wait_for(path: Path, needles: list[str], deadline: float) -> str:
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        if all(n in text for n in needles):
            return text
        time.sleep(0.1)
    missing = [n for n in needles if n not in text]
    raise AssertionError(f"the collector never received {missing}; its log:\n{text[-3000:]}")


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    os.chmod(ROTEL, 0o755)
    http_port, grpc_port = _free_port(), _free_port()
    log = tmp_path / "rotel.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ROTEL), "start", "--exporter", "blackhole",
             "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
             "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
             "--debug-log", "traces", "--debug-log", "metrics",
             "--debug-log-verbosity", "detailed",
             "--pid-file", str(tmp_path / "rotel.pid"), "--log-file", str(tmp_path / "agent.log")],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_listening(http_port, time.monotonic() + 20)
        yield proc, http_port, log
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_spans_and_metrics_reach_the_collector_and_survive_its_death(
    collector: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    proc, port, log = collector
    otlp = telemetry.setup_otlp(
        f"http://127.0.0.1:{port}",
        export_timeout=1.0,
        schedule_delay=0.1,
        metric_interval=0.3,
        set_global=False,
    )
    observer = telemetry.TelemetryObserver(otlp.container)
    try:
        for _ in range(20):
            observer.start(*call()).end(sample_response())
        otlp.tracer_provider.force_flush(5000)
        text = _wait_for(
            log,
            ["chat gpt-4o-mini", "gen_ai.provider.name", "openai", "gen_ai.usage.input_tokens",
             "gen_ai.client.operation.duration", "gen_ai.client.token.usage"],
            time.monotonic() + 30,
        )  # fmt: skip
        assert "gen_ai.system" not in text.replace("gen_ai.system_instructions", "")

        proc.kill()
        proc.wait(timeout=10)
        for _ in range(200):  # every call still succeeds, nothing raised to the caller
            scope = observer.start(*call())
            scope.end(sample_response())
        otlp.tracer_provider.force_flush(3000)
        time.sleep(1.0)
    finally:
        started = time.monotonic()
        otlp.shutdown()
        took = time.monotonic() - started
    assert otlp.failed_exports >= 1
    assert took < 10, f"shutdown with the collector gone took {took:.1f} s"


def test_process_exits_promptly_with_the_collector_down() -> None:
    port = _free_port()  # nothing listens there
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from chatmodels import telemetry
        from telemetry_fakes import call, sample_response
        otlp = telemetry.setup_otlp("http://127.0.0.1:{port}", export_timeout=1.0,
                                    schedule_delay=0.1, metric_interval=0.3)
        obs = telemetry.TelemetryObserver()
        for _ in range(100):
            obs.start(*call()).end(sample_response())
        print("calls done", flush=True)
    """)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "calls done" in done.stdout
    assert took < 15, f"exit took {took:.1f} s (the SDK defaults take about 30 s)"
