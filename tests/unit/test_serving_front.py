"""The asyncio front (api/serving/front.py) driven as an ASGI app, with small WSGI apps behind it."""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

import falcon
import pytest

from api.async_answer import WAIT_OFFLOAD_KEY
from api.errors import install_error_handlers
from api.middleware.body import BodyLimitMiddleware
from api.serving import front as front_module
from api.serving import waits as waits_module
from api.serving.front import Front


def _scope(method: str = "GET", path: bytes = b"/", query: bytes = b"", headers: list | None = None) -> dict:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path.decode(),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": headers or [],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5555),
    }


def _run(front: Front, scope: dict, chunks: list[bytes] | None = None, *, stall: bool = False) -> dict[str, Any]:
    """Serve one request; ``chunks`` is the body as the client sends it (``stall``: then nothing more)."""
    pending = list(chunks or [])
    sent: list[dict] = []

    async def receive() -> dict:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending) or stall}
        if stall:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(front(scope, receive, send))
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return {"status": start["status"], "headers": headers, "body": body}


def _echo(environ: dict, start_response: Any) -> list[bytes]:
    """Answers what it was given: the CGI variables and the body."""
    seen = {key: value for key, value in environ.items() if key.isupper()}
    seen["body"] = environ["wsgi.input"].read().decode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


def _front(app: Any = _echo, **options: Any) -> Front:
    return Front(app, **{"max_body_bytes": 64, "body_timeout": 0.2, "threads": 2, **options})


def test_the_environ_is_what_gunicorn_builds() -> None:
    scope = _scope(
        "POST",
        b"/api/a%2Fb",
        b"x=1&y=%20",
        [(b"content-type", b"application/json"), (b"content-length", b"2"), (b"x-a", b"1"), (b"x-a", b"2")],
    )
    answer = _run(_front(), scope, [b"{}"])
    seen = json.loads(answer["body"])
    assert answer["status"] == 200
    assert seen["PATH_INFO"] == "/api/a/b" and seen["QUERY_STRING"] == "x=1&y=%20"
    assert seen["RAW_URI"] == "/api/a%2Fb?x=1&y=%20"
    assert (seen["CONTENT_TYPE"], seen["CONTENT_LENGTH"], seen["HTTP_X_A"]) == ("application/json", "2", "1,2")
    assert (seen["REMOTE_ADDR"], seen["SERVER_PORT"], seen["SERVER_PROTOCOL"]) == ("127.0.0.1", "8000", "HTTP/1.1")
    assert seen["body"] == "{}"


def test_a_chunked_body_reaches_the_app_whole_with_a_content_length() -> None:
    scope = _scope("POST", b"/", headers=[(b"transfer-encoding", b"chunked")])
    seen = json.loads(_run(_front(), scope, [b'{"a":', b" 1}"])["body"])
    assert seen["body"] == '{"a": 1}' and seen["CONTENT_LENGTH"] == "8"
    assert "HTTP_TRANSFER_ENCODING" not in seen


def _limited_app() -> falcon.App:
    class Echo:
        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"bytes": len(req.context.raw_body)}

    app = falcon.App(middleware=[BodyLimitMiddleware(64)])
    install_error_handlers(app)
    app.add_route("/", Echo())
    return app


@pytest.mark.parametrize(
    "headers", [[(b"transfer-encoding", b"chunked")], [(b"content-length", b"100")]], ids=["chunked", "length"]
)
def test_a_body_over_the_limit_is_the_apps_413_and_the_connection_closes(headers: list) -> None:
    answer = _run(_front(_limited_app()), _scope("POST", b"/", headers=headers), [b"a" * 40, b"a" * 60])
    assert answer["status"] == 413
    assert json.loads(answer["body"])["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert answer["headers"]["connection"] == "close"
    within = _run(_front(_limited_app()), _scope("POST", b"/", headers=[(b"transfer-encoding", b"chunked")]), [b"a"])
    assert (within["status"], json.loads(within["body"])) == (200, {"bytes": 1})


def test_a_body_that_stalls_gets_a_408_envelope() -> None:
    scope = _scope("POST", b"/", headers=[(b"content-length", b"10"), (b"x-request-id", b"req-stalled")])
    started = time.monotonic()
    answer = _run(_front(), scope, [b"{"], stall=True)
    assert time.monotonic() - started < 2
    assert answer["status"] == 408 and answer["headers"]["connection"] == "close"
    error = json.loads(answer["body"])["error"]
    assert (error["code"], error["requestId"]) == ("REQUEST_TIMEOUT", "req-stalled")


def test_a_file_body_is_streamed_in_blocks() -> None:
    data = b"x" * (3 * front_module.FILE_BLOCK_BYTES + 10)

    def app(environ: dict, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/csv")])
        return environ["wsgi.file_wrapper"](io.BytesIO(data), 8192)

    assert _run(_front(app), _scope())["body"] == data


class _Deferred:
    def __init__(self, wait: float) -> None:
        self.db, self.job_id, self.deadline = object(), "task_1", time.monotonic() + wait
        self.answered_after: float | None = None

    def answer(self, status: int, headers: dict, body: bytes) -> tuple[int, dict, bytes]:
        self.answered_after = time.monotonic()
        return 200, {**headers, "preference-applied": "wait=5"}, b'{"done": true}'


def _deferring_app(deferred: _Deferred) -> Any:
    def app(environ: dict, start_response: Any) -> list[bytes]:
        environ[WAIT_OFFLOAD_KEY].deferred = deferred
        start_response("202 Accepted", [("Content-Type", "application/json"), ("X-Request-Id", "r1")])
        return [b'{"taskId": "task_1"}']

    return app


def test_a_deferred_wait_is_awaited_on_the_loop_then_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    finished_at = time.monotonic() + 0.3

    def finished_among(db: object, ids: list[str]) -> set[str]:
        return set(ids) if time.monotonic() > finished_at else set()

    monkeypatch.setattr(waits_module, "finished_among", finished_among)
    deferred = _Deferred(wait=5)
    front = _front(_deferring_app(deferred), threads=1)
    answer = _run(front, _scope("POST"))
    assert answer["status"] == 200 and answer["body"] == b'{"done": true}'
    assert answer["headers"]["preference-applied"] == "wait=5" and answer["headers"]["x-request-id"] == "r1"
    assert finished_at <= deferred.answered_after < finished_at + 1


def test_a_deferred_wait_that_runs_out_answers_what_answer_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waits_module, "finished_among", lambda db, ids: set())
    deferred = _Deferred(wait=0.2)
    started = time.monotonic()
    _run(_front(_deferring_app(deferred), threads=1), _scope("POST"))
    assert 0.2 <= deferred.answered_after - started < 1.5
