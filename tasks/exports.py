"""The export task (``exports`` queue): builds one export's file from its job's args."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from services.exports import ExportPolicy, build_export
from services.jobs.kinds import EXPORT
from tasks.runner import JobContext, run_job

# An export of millions of rows takes minutes; the broker's visibility timeout (2 h) stays above.
SOFT_TIME_LIMIT_SECONDS = 55 * 60
TIME_LIMIT_SECONDS = 60 * 60


def _build(job: JobContext, args: dict[str, Any]) -> dict[str, Any]:
    return build_export(
        job.db,
        args,
        ExportPolicy.from_settings(job.settings),
        job_id=job.job_id,
        attempt=job.attempt,
        report_progress=job.report_progress,
    )


@shared_task(
    name=EXPORT.task_name,
    bind=True,
    max_retries=3,
    soft_time_limit=SOFT_TIME_LIMIT_SECONDS,
    time_limit=TIME_LIMIT_SECONDS,
)
def build_export_task(self, job_id: str) -> None:  # noqa: ANN001 (Celery binds the task)
    run_job(self, job_id, _build)
