"""Stock movements after placement: each one a conditional UPDATE the database decides.

Placing an order moves stock from *available* to *reserved* (``services.orders._reserve``).
Afterwards an item's stock moves in one of three ways, always one UPDATE per offer, in offer-id
order (a fixed lock order, so concurrent cancellations never deadlock):

- *commit* (payment captured, order → ``processing``): the hold becomes a sale, ``reserved -= q``;
- *release* (cancelled while held): ``available += q, reserved -= q``;
- *restock* (cancelled after the hold was committed): ``available += q``.

Nothing is read into Python and written back; the ``WHERE`` guards keep the counters from going
negative, and a guard that fails means the ledger disagrees with the items, which is a bug.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session

from models import Offer, OrderItem
from models.types import utcnow


class StockLedgerMismatch(RuntimeError):
    """The offer's counters cannot take the movement: items and offers disagree (never expected)."""


def quantities_by_offer(items: Iterable[OrderItem]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for item in items:
        totals[item.offer_id] += item.quantity
    return dict(totals)


def _move(session: Session, quantities: dict[str, int], kind: str) -> None:
    now = utcnow()
    for offer_id in sorted(quantities):
        quantity = quantities[offer_id]
        if quantity <= 0:
            continue
        statement = update(Offer).where(Offer.id == offer_id)
        if kind == "release":
            statement = statement.where(Offer.stock_reserved >= quantity).values(
                stock_available=Offer.stock_available + quantity,
                stock_reserved=Offer.stock_reserved - quantity,
                updated_at=now,
            )
        elif kind == "commit":
            statement = statement.where(Offer.stock_reserved >= quantity).values(
                stock_reserved=Offer.stock_reserved - quantity, updated_at=now
            )
        else:  # restock
            statement = statement.values(stock_available=Offer.stock_available + quantity, updated_at=now)
        result = session.execute(statement.execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise StockLedgerMismatch(f"{kind} of {quantity} on offer {offer_id} refused by its counters")


def release_hold(session: Session, quantities: dict[str, int]) -> None:
    """Give held stock back: ``available += q, reserved -= q``."""
    _move(session, quantities, "release")


def commit_hold(session: Session, quantities: dict[str, int]) -> None:
    """The hold becomes a sale: ``reserved -= q``."""
    _move(session, quantities, "commit")


def restock(session: Session, quantities: dict[str, int]) -> None:
    """Sold stock comes back on sale: ``available += q``."""
    _move(session, quantities, "restock")
