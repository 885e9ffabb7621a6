"""The job table: the durable record of every queued task (an outbox and a result store).

A job row is written in the same transaction as the change it belongs to; the Celery message is
sent after commit, and re-sent by a beat job while the row stays ``queued``. Clients poll jobs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import UTCDateTime, utcnow


class Job(Base):
    __tablename__ = "jobs"
    # The lease sweep and the stalled-jobs gauge look for running jobs with an old heartbeat.
    __table_args__ = (Index("ix_jobs_state_heartbeat_at", "state", "heartbeat_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    task_name: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(40))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    owner_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    owner_customer_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    # A child job (one order of a bulk cancel) names its parent; the last child to finish
    # gathers the children's outcomes into the parent's result.
    parent_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    progress_current: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    send_count: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The lease of a running job: set when a worker claims it and renewed by that worker's
    # heartbeat while it runs (services/jobs/leases.py). Older than the lease means its worker is
    # gone, and the job is put back in its queue. NULL: claimed by a worker without heartbeats.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
