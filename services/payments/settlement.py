"""Settlement: once a day, each gateway's captures and refunds are compared with our payments.

For one UTC day and one gateway the job reads both sides — the gateway's ledger
(:meth:`Gateway.settlement_entries`) and the ``payments`` rows that succeeded (captures: actions
``process``, ``capture`` and ``checkout``, keyed by the gateway's charge id; refunds, keyed by the
gateway's refund id) — and stores one report per (day, gateway):

- ``matched``: entries on both sides with the same amount;
- ``missingInGateway``: our successful payments the gateway has no record of;
- ``missingInDb``: money the gateway moved that no payment of ours records as succeeded
  (e.g. a capture whose webhook was lost and not reconciled yet);
- ``amountMismatches``: the same entry with different amounts;
- ``manual``: payments staff recorded as received (or refunded) outside the gateway (method
  ``manual``, no gateway transaction): the gateway cannot know of them, so they are neither
  matched nor missing, only counted and summed on their own.

An entry is looked for on the other side within a margin around the day (``MARGIN``), so a capture
booked at the gateway at 23:59:59 and confirmed here just after midnight is not reported missing.
Settling a day again replaces its report (the job is idempotent). Only reads and one upsert per
gateway: safe beside live traffic. Gateways whose adapter cannot list its ledger are skipped with
their reason (the stripe adapter, today).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import Database, Payment, ReconciliationReport
from models.ids import new_id
from models.types import utcnow
from services.kernel.money import to_money
from services.kernel.principal import Principal
from services.ledger.book import CAPTURING_ACTIONS, MANUAL, REFUND, SUCCEEDED
from services.payments.gateways.base import GatewayError, LedgerEntry, SettlementUnsupported
from services.payments.gateways.registry import Gateways

MARGIN = timedelta(hours=1)
CAPTURE, REFUND_KIND = "capture", "refund"
REPORT_ROLES = ("admin", "ops")

Key = tuple[str, str]  # (kind, gateway id of the entry)


@dataclass(frozen=True)
class ReportView:
    id: str
    date: date
    gateway_id: str
    matched_count: int
    missing_in_gateway: list[dict[str, Any]]
    missing_in_db: list[dict[str, Any]]
    amount_mismatches: list[dict[str, Any]]
    manual: dict[str, Any]  # {"count", "total", "refundCount", "refundTotal"}; amounts as strings
    created_at: datetime


@dataclass
class SettlementRun:
    day: date
    reports: list[ReportView] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "reports": {
                r.gateway_id: {
                    "matched": r.matched_count,
                    "missingInGateway": len(r.missing_in_gateway),
                    "missingInDb": len(r.missing_in_db),
                    "amountMismatches": len(r.amount_mismatches),
                    "manual": r.manual["count"] + r.manual["refundCount"],
                }
                for r in self.reports
            },
            "skipped": self.skipped,
        }


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _totals(entries: list[tuple[Key, Decimal]]) -> dict[Key, Decimal]:
    totals: dict[Key, Decimal] = {}
    for key, amount in entries:
        totals[key] = to_money(totals.get(key, Decimal(0)) + amount)
    return totals


def _gateway_side(entries: list[LedgerEntry]) -> dict[Key, Decimal]:
    return _totals([((entry.kind, entry.id), entry.amount) for entry in entries])


def _db_side(db: Database, gateway_id: str, start: datetime, end: datetime) -> dict[Key, Decimal]:
    with db.reader() as session:
        rows = session.execute(
            select(Payment.action, Payment.gateway_transaction_id, Payment.amount).where(
                Payment.gateway_id == gateway_id,
                Payment.state == SUCCEEDED,
                Payment.action.in_((*CAPTURING_ACTIONS, REFUND)),
                Payment.gateway_transaction_id.is_not(None),
                Payment.updated_at >= start,
                Payment.updated_at < end,
            )
        ).all()
    return _totals(
        [((REFUND_KIND if row.action == REFUND else CAPTURE, row.gateway_transaction_id), row.amount) for row in rows]
    )


def _manual_side(db: Database, gateway_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Count and sum of the day's payments recorded outside the gateway, captures and refunds apart.

    A manual capture has action ``manual``; the refund of one has method ``manual``. Neither has a
    gateway transaction id, which is why :func:`_db_side` never compares them."""
    with db.reader() as session:
        rows = session.execute(
            select(Payment.action, Payment.amount).where(
                Payment.gateway_id == gateway_id,
                Payment.state == SUCCEEDED,
                Payment.method == MANUAL,
                Payment.gateway_transaction_id.is_(None),
                Payment.updated_at >= start,
                Payment.updated_at < end,
            )
        ).all()
    captures = [row.amount for row in rows if row.action == MANUAL]
    refunds = [row.amount for row in rows if row.action == REFUND]
    return {
        "count": len(captures),
        "total": str(to_money(sum(captures, Decimal(0)))),
        "refundCount": len(refunds),
        "refundTotal": str(to_money(sum(refunds, Decimal(0)))),
    }


def _entry(key: Key, amount: Decimal) -> dict[str, Any]:
    return {"id": key[1], "kind": key[0], "amount": str(amount)}


def compare(
    gateway_day: dict[Key, Decimal],
    gateway_wide: dict[Key, Decimal],
    db_day: dict[Key, Decimal],
    db_wide: dict[Key, Decimal],
) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(matched, missing in gateway, missing in db, amount mismatches) for the day's entries of
    either side, each looked for on the other side within the widened window."""
    matched, missing_in_gateway, missing_in_db, mismatches = 0, [], [], []
    for key in sorted(set(gateway_day) | set(db_day)):
        gateway_amount = gateway_day.get(key, gateway_wide.get(key))
        db_amount = db_day.get(key, db_wide.get(key))
        if gateway_amount is None:
            missing_in_gateway.append(_entry(key, db_amount))  # type: ignore[arg-type]
        elif db_amount is None:
            missing_in_db.append(_entry(key, gateway_amount))
        elif gateway_amount != db_amount:
            mismatches.append(
                {"id": key[1], "kind": key[0], "gatewayAmount": str(gateway_amount), "dbAmount": str(db_amount)}
            )
        else:
            matched += 1
    return matched, missing_in_gateway, missing_in_db, mismatches


_NO_MANUAL = {"count": 0, "total": "0.00", "refundCount": 0, "refundTotal": "0.00"}


def _view(row: ReconciliationReport) -> ReportView:
    return ReportView(
        row.id,
        row.date,
        row.gateway_id,
        row.matched_count,
        list(row.missing_in_gateway),
        list(row.missing_in_db),
        list(row.amount_mismatches),
        dict(row.manual or _NO_MANUAL),
        row.created_at,
    )


def _store(
    db: Database, day: date, gateway_id: str, found: tuple[int, list, list, list], manual: dict[str, Any]
) -> ReportView:
    matched, missing_in_gateway, missing_in_db, mismatches = found
    for attempt in (1, 2):
        try:
            with db.transaction() as session:
                row = session.scalar(
                    select(ReconciliationReport)
                    .where(ReconciliationReport.date == day, ReconciliationReport.gateway_id == gateway_id)
                    .with_for_update()
                )
                if row is None:
                    row = ReconciliationReport(id=new_id("rec"), date=day, gateway_id=gateway_id)
                    session.add(row)
                row.matched_count = matched
                row.missing_in_gateway = missing_in_gateway
                row.missing_in_db = missing_in_db
                row.amount_mismatches = mismatches
                row.manual = manual
                row.created_at = utcnow()
                session.flush()
                return _view(row)
        except IntegrityError:
            if attempt == 2:  # a concurrent run inserted the day's row first: update it instead
                raise
    raise AssertionError("unreachable")


def settle_day(db: Database, gateways: Gateways, day: date) -> SettlementRun:
    """Compare every configured gateway's ledger of ``day`` with the payments table."""
    start, end = day_bounds(day)
    run = SettlementRun(day)
    for gateway_id in sorted(gateways.ids()):
        gateway = gateways.get(gateway_id)
        try:
            gateway_wide = _gateway_side(gateway.settlement_entries(start - MARGIN, end + MARGIN))
            gateway_day = _gateway_side(gateway.settlement_entries(start, end))
        except SettlementUnsupported as exc:
            run.skipped[gateway_id] = str(exc)
            continue
        except GatewayError as exc:  # unavailable now: the next run settles the day again
            run.skipped[gateway_id] = f"gateway did not answer: {exc!r}"
            continue
        db_wide = _db_side(db, gateway_id, start - MARGIN, end + MARGIN)
        db_day = _db_side(db, gateway_id, start, end)
        found = compare(gateway_day, gateway_wide, db_day, db_wide)
        run.reports.append(_store(db, day, gateway_id, found, _manual_side(db, gateway_id, start, end)))
    return run


def previous_day(now: datetime | None = None) -> date:
    """The last complete UTC day: what the daily job settles."""
    return (now or utcnow()).astimezone(UTC).date() - timedelta(days=1)


def list_reports(
    db: Database, principal: Principal, *, day: date | None = None, gateway_id: str | None = None, limit: int = 100
) -> list[ReportView]:
    """Reports, newest day first (staff only)."""
    principal.require_role(*REPORT_ROLES)
    query = select(ReconciliationReport)
    if day is not None:
        query = query.where(ReconciliationReport.date == day)
    if gateway_id is not None:
        query = query.where(ReconciliationReport.gateway_id == gateway_id)
    query = query.order_by(ReconciliationReport.date.desc(), ReconciliationReport.gateway_id).limit(limit)
    with db.reader() as session:
        return [_view(row) for row in session.scalars(query)]
