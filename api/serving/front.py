"""The asyncio front: an ASGI app that serves the synchronous Falcon WSGI app without letting slow
or idle clients hold its threads.

For each request the event loop (gunicorn's ASGI worker, :mod:`api.serving.worker`) has already
parsed the head; the front then

1. reads the whole body on the loop: at most ``max_body_bytes`` + 1 bytes, within
   ``body_timeout`` seconds (else a 408 envelope). A chunked body is decoded and handed on with a
   Content-Length. A body over the limit is not read further: the app answers its 413 envelope
   as it always did (``BodyLimitMiddleware``), and the rest is drained briefly, so the client
   reads the 413 instead of a reset;
2. runs the WSGI app in a bounded thread pool (``threads``) on the buffered request; a request
   thread is only ever busy with a request that has fully arrived;
3. sends the response from the loop: a slow reader holds no thread. A streamed body (an export
   file) is pulled from the app one block per pool call;
4. for ``Prefer: wait=N`` on a job that has not finished (see :mod:`api.async_answer`), holds the
   202 back and awaits the job on the loop (:mod:`api.serving.waits`), then sends the answer the
   synchronous wait would have given. Waiting clients hold no thread either;
5. for a task's event stream (``GET /api/tasks/{id}/events``, :mod:`api.task_events`) that the
   app handed over, sends the events as they happen from the loop (:mod:`api.serving.streams`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from api.async_answer import WAIT_OFFLOAD_KEY, DeferredAnswer, WaitOffload
from api.errors import protocol_error
from api.middleware.request_id import request_id_for
from api.serving.streams import StreamOptions, TaskStreams
from api.serving.waits import JobWaits
from api.task_events import STREAM_OFFLOAD_KEY, StreamOffload

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

# After a 413, read and discard at most this much of the rest of the body, for at most this long.
DRAIN_BYTES = 8 * 1024 * 1024
DRAIN_SECONDS = 2.0
FILE_BLOCK_BYTES = 256 * 1024


class FileWrapper:
    """``wsgi.file_wrapper``: a file-like body in large blocks (one pool call each)."""

    def __init__(self, filelike: Any, block_size: int = FILE_BLOCK_BYTES) -> None:
        self.filelike = filelike
        self.block_size = max(block_size, FILE_BLOCK_BYTES)

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self.filelike.read(self.block_size), b"")

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


@dataclass
class _Body:
    data: bytes
    over_limit: bool = False


@dataclass
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    rest: Iterator[bytes] | None = None  # a streamed body still to pull from the app
    iterable: Iterable[bytes] | None = None  # what to close() once sent


class _TimedOut(Exception):
    pass


class Front:
    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        max_body_bytes: int,
        body_timeout: float,
        threads: int,
        streams: StreamOptions | None = None,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")
        self.waits = JobWaits(self.executor)
        # Task event streams served from the loop; None: the app streams them in its thread.
        self.streams = TaskStreams(self.executor, streams) if streams is not None else None
        self._listening: set[int] = set()  # completion-notice listeners already feeding self.waits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    def shutting_down(self) -> None:
        """The worker stops: waiting requests answer their 202 now (clients poll the task), streams end."""
        self.waits.release_all()
        if self.streams is not None:
            self.streams.release_all()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.streams is not None:
                    self.streams.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.shutting_down()
                await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        try:
            body = await self._read_body(scope, receive)
        except _TimedOut:
            request_id = request_id_for(_header(scope, b"x-request-id"))
            log.info("request body not received in %ss; 408 (request %s)", self.body_timeout, request_id)
            status, headers, data = protocol_error(408, "body not received in time", request_id)
            await _send_whole(send, status, [*headers, ("Connection", "close")], data)
            return
        if body is None:
            return  # the client went away before its body arrived: nobody to answer
        offload = WaitOffload()
        environ = _environ(scope, body)
        environ[WAIT_OFFLOAD_KEY] = offload
        streamed = StreamOffload()
        if self.streams is not None:
            environ[STREAM_OFFLOAD_KEY] = streamed
        response = await loop.run_in_executor(self.executor, self._call_app, environ)
        handed_over = streamed.stream is not None and response.status == 200 and response.rest is None
        if handed_over and self.streams is not None:
            await self.streams.serve(send, receive, response.status, response.headers, response.body, streamed.stream)
            return
        deferred = offload.deferred
        if deferred is not None:
            response = await self._waited(deferred, response)
        headers = response.headers
        if body.over_limit:
            headers = [*headers, ("Connection", "close")]
        await self._send(send, response, headers)
        if body.over_limit:
            await _drain(receive)

    async def _waited(self, deferred: DeferredAnswer, response: _Response) -> _Response:
        loop = asyncio.get_running_loop()
        held: dict[str, str] = {}
        for name, value in response.headers:
            key = name.lower()
            held[key] = f"{held[key]}, {value}" if key in held else value
        answer = lambda: deferred.answer(response.status, held, response.body)  # noqa: E731
        notices = getattr(deferred, "notices", None)
        if notices is not None and id(notices) not in self._listening:
            self._listening.add(id(notices))
            notices.add_callback(lambda job_id: loop.call_soon_threadsafe(self.waits.notify, job_id))
        try:
            await self.waits.wait(deferred.db, deferred.job_id, deferred.deadline - time.monotonic())
        except asyncio.CancelledError:
            # The client went away: still store and count the answer, as the synchronous wait does.
            with contextlib.suppress(RuntimeError):  # the pool is shut down: the worker is exiting
                loop.run_in_executor(self.executor, answer)
            raise
        status, headers, body = await loop.run_in_executor(self.executor, answer)
        return _Response(status, list(headers.items()), body)

    async def _read_body(self, scope: Scope, receive: Receive) -> _Body | None:
        limit = self.max_body_bytes
        length_header = _header(scope, b"content-length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        if length is not None and length > limit:
            return _Body(b"", over_limit=True)  # the app refuses it from Content-Length alone
        if length == 0 or (length is None and _header(scope, b"transfer-encoding") is None):
            return _Body(b"")
        parts: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    parts.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        return _Body(b"".join(parts)[: limit + 1], over_limit=True)
                    if not message.get("more_body", False):
                        return _Body(b"".join(parts))
        except TimeoutError:
            raise _TimedOut from None

    def _call_app(self, environ: dict[str, Any]) -> _Response:
        """Run the WSGI app (in a pool thread) up to its first body block."""
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return written.append

        try:
            result = self.app(environ, start_response)
            if isinstance(result, list | tuple):
                body = b"".join([*written, *result])
                rest = None
            else:
                rest = iter(result)
                first = next(rest, b"")
                body = b"".join([*written, first])
        except Exception:
            request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID"))
            log.exception("the WSGI app raised (request %s)", request_id)
            status, headers, data = protocol_error(500, None, request_id)
            return _Response(status, headers, data)
        status, headers = started
        if rest is None:
            _close(result)
            return _Response(int(status[:3]), headers, body)
        return _Response(int(status[:3]), headers, body, rest, result)

    async def _send(self, send: Send, response: _Response, headers: list[tuple[str, str]]) -> None:
        loop = asyncio.get_running_loop()
        if response.rest is None:
            await _send_whole(send, response.status, headers, response.body)
            return
        try:
            await send({"type": "http.response.start", "status": response.status, "headers": _encode(headers)})
            chunk = response.body
            while chunk is not None:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                chunk = await loop.run_in_executor(self.executor, next, response.rest, None)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await loop.run_in_executor(self.executor, _close, response.iterable)


def _close(iterable: Any) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


async def _send_whole(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    if not any(name.lower() == "content-length" for name, _ in headers):
        headers = [*headers, ("Content-Length", str(len(body)))]
    await send({"type": "http.response.start", "status": status, "headers": _encode(headers)})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def _drain(receive: Receive) -> None:
    """Discard what is left of a refused body for a moment, so the client gets to read the answer."""
    drained = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while drained < DRAIN_BYTES:
                message = await receive()
                if message["type"] == "http.disconnect" or not message.get("more_body", False):
                    return
                drained += len(message.get("body", b""))
    except TimeoutError:
        pass


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _environ(scope: Scope, body: _Body) -> dict[str, Any]:
    """A PEP 3333 environ for a buffered request, as gunicorn's WSGI workers build it."""
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string", b"").decode("latin-1")
    server = scope.get("server") or ("", 0)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", ""),
        "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
        "QUERY_STRING": query,
        "RAW_URI": raw_path.decode("latin-1") + (f"?{query}" if query else ""),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body.data),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    chunked = False
    for name_bytes, value_bytes in scope["headers"]:
        name, value = name_bytes.decode("latin-1"), value_bytes.decode("latin-1")
        if name == "content-length":
            environ["CONTENT_LENGTH"] = value
            continue
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "transfer-encoding":
            chunked = True
        key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    if chunked and not body.over_limit:
        # Decoded and buffered: the app sees a plain body of known length, as behind a buffering proxy.
        del environ["HTTP_TRANSFER_ENCODING"]
        environ["CONTENT_LENGTH"] = str(len(body.data))
    return environ
