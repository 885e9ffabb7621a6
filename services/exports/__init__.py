"""Order exports: CSV and XLSX files built by workers, streamed, with signed, expiring downloads."""

from services.exports.service import (
    EXPORT_QUEUE,
    EXPORT_TASK,
    ExportFile,
    ExportPolicy,
    ExportRequest,
    QueuedExport,
    build_export,
    open_export,
    request_export,
)

__all__ = [
    "EXPORT_QUEUE",
    "EXPORT_TASK",
    "ExportFile",
    "ExportPolicy",
    "ExportRequest",
    "QueuedExport",
    "build_export",
    "open_export",
    "request_export",
]
