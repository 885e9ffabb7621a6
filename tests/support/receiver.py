"""A webhook receiver on 127.0.0.1: records every POST and behaves as its path asks.

- ``/ok/<name>``: 200;
- ``/flaky/<n>/<name>``: 500 to the first ``n`` requests on that path, then 200;
- ``/hang/<name>``: holds the request (until the server stops), as a receiver that never answers;
- ``/slow/<seconds>/<name>``: answers 200 after that many seconds (on the first request only);
- ``/redirect/<name>``: 302 to another address (which must not be followed).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from workers.embedded_redis import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: str
    at: float  # time.monotonic() when the request arrived
    status: int


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[Received] = []
        self.started: list[tuple[str, float]] = []  # (path, arrival) as soon as a request's head is read
        self._counts: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                with receiver._lock:
                    receiver._counts[self.path] += 1
                    count = receiver._counts[self.path]
                    receiver.started.append((self.path, arrived))
                status = receiver._behave(self.path, count)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, arrived, status)
                    )
                try:
                    self.send_response(status)
                    if status == 302:
                        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up (timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True

    def _behave(self, path: str, count: int) -> int:
        parts = path.strip("/").split("/")
        kind = parts[0]
        if kind == "flaky":
            return 500 if count <= int(parts[1]) else 200
        if kind == "hang":
            self.stopping.wait(120)
            return 200
        if kind == "slow" and count == 1:
            self.stopping.wait(float(parts[1]))
            return 200
        if kind == "redirect":
            return 302
        return 200

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def start(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
