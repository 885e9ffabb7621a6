"""Export files built by workers: where each file lives, what it holds, and when it expires.

A row is written only once its file is complete and renamed into place, so a row always names a
whole file. Deleting expired files and rows is the reconciliation beat job's work.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import UTCDateTime, utcnow


class Export(Base):
    __tablename__ = "exports"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(40), unique=True)
    format: Mapped[str] = mapped_column(String(8))
    # File name relative to the configured export directory (never an absolute path).
    path: Mapped[str] = mapped_column(String(255))
    rows: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
