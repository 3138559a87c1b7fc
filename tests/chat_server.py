"""A minimal loopback replay server for the chat tests (until chatmodels.testing lands).

It serves scripted or recorded (vcrpy cassette) responses in order over HTTP/1.1 keep-alive
and records every request it receives.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any

import yaml

CASSETTES = Path(__file__).resolve().parents[2] / "shared" / "cassettes"


@dataclasses.dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0
    chunked: bool = False


@dataclasses.dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclasses.dataclass
class Interaction:
    method: str
    uri: str
    request_body: Any
    reply: Reply
    response_json: Any


def load_cassette(relative: str) -> list[Interaction]:
    """The interactions of a vcrpy cassette under ../shared/cassettes."""
    data = yaml.safe_load((CASSETTES / relative).read_text())
    out = []
    for item in data["interactions"]:
        req, resp = item["request"], item["response"]
        raw = resp["body"]["string"]
        body = raw if isinstance(raw, bytes) else raw.encode()
        headers: dict[str, str] = {}
        for name, value in resp["headers"].items():
            if name.lower() in ("content-type", "content-encoding", "x-request-id", "retry-after"):
                headers[name] = value[0] if isinstance(value, list) else value
        parsed: Any = None
        if not headers.get("Content-Type", "").startswith("text/event-stream"):
            try:
                import gzip

                plain = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
                parsed = json.loads(plain)
            except ValueError:
                parsed = None
        request_body = json.loads(req["body"]) if req.get("body") else None
        out.append(
            Interaction(
                req["method"],
                req["uri"],
                request_body,
                Reply(resp["status"]["code"], body, headers),
                parsed,
            )
        )
    return out


class ReplayServer:
    """Serves `replies` in order (the last one repeats) on 127.0.0.1."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.received: list[Received] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._served = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with owner._lock:
                    owner.connections += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with owner._lock:
                    owner.received.append(
                        Received(self.command, self.path, dict(self.headers.items()), body)
                    )
                    index = min(owner._served, len(owner.replies) - 1)
                    owner._served += 1
                    reply = owner.replies[index]
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for event in reply.body.split(b"\n\n"):
                        if event:
                            piece = event + b"\n\n"
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                            self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                self.wfile.flush()

            do_GET = do_POST = _handle

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client closing a stream early breaks our pipe: expected

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def json_reply(payload: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(
        status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers}
    )
