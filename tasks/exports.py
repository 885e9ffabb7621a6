"""The export task (``exports`` queue): builds one export's file from its job's args."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from models import Database
from services.exports import ExportPolicy, build_export
from tasks.runner import JobContext, run_job
from workers import runtime

# An export of millions of rows takes minutes; the broker's visibility timeout (2 h) stays above.
SOFT_TIME_LIMIT_SECONDS = 55 * 60
TIME_LIMIT_SECONDS = 60 * 60


def _build(db: Database, args: dict[str, Any], context: JobContext) -> dict[str, Any]:
    return build_export(
        db,
        args,
        ExportPolicy.from_settings(runtime.settings()),
        job_id=context.job_id,
        attempt=context.attempt,
        report_progress=context.report_progress,
    )


@shared_task(
    name="exports.build_export",
    bind=True,
    max_retries=3,
    soft_time_limit=SOFT_TIME_LIMIT_SECONDS,
    time_limit=TIME_LIMIT_SECONDS,
)
def build_export_task(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    run_job(self, job_id, _build, with_context=True)
