"""Order exports: CSV and XLSX files built by workers, streamed, with signed, expiring downloads."""

from services.exports.service import (
    ExportFile,
    ExportPolicy,
    ExportRequest,
    QueuedExport,
    build_export,
    open_export,
    request_export,
)

__all__ = [
    "ExportFile",
    "ExportPolicy",
    "ExportRequest",
    "QueuedExport",
    "build_export",
    "open_export",
    "request_export",
]
