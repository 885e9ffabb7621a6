"""Gunicorn settings for the ``web`` process, from the environment.

gthread keeps connections alive between requests and lets one process overlap database waits;
``WEB_CONCURRENCY`` and ``WEB_THREADS`` size it per machine.
"""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
timeout = 60
graceful_timeout = 20
keepalive = 5
accesslog = None
# The longest request line gunicorn accepts (its maximum); longer ones get gunicorn's own 414.
limit_request_line = 8190
