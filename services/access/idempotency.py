"""Idempotency-Key handling: the first response of a POST is stored and replayed.

A key is claimed with one statement, an ``INSERT … ON CONFLICT DO NOTHING`` of an ``in_flight``
row that commits by itself; the unique constraint on (scope, key) makes the claim atomic across
processes and machines. The same key
with another body is refused; a key whose first request still runs answers "in use".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Insert, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

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


_RECORDS = IdempotencyRecord.__table__


def _claim_statement(dialect: str) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id``: the claim, or nothing when the key is known."""
    dialect_insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return (
        dialect_insert(_RECORDS)
        .values(
            scope=bindparam("scope"),
            key=bindparam("key"),
            fingerprint=bindparam("fingerprint"),
            state=IN_FLIGHT,
            created_at=bindparam("now", type_=_RECORDS.c.created_at.type),
            expires_at=bindparam("expires", type_=_RECORDS.c.expires_at.type),
        )
        .on_conflict_do_nothing(index_elements=[_RECORDS.c.scope, _RECORDS.c.key])
        .returning(_RECORDS.c.id)
    )


_CLAIMS = {dialect: _claim_statement(dialect) for dialect in ("postgresql", "sqlite")}


def claim(db: Database, scope: str, key: str, request_fingerprint: str, ttl: timedelta) -> Claim:
    """Claim ``key`` for this request (one statement when the key is new), or say what to do instead."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(details=[{"field": "Idempotency-Key", "message": f"1 to {MAX_KEY_LENGTH} characters"}])
    now = utcnow()
    params = {"scope": scope, "key": key, "fingerprint": request_fingerprint, "now": now, "expires": now + ttl}
    for _ in range(2):
        with db.autocommit() as conn:
            claimed = conn.execute(_CLAIMS[conn.dialect.name], params).scalar()
        if claimed is not None:
            return Claim(record_id=claimed, replay=None)
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
    with db.autocommit() as conn:
        conn.execute(
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
    with db.autocommit() as conn:
        conn.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
