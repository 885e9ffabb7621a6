"""Signed, expiring download links: HMAC-SHA256 over the export id and the expiry time.

The link needs no API key (a browser can follow it); whoever holds it may download that one file
until it expires. A link whose signature does not match is 403; a genuine but expired one is 410.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import urlencode

from services.kernel.errors import ExportExpired, Forbidden

PURPOSE = "orders.export.download"


def sign(secret_key: str, export_id: str, expires: int) -> str:
    message = f"{PURPOSE}\n{export_id}\n{expires}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def signed_link(file_url: str, secret_key: str, export_id: str, expires_at: datetime) -> str:
    """``file_url`` (the API's download URL of the export) with ``?expires=…&signature=…``
    (``expires`` in Unix seconds)."""
    expires = int(expires_at.timestamp())
    query = urlencode({"expires": expires, "signature": sign(secret_key, export_id, expires)})
    return f"{file_url}?{query}"


def verify(secret_key: str, export_id: str, expires: str | None, signature: str | None, now: datetime) -> int:
    """The link's expiry (Unix seconds) when the signature is genuine and still valid."""
    # isascii(): str.isdigit() also accepts digits such as "²" that int() refuses.
    if not expires or not signature or not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
        raise Forbidden("The download link is not valid.", details=[{"reason": "missing or malformed signature"}])
    expected = sign(secret_key, export_id, int(expires))
    if not hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8", "replace")):
        raise Forbidden("The download link is not valid.", details=[{"reason": "signature mismatch"}])
    if int(expires) <= now.timestamp():
        expired_at = datetime.fromtimestamp(int(expires), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise ExportExpired(details=[{"exportId": export_id, "expiredAt": expired_at}])
    return int(expires)
