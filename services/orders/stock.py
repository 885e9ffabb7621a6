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

from sqlalchemy import bindparam, update
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


_OFFERS = Offer.__table__
_WHERE = _OFFERS.c.id == bindparam("offer_id")
_HELD_ENOUGH = _OFFERS.c.stock_reserved >= bindparam("quantity")
_NOW = bindparam("now", type_=_OFFERS.c.updated_at.type)
# Built once (Core, bound parameters); one runs per offer of every cancelled order.
_MOVES = {
    "release": update(_OFFERS)
    .where(_WHERE, _HELD_ENOUGH)
    .values(
        stock_available=_OFFERS.c.stock_available + bindparam("quantity"),
        stock_reserved=_OFFERS.c.stock_reserved - bindparam("quantity"),
        updated_at=_NOW,
    ),
    "commit": update(_OFFERS)
    .where(_WHERE, _HELD_ENOUGH)
    .values(stock_reserved=_OFFERS.c.stock_reserved - bindparam("quantity"), updated_at=_NOW),
    "restock": update(_OFFERS)
    .where(_WHERE)
    .values(stock_available=_OFFERS.c.stock_available + bindparam("quantity"), updated_at=_NOW),
}


def _move(session: Session, quantities: dict[str, int], kind: str) -> None:
    now = utcnow()
    connection = session.connection()
    for offer_id in sorted(quantities):
        quantity = quantities[offer_id]
        if quantity <= 0:
            continue
        result = connection.execute(_MOVES[kind], {"offer_id": offer_id, "quantity": quantity, "now": now})
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
