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

from config.secret_key import ConfigError
from config.settings import EnvReader, Settings
from config.startup import refuse

# Every setting is checked here, in the master, before any worker starts: each bad one is printed
# as one ``configuration error:`` line and gunicorn exits 2 (instead of a traceback per worker).
_env = EnvReader(dict(os.environ))
_port = _env.integer("PORT", 8000, minimum=1)
workers = _env.integer("WEB_CONCURRENCY", 2, minimum=1)
# Threads of the request pool each worker runs the WSGI app in (not gunicorn's gthread threads).
threads = _env.integer("WEB_THREADS", 8, minimum=1)
worker_connections = _env.integer("WEB_CONNECTIONS", 1000, minimum=1)
_access_log = _env.choice("WEB_ACCESS_LOG", "off", ("on", "off"))
try:
    _settings = Settings.from_env()
except ConfigError as exc:
    refuse(ConfigError(*exc.problems, *_env.problems))
if _env.problems:
    refuse(ConfigError(*_env.problems))

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{_port}"
worker_class = "api.serving.worker.FrontWorker"
timeout = 60
# SIGTERM: the drain (WEB_DRAIN_SECONDS, /readyz 503 while serving), then up to 20 s for the
# requests in flight; the master's SIGKILL comes after both.
graceful_timeout = 20 + int(_settings.web_drain_seconds + 0.999)
keepalive = 5
# gunicorn's own lines (error log, and the access log with WEB_ACCESS_LOG=on) as JSON when
# LOG_FORMAT is json, like every other line of the service (config/gunicorn_logging.py).
logger_class = "config.gunicorn_logging.JsonLogger" if _settings.log_json else "gunicorn.glogging.Logger"
accesslog = "-" if _access_log == "on" else None
loglevel = _settings.log_level.lower()
# The longest request line gunicorn accepts (its maximum); longer ones get a 414 envelope.
limit_request_line = 8190
# The front answers lifespan events: at shutdown it releases waiting requests and stops its pool.
asgi_lifespan = "on"
