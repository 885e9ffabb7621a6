"""API keys: issue (secret shown once), authenticate by digest, revoke."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import ApiKey, Database
from models.ids import new_id
from models.types import utcnow
from services.kernel.errors import ResourceNotFound, Unauthorized, ValidationFailed
from services.kernel.principal import ROLES, Principal

SECRET_PREFIX = "sk_"


def digest(secret: str) -> str:
    """SHA-256 hex of the secret: keys are 32 random bytes, so a fast hash is sufficient."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    id: str
    key: str
    role: str
    customer_id: str | None


def _check_role(role: str, customer_id: str | None) -> None:
    if role not in ROLES:
        raise ValidationFailed(details=[{"field": "role", "message": f"must be one of {', '.join(ROLES)}"}])
    if role == "customer" and not customer_id:
        raise ValidationFailed(details=[{"field": "customerId", "message": "required for the customer role"}])
    if role != "customer" and customer_id:
        raise ValidationFailed(
            details=[{"field": "customerId", "message": "only customer keys are bound to a customer"}]
        )


def _insert(session: Session, role: str, customer_id: str | None, secret: str) -> IssuedKey:
    key = ApiKey(id=new_id("key"), secret_hash=digest(secret), role=role, customer_id=customer_id)
    session.add(key)
    return IssuedKey(id=key.id, key=secret, role=role, customer_id=customer_id)


def issue_key(db: Database, role: str, customer_id: str | None = None) -> IssuedKey:
    """Create a key with a fresh random secret."""
    _check_role(role, customer_id)
    with db.transaction() as session:
        return _insert(session, role, customer_id, SECRET_PREFIX + secrets.token_urlsafe(32))


def ensure_key(db: Database, secret: str, role: str = "admin") -> bool:
    """Make ``secret`` a valid key of ``role`` (used for ``ADMIN_API_KEY``); True if created."""
    with db.transaction() as session:
        existing = session.scalar(select(ApiKey).where(ApiKey.secret_hash == digest(secret)))
        if existing is not None:
            existing.revoked_at = None
            return False
        _insert(session, role, None, secret)
        return True


def authenticate(db: Database, secret: str | None) -> Principal:
    """The principal for a bearer secret, or :class:`Unauthorized`."""
    if not secret:
        raise Unauthorized()
    with db.reader() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.secret_hash == digest(secret), ApiKey.revoked_at.is_(None)))
    if key is None:
        raise Unauthorized("The API key is unknown or revoked.")
    return Principal(key_id=key.id, role=key.role, customer_id=key.customer_id)


def revoke_key(db: Database, key_id: str) -> None:
    with db.transaction() as session:
        result = session.execute(
            update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
        )
        if result.rowcount == 0:
            raise ResourceNotFound("API key does not exist or is already revoked.")


class KeyCache:
    """Recently authenticated keys of this process: digest → principal, for ``ttl`` seconds.

    Every request carries a key, so looking it up in the database each time costs a round trip
    per request. A key revoked in this process is forgotten at once; one revoked elsewhere (another
    process or host) stops working within ``ttl`` seconds, the bound this cache trades for it.
    Unknown keys are not cached (each refusal asks the database again).
    """

    def __init__(self, ttl: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, db: Database, secret: str | None) -> Principal:
        """Like :func:`authenticate`, from the cache while the entry is fresh."""
        if not secret or self.ttl <= 0:
            return authenticate(db, secret)
        key = digest(secret)
        now = self._clock()
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached[1] > now:
                return cached[0]
        try:
            principal = authenticate(db, secret)
        except Unauthorized:
            with self._lock:
                self._entries.pop(key, None)  # revoked meanwhile: forget the stale entry
            raise
        with self._lock:
            self._entries[key] = (principal, now + self.ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop a key revoked here, so this process refuses it from the next request on."""
        with self._lock:
            for cached_digest in [d for d, (principal, _) in self._entries.items() if principal.key_id == key_id]:
                del self._entries[cached_digest]
