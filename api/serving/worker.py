"""The gunicorn worker of the ``web`` process: gunicorn's asyncio (ASGI) worker, serving the
Falcon WSGI app through :class:`api.serving.front.Front`.

gunicorn parses HTTP/1.1 on the event loop (request line and header limits, chunked decoding,
keep-alive, pipelining, flow control); what this module adds to it:

- every answer gunicorn gives by itself (400 unparsable request, 414 request line over
  ``limit_request_line``, 431 header over ``limit_request_field_size`` or more than
  ``limit_request_fields`` headers, 501 transfer coding, 500) is the JSON error envelope
  instead of gunicorn's plain text;
- a connection must deliver its first request head within ``REQUEST_HEAD_TIMEOUT_SECONDS``
  (default 10 s), or it gets a 408 envelope (silence if it sent nothing) and is closed. gunicorn
  bounds the following heads of a kept-alive connection by ``keepalive``, not the first one;
- at most ``worker_connections`` connections per worker: one more is answered 503 and closed;
- on SIGTERM/SIGINT, requests waiting out a ``Prefer: wait`` answer their 202 at once, so the
  graceful shutdown does not wait for them;
- on SIGTERM with ``WEB_DRAIN_SECONDS`` > 0, the worker first *drains*: ``/readyz`` answers 503
  while every request is still served, for that long, and only then stops accepting connections
  and finishes the requests in flight (a second SIGTERM ends the drain at once).

Written against gunicorn 27.0.1 (pinned exactly in requirements.txt): it overrides
``ASGIProtocol._send_error_response`` and hooks ``connection_made``/``_on_headers_complete``,
which are internal; tests/e2e and tests/reliability/test_slow_clients.py pin the behaviour.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi

from api.draining import is_draining, start_draining
from api.errors import protocol_error
from api.serving.front import Front
from api.serving.streams import StreamOptions
from config.settings import Settings
from models.ids import new_id

log = logging.getLogger(__name__)
# RFC 9110's phrases where Python 3.11's http.HTTPStatus still has older ones.
_REASONS = {413: "Content Too Large", 414: "URI Too Long"}


class FrontProtocol(ASGIProtocol):
    """gunicorn's HTTP/1.1 protocol with JSON error answers, a head deadline and a connection cap."""

    head_timeout: float = Settings.request_head_timeout_seconds

    def connection_made(self, transport: Any) -> None:
        self._head_timer = None
        self._head_started = False
        super().connection_made(transport)
        worker = self.worker
        if worker.nr_conns > worker.worker_connections:
            self._send_error_response(503, f"over {worker.worker_connections} connections")
            self._give_up()
            return
        if self.head_timeout > 0:
            self._head_timer = worker.loop.call_later(self.head_timeout, self._head_timed_out)

    def data_received(self, data: bytes) -> None:
        self._head_started = True
        super().data_received(data)

    def _on_headers_complete(self) -> Any:
        self._cancel_head_timer()
        return super()._on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._closed:
            return
        if self._head_started:
            self._send_error_response(408, f"request head not received within {self.head_timeout:g} s")
        self._give_up()

    def _give_up(self) -> None:
        self._close_transport()
        if self._request_ready is not None:
            self._request_ready.set()  # wake the connection loop so it sees the close and ends

    def _send_error_response(self, status: int, message: str, extra_headers: Any = ()) -> None:
        if self._closed:
            return  # the client is gone: nobody to answer
        request_id = new_id("req")
        log.info("answered %s by the server itself: %s (request %s)", status, message[:200], request_id)
        status, headers, body = protocol_error(status, message, request_id)
        try:
            reason = _REASONS.get(status) or HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{name}: {value}" for name, value in [*headers, *extra_headers]]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        self._safe_write("\r\n".join(lines).encode("latin-1") + body)


class FrontWorker(gasgi.ASGIWorker):
    """``worker_class`` of config/gunicorn.py; ``threads`` sizes the front's request thread pool."""

    asgi: Any

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """ASGIWorker warns that it ignores ``threads``; here they size the WSGI pool."""

    def init_process(self) -> None:
        # ASGIWorker builds its protocol through this module-level name; this process is ours.
        gasgi.ASGIProtocol = FrontProtocol
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()  # the Falcon WSGI app, from 'api.app:get_app()'
        settings = Settings.from_env()
        FrontProtocol.head_timeout = settings.request_head_timeout_seconds
        self.drain_seconds = settings.web_drain_seconds
        self.asgi = Front(
            self.asgi,
            max_body_bytes=settings.max_body_bytes,
            body_timeout=settings.request_body_timeout_seconds,
            threads=self.cfg.threads,
            streams=StreamOptions(
                settings.redis_url,
                max_seconds=settings.task_stream_max_seconds,
                keepalive_seconds=settings.task_stream_keepalive_seconds,
            ),
        )

    drain_seconds: float = 0.0

    def handle_exit_signal(self) -> None:
        if isinstance(self.asgi, Front):
            self.asgi.shutting_down()
        if self.drain_seconds > 0 and not is_draining():
            start_draining()
            self.log.info("draining for %gs: /readyz answers 503, requests are still served", self.drain_seconds)
            self.loop.call_later(self.drain_seconds, super().handle_exit_signal)
            return
        super().handle_exit_signal()

    def handle_quit_signal(self) -> None:
        super().handle_quit_signal()
        if isinstance(self.asgi, Front):
            self.asgi.shutting_down()
