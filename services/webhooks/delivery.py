"""One delivery attempt: claim it, POST the signed event, record the outcome.

- **One in flight per endpoint.** The claim moves the endpoint's ``available_at`` forward by a
  lease (a conditional UPDATE: one claimer wins). A receiver that hangs holds one worker slot for
  at most the timeout, never every slot, so other endpoints' deliveries go on. A worker killed
  mid-attempt leaves the delivery pending; once the lease passes the sweep starts it again.
- **In commit order per order.** A delivery waits while an earlier delivery of the same order to
  the same endpoint is still pending (backing off), and goes right after it.
- **Retries.** A failure waits ``base * 2**(n-1)`` (capped) times a random 0.5-1.0, the endpoint
  backs off with it when the receiver is down (timeout, refused connection, 5xx, 429); past the
  retry window the delivery fails for good and the endpoint is marked ``failing`` (a later success
  enables it again). Every attempt of one event to one endpoint carries the same ``Webhook-Id``
  (the event's id), so receivers can drop duplicates.
- The HTTP call happens outside any transaction, with a short timeout, without following
  redirects, to an address the URL's host resolved to and that was checked just before (``addresses``).
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from models import Database, Event, WebhookDelivery, WebhookEndpoint
from models.types import utcnow
from services.events.record import iso_z
from services.webhooks.addresses import UnsafeAddress, check_destination
from services.webhooks.endpoints import ACTIVE, DELETED, ENABLED, FAILED, FAILING, PENDING, SUCCEEDED

USER_AGENT = "orders-service-webhooks/1"
# Statuses that mean "the receiver is down or overloaded": the whole endpoint backs off.
_BACK_OFF_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_seconds: float
    backoff_base_seconds: float
    backoff_max_seconds: float
    retry_window: timedelta
    allow_private: bool

    @property
    def lease(self) -> timedelta:
        """How long a claim holds its endpoint: a connect and a read timeout, and a margin."""
        return timedelta(seconds=2 * self.timeout_seconds + 10)

    @classmethod
    def from_settings(cls, settings: Any) -> DeliveryPolicy:
        return cls(
            timeout_seconds=settings.webhook_timeout_seconds,
            backoff_base_seconds=settings.webhook_backoff_base_seconds,
            backoff_max_seconds=settings.webhook_backoff_max_seconds,
            retry_window=timedelta(seconds=settings.webhook_retry_window_seconds),
            allow_private=settings.webhook_allow_private_urls,
        )

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones (exponential, jittered)."""
        ceiling = min(self.backoff_base_seconds * 2 ** max(attempts - 1, 0), self.backoff_max_seconds)
        return ceiling * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Attempt:
    delivery_id: str
    endpoint_id: str
    url: str
    secret: str
    webhook_id: str
    body: str
    attempt: int


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: dict[str, Any] | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def receiver_down(self) -> bool:
        return self.status_code is None or self.status_code in _BACK_OFF_STATUSES


def event_body(event_id: str, event_type: str, created_at: datetime, data: str) -> str:
    """The POSTed JSON: ``{"id", "type", "timestamp", "data"}`` (``data`` as it was written)."""
    head = json.dumps({"id": event_id, "type": event_type, "timestamp": iso_z(created_at)}, separators=(",", ":"))
    return head[:-1] + ',"data":' + data + "}"


# Why :func:`start_delivery` did not start an attempt.
NOT_PENDING, NOT_DUE, WAITING, BUSY = "not_pending", "not_due", "waiting", "busy"


@dataclass(frozen=True)
class Skipped:
    reason: str
    endpoint_id: str | None = None


def start_delivery(db: Database, delivery_id: str, policy: DeliveryPolicy) -> Attempt | Skipped:
    """Claim the delivery and its endpoint for one attempt, or say why not: finished
    (``NOT_PENDING``), not due yet, ``WAITING`` for an earlier delivery of its order, or its
    endpoint is ``BUSY`` (a delivery in flight, or backing off)."""
    now = utcnow()
    with db.transaction() as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.state != PENDING:
            return Skipped(NOT_PENDING)
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            return Skipped(NOT_DUE)
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        assert endpoint is not None
        if endpoint.status == DELETED:
            delivery.state, delivery.next_attempt_at, delivery.updated_at = FAILED, None, now
            return Skipped(NOT_PENDING)
        if delivery.order_id is not None:
            earlier = session.execute(
                select(WebhookDelivery.next_attempt_at)
                .where(
                    WebhookDelivery.endpoint_id == delivery.endpoint_id,
                    WebhookDelivery.order_id == delivery.order_id,
                    WebhookDelivery.state == PENDING,
                    WebhookDelivery.position < delivery.position,
                )
                .order_by(WebhookDelivery.position)
                .limit(1)
            ).first()
            if earlier is not None:
                # Not before the earlier one: due again when that one is (and started right after
                # it succeeds).
                if earlier[0] is not None and earlier[0] > now:
                    delivery.next_attempt_at = earlier[0]
                return Skipped(WAITING, endpoint.id)
        claimed = session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint.id, WebhookEndpoint.available_at <= now)
            .values(available_at=now + policy.lease)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            return Skipped(BUSY, endpoint.id)
        event = session.get(Event, delivery.event_seq)
        assert event is not None
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.updated_at = now
        return Attempt(
            delivery.id,
            endpoint.id,
            endpoint.url,
            endpoint.secret,
            delivery.event_id,
            event_body(event.id, event.type, event.created_at, event.data),
            delivery.attempts,
        )


# Connection pools per (scheme, address, port, host), per process (kept-alive connections to
# receivers; rebuilt after a fork). Connecting to the checked address, with the URL's host as the
# TLS server name and certificate host, pins the connection to what was checked.
_POOLS: tuple[int, dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool]] | None = None
_MAX_POOLS = 256
_MAX_BODY = 64 * 1024


def _pool(scheme: str, address: str, port: int, host: str, timeout: float) -> urllib3.HTTPConnectionPool:
    global _POOLS
    if _POOLS is None or _POOLS[0] != os.getpid():
        _POOLS = (os.getpid(), {})
    pools = _POOLS[1]
    key = (scheme, address, port, host)
    pool = pools.get(key)
    if pool is None:
        if len(pools) >= _MAX_POOLS:
            for old in pools.values():
                old.close()
            pools.clear()
        limits = urllib3.Timeout(connect=timeout, read=timeout)
        if scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                address,
                port,
                timeout=limits,
                retries=False,
                maxsize=1,
                server_hostname=host,
                assert_hostname=host,
                cert_reqs="CERT_REQUIRED",
                ca_certs=requests.certs.where(),
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, port, timeout=limits, retries=False, maxsize=1)
        pools[key] = pool
    return pool


def signed_headers(attempt: Attempt, when: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``."""
    when = when or datetime.now(UTC)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": attempt.webhook_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(attempt.secret).sign(attempt.webhook_id, when, attempt.body),
    }


def send(attempt: Attempt, policy: DeliveryPolicy) -> Outcome:
    """POST the event once; never raises (every failure is an outcome)."""
    started = time.perf_counter()

    def took() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        addresses = check_destination(attempt.url, allow_private=policy.allow_private)
    except UnsafeAddress as exc:
        return Outcome(None, {"code": "UNSAFE_ADDRESS", "message": str(exc)}, took())
    parts = urlsplit(attempt.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = signed_headers(attempt)
    headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
    try:
        pool = _pool(parts.scheme, addresses[0], port, host, policy.timeout_seconds)
        response = pool.urlopen(
            "POST",
            target,
            body=attempt.body.encode(),
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        status = response.status
        response.read(_MAX_BODY, decode_content=False)  # the answer's body is not used: a bounded read
        if response.length_remaining == 0:
            response.release_conn()  # read whole: the connection is kept for the next delivery
        else:
            response.close()
    except urllib3.exceptions.TimeoutError as exc:
        return Outcome(None, {"code": "TIMEOUT", "message": str(exc)[:500]}, took())
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return Outcome(None, {"code": "CONNECTION_ERROR", "message": str(exc)[:500]}, took())
    if 200 <= status < 300:
        return Outcome(status, None, took())
    message = f"the receiver answered {status}"
    if 300 <= status < 400:
        message += " (redirects are not followed)"
    return Outcome(status, {"code": "HTTP_STATUS", "message": message}, took())


@dataclass(frozen=True)
class Finished:
    succeeded: bool
    retry_in: float | None  # seconds until the next attempt, None when there is none
    endpoint_free: bool  # the endpoint may take its next delivery now


def finish_delivery(db: Database, attempt: Attempt, outcome: Outcome, policy: DeliveryPolicy) -> Finished:
    now = utcnow()
    with db.transaction() as session:
        delivery = session.get(WebhookDelivery, attempt.delivery_id, with_for_update=True)
        endpoint = session.get(WebhookEndpoint, attempt.endpoint_id, with_for_update=True)
        assert delivery is not None and endpoint is not None
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        delivery.last_duration_ms = outcome.duration_ms
        delivery.updated_at = now
        if delivery.state != PENDING:  # deleted meanwhile: keep its final state
            endpoint.available_at = now
            return Finished(False, None, True)
        if outcome.ok:
            delivery.state, delivery.next_attempt_at = SUCCEEDED, None
            endpoint.available_at = now
            if endpoint.status == FAILING:
                endpoint.status = ENABLED
            return Finished(True, None, True)
        delay = policy.backoff(delivery.attempts)
        retry_at = now + timedelta(seconds=delay)
        if retry_at > delivery.give_up_at:
            delivery.state, delivery.next_attempt_at = FAILED, None
            endpoint.available_at = now
            if endpoint.status in ACTIVE:
                endpoint.status = FAILING
            return Finished(False, None, True)
        delivery.next_attempt_at = retry_at
        endpoint.available_at = retry_at if outcome.receiver_down else now
        return Finished(False, delay, not outcome.receiver_down)


def next_due(db: Database, endpoint_id: str) -> str | None:
    """The endpoint's earliest due delivery (started when the one before it finished)."""
    with db.reader() as session:
        return session.scalar(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.state == PENDING,
                WebhookDelivery.next_attempt_at <= utcnow(),
            )
            .order_by(WebhookDelivery.position)
            .limit(1)
        )
