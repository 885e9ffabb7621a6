"""Idempotency-Key handling: the first response of a POST is stored and replayed.

A key is claimed with an INSERT of an ``in_flight`` row in its own transaction; the unique
constraint on (scope, key) makes the claim atomic across processes and machines. The same key
with another body is refused; a key whose first request still runs answers "in use".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from models import Database, IdempotencyRecord
from models.types import utcnow
from services.kernel.errors import IdempotencyKeyInUse, IdempotencyKeyReused, ValidationFailed

IN_FLIGHT, DONE = "in_flight", "done"
MAX_KEY_LENGTH = 255
# A claim still in flight after this long belongs to a request that died (process killed,
# database lost mid-request); it is taken over instead of blocking the key for its whole TTL.
ABANDONED_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str | None
    headers: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """Either a fresh claim (``record_id`` set) or a stored response to replay."""

    record_id: int | None
    replay: StoredResponse | None


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def claim(db: Database, scope: str, key: str, request_fingerprint: str, ttl: timedelta) -> Claim:
    """Claim ``key`` for this request, or say what to do instead."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(details=[{"field": "Idempotency-Key", "message": f"1 to {MAX_KEY_LENGTH} characters"}])
    now = utcnow()
    for _ in range(2):
        try:
            with db.transaction() as session:
                record = IdempotencyRecord(
                    scope=scope,
                    key=key,
                    fingerprint=request_fingerprint,
                    state=IN_FLIGHT,
                    created_at=now,
                    expires_at=now + ttl,
                )
                session.add(record)
                session.flush()
                return Claim(record_id=record.id, replay=None)
        except IntegrityError:
            pass
        with db.transaction() as session:
            existing = session.scalar(
                select(IdempotencyRecord).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            )
            if existing is None:
                continue
            abandoned = existing.state == IN_FLIGHT and existing.created_at <= now - ABANDONED_AFTER
            if existing.expires_at <= now or abandoned:
                session.delete(existing)
                continue
            if existing.fingerprint != request_fingerprint:
                raise IdempotencyKeyReused(details=[{"idempotencyKey": key}])
            if existing.state == IN_FLIGHT:
                raise IdempotencyKeyInUse(details=[{"idempotencyKey": key}])
            return Claim(
                record_id=None,
                replay=StoredResponse(
                    existing.response_status or 200, existing.response_body, existing.response_headers or {}
                ),
            )
    raise IdempotencyKeyInUse(details=[{"idempotencyKey": key}])


def complete(db: Database, record_id: int, response: StoredResponse) -> None:
    with db.transaction() as session:
        session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == record_id)
            .values(
                state=DONE,
                response_status=response.status,
                response_body=response.body,
                response_headers=response.headers,
            )
        )


def release(db: Database, record_id: int) -> None:
    """Forget a claim whose request failed on our side, so the client may retry with the key."""
    with db.transaction() as session:
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
