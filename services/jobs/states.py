"""A job's states and how long a finished one is kept: the vocabulary every jobs module shares."""

from __future__ import annotations

from datetime import timedelta

from models import Job

JOBS = Job.__table__
QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
FINISHED = (SUCCEEDED, FAILED)

# How long a finished job stays pollable before housekeeping deletes it (unless set earlier).
JOB_RETENTION = timedelta(days=7)
