"""Gunicorn settings for the ``web`` process, from the environment.

Each of ``WEB_CONCURRENCY`` worker processes runs an asyncio event loop (gunicorn's ASGI worker,
see ``api/serving/worker.py``) that reads requests, buffers their bodies and writes responses,
and a pool of ``WEB_THREADS`` threads that runs the Falcon WSGI app on requests that have fully
arrived. A slow or idle client costs a socket and a few kilobytes, never a request thread, and a
``Prefer: wait`` is awaited on the loop. Bounds per worker (README, "Serving"):

- ``WEB_CONNECTIONS`` open connections (default 1000; one more gets a 503 envelope);
- the request line ``limit_request_line`` bytes (414), each header ``limit_request_field_size``
  bytes and at most ``limit_request_fields`` headers (431): JSON envelopes, never HTML;
- the first request head within ``REQUEST_HEAD_TIMEOUT_SECONDS`` (10 s; later ones on a kept-alive
  connection within ``keepalive``), the body within ``REQUEST_BODY_TIMEOUT_SECONDS`` (30 s): 408;
- the body at most ``MAX_BODY_BYTES`` (1 MiB, chunked or not): 413.
"""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "api.serving.worker.FrontWorker"
# Threads of the request pool each worker runs the WSGI app in (not gunicorn's gthread threads).
threads = int(os.environ.get("WEB_THREADS", "8"))
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "1000"))
timeout = 60
graceful_timeout = 20
keepalive = 5
accesslog = None
# The longest request line gunicorn accepts (its maximum); longer ones get a 414 envelope.
limit_request_line = 8190
# The front answers lifespan events: at shutdown it releases waiting requests and stops its pool.
asgi_lifespan = "on"
