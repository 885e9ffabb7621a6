"""Structured (JSON) logging for every process, with the request id bound per request/task."""

from __future__ import annotations

import logging
import sys

import structlog

from config.settings import Settings


def _shared() -> list[structlog.types.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        # stdlib calls' ``extra={...}`` fields become keys of the line (they used to be dropped).
        structlog.stdlib.ExtraAdder(),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def line_formatter(log_json: bool) -> logging.Formatter:
    """The formatter of every handler: stdlib records (Celery's, gunicorn's, ours) and structlog
    events end up as one JSON object per line (or coloured text with ``LOG_FORMAT=console``)."""
    renderer = structlog.processors.JSONRenderer() if log_json else structlog.dev.ConsoleRenderer()
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared(), structlog.processors.format_exc_info],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that renders the line before taking its lock and holds the lock only to
    write it: with a web process's request threads all logging, a plain ``StreamHandler`` holds
    its lock through the JSON rendering too, and the threads queue behind one another on it
    (the request line was two thirds of a ``GET /api/orders/{id}``'s time in the app). Rendering
    stays on the calling thread, so context variables (the request id) are still its own."""

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if not self.filter(record):
            return False
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return True
        with self.lock:  # type: ignore[union-attr]
            try:
                self.stream.write(line)
                self.stream.flush()
            except Exception:
                self.handleError(record)
        return True


def configure_logging(settings: Settings) -> None:
    """Route stdlib and structlog output through one JSON renderer on stderr.

    ``structlog.contextvars`` carries ``request_id`` so every line written while handling a
    request, or while running a task that a request queued, names the same request.
    """
    structlog.configure(
        processors=[
            *_shared(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = LineHandler(sys.stderr)
    handler.setFormatter(line_formatter(settings.log_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    logging.captureWarnings(True)  # Python warnings (Celery's SecurityWarning…) as log lines too
