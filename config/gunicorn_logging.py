"""gunicorn's own log lines as JSON (``logger_class`` of config/gunicorn.py with ``LOG_FORMAT=json``).

gunicorn writes its error log ("Booting worker", "Worker exiting", timeouts) and its access log
with plain ``logging.Formatter`` strings of its own. Here both handlers get the service's JSON
formatter, and each access line carries its fields as keys (``remote``, ``method``, ``path``,
``status``, ``bytes``, ``duration_ms``, ``user_agent``, ``request_id``) instead of one Apache-style
string that a log pipeline would have to parse again.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn import glogging

from config.logging import line_formatter


class JsonLogger(glogging.Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = line_formatter(log_json=True)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.setFormatter(formatter)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        headers = {str(name).lower(): value for name, value in (getattr(resp, "headers", None) or [])}
        try:
            self.access_log.info(
                "request",
                extra={
                    "remote": atoms["h"],
                    "method": atoms["m"],
                    "path": atoms["U"],
                    "query": atoms["q"] or None,
                    "status": int(str(atoms["s"]).split()[0]) if str(atoms["s"]).split() else None,
                    "bytes": atoms["B"],
                    "duration_ms": round(atoms["D"] / 1000, 3),
                    "user_agent": atoms["a"],
                    "request_id": headers.get("x-request-id"),
                },
            )
        except Exception:  # a log line must never fail a request
            logging.getLogger(__name__).exception("access log line not written")
