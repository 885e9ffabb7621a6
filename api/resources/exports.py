"""``POST /api/orders/export`` (queue an export) and ``GET /api/exports/{id}/file`` (download).

The download is public (no API key): the signed, expiring query string is the credential, so a
browser can follow the ``downloadUrl`` of a finished export task. The bytes are streamed from the
export store (the local folder, or S3 when ``EXPORT_STORAGE_URL`` names one), so any host's web
process serves any export, with ranges asked of the store as ranges. Streaming rather than
redirecting to a presigned store URL keeps one URL, one credential (our signature), our headers
(``Content-Disposition``, ``ETag``, ``Cache-Control: no-store``) and our 403/410 answers, and needs
no public endpoint on the store. It answers byte ranges (one
range per request; a multi-range or malformed ``Range`` is ignored and the whole file is sent, as
RFC 9110 allows), 416 with ``Content-Range: bytes */size`` for an unsatisfiable one.
"""

from __future__ import annotations

import re

import falcon

from api.async_answer import answer_job
from api.deps import Deps
from api.links import PublicLinks
from api.openapi import IF_RANGE, PREFER, RANGE, Header, Reply, operation, queued
from api.schemas import ExportIn, ExportLinkQuery, ExportResultOut
from api.validation import parse_body
from services.exports import ExportFile, ExportPolicy, ExportRequest, open_export, request_export
from services.exports.writers import XLSX_CONTENT_TYPE
from services.kernel.errors import ResourceNotFound

CHUNK_BYTES = 256 * 1024

# CSV is text; XLSX is a binary (zip) file.
FILE_CONTENT = {
    "text/csv": {"type": "string"},
    XLSX_CONTENT_TYPE: {"type": "string", "contentMediaType": XLSX_CONTENT_TYPE},
}
FILE_HEADERS = (
    Header("Content-Disposition", '`attachment; filename="<export id>.<csv|xlsx>"`.', required=True),
    Header("ETag", "The file's SHA-256, quoted (for If-Range).", required=True),
    Header("Accept-Ranges", "`bytes`.", required=True),
)


class OrderExportResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.policy = ExportPolicy.from_settings(deps.settings)
        self.links = PublicLinks(deps.settings.public_base_url)

    @operation(
        "exportOrders",
        tags=["exports"],
        json=ExportIn,
        idempotent=True,
        request_headers=(PREFER,),
        replies=queued(ExportResultOut, "the export's file link."),
        errors=(403,),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Queue an export of orders to CSV or XLSX (admin and ops); poll the task for the link."""
        body = parse_body(req, ExportIn)
        request = ExportRequest(format=body.format, columns=body.columns, filters=body.export_filters())
        queued = request_export(
            self.deps.db,
            req.context.principal,
            request,
            self.policy,
            file_url=self.links.export_file_url,
            request_id=req.context.request_id,
        )
        self.deps.sender.send(queued.job, request_id=req.context.request_id)
        answer_job(req, resp, self.deps.db, queued.job.job_id, self.deps.notices)


# RFC 9110 §14.1.2: a byte position is 1*DIGIT, and DIGIT is ASCII 0-9 only (``str.isdigit()``
# also accepts "²" and "١", which ``int()`` refuses or reads as another number).
_POSITION = re.compile(r"[0-9]*")
# A position with more digits than this lies beyond any file we serve; it is read as this
# (``int()`` refuses strings over 4,300 digits, and there is no need to parse them).
_BEYOND_ANY_FILE = 10**18


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else _BEYOND_ANY_FILE


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` a single-range ``Range`` header asks for, or None to send
    the whole file; raises 416 when the range lies outside the file."""
    if not header:
        return None
    unit, _, spec_ = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec_:
        return None
    first_raw, dash, last_raw = (part.strip() for part in spec_.strip().partition("-"))
    if not dash or not (first_raw or last_raw):
        return None
    if not (_POSITION.fullmatch(first_raw) and _POSITION.fullmatch(last_raw)):
        return None
    if not first_raw:  # suffix: the last N bytes
        suffix = _position(last_raw)
        if suffix == 0 or size == 0:
            raise falcon.HTTPRangeNotSatisfiable(resource_length=size)
        return max(0, size - suffix), size - 1
    first = _position(first_raw)
    last = _position(last_raw) if last_raw else size - 1
    if last_raw and last < first:
        return None
    if first >= size:
        raise falcon.HTTPRangeNotSatisfiable(resource_length=size)
    return first, min(last, size - 1)


class ExportFileResource:
    public = True

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.policy = ExportPolicy.from_settings(deps.settings)

    def _open(self, req: falcon.Request, export_id: str) -> ExportFile:
        return open_export(
            self.deps.db,
            export_id,
            expires=req.get_param("expires"),
            signature=req.get_param("signature"),
            policy=self.policy,
        )

    @staticmethod
    def _headers(resp: falcon.Response, found: ExportFile) -> None:
        resp.content_type = found.content_type
        resp.set_header("Content-Disposition", f'attachment; filename="{found.filename}"')
        resp.set_header("Accept-Ranges", "bytes")
        resp.set_header("ETag", f'"{found.sha256}"')
        resp.set_header("Cache-Control", "private, no-store")
        resp.set_header("X-Content-Type-Options", "nosniff")

    @operation(
        "downloadExport",
        tags=["exports"],
        public=True,
        query=ExportLinkQuery,
        request_headers=(RANGE, IF_RANGE),
        replies={
            200: Reply(description="The whole file.", headers=FILE_HEADERS, content=FILE_CONTENT),
            206: Reply(
                description="The byte range asked for.",
                headers=(*FILE_HEADERS, Header("Content-Range", "`bytes first-last/size`.", required=True)),
                content=FILE_CONTENT,
            ),
        },
        # 400: U+0000 in the id or a parameter; 403: a bad signature; 410: expired.
        errors=(403, 404, 410, 416),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, export_id: str) -> None:
        """The export's file (signed link; no API key). Honours ``Range`` and ``If-Range``."""
        found = self._open(req, export_id)
        wanted = None
        if_range = req.get_header("If-Range")
        if if_range is None or if_range == f'"{found.sha256}"':
            wanted = byte_range(req.get_header("Range"), found.size)
        if wanted is None:
            stream = found.open()  # 404 before any header is set, if the file is gone
            self._headers(resp, found)
            resp.content_length = found.size
            resp.stream = stream
            return
        first, last = wanted
        stream = found.open(first, last)
        self._headers(resp, found)
        resp.status = falcon.HTTP_206
        resp.content_range = (first, last, found.size)
        resp.content_length = last - first + 1
        resp.stream = stream

    def on_head(self, req: falcon.Request, resp: falcon.Response, export_id: str) -> None:
        found = self._open(req, export_id)
        if not found.exists():
            raise ResourceNotFound("The export's file is no longer available.", details=[{"exportId": export_id}])
        self._headers(resp, found)
        resp.content_length = found.size
