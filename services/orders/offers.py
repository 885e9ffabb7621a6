"""Offers: upsert (admin/ops) and read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from models import Database, Offer
from models.types import utcnow
from services.kernel.errors import ResourceNotFound
from services.kernel.money import to_money


@dataclass(frozen=True)
class OfferView:
    id: str
    name: str
    price: Decimal
    currency: str
    stock_available: int
    stock_reserved: int
    updated_at: datetime


def _view(offer: Offer) -> OfferView:
    return OfferView(
        id=offer.id,
        name=offer.name,
        price=offer.price,
        currency=offer.currency,
        stock_available=offer.stock_available,
        stock_reserved=offer.stock_reserved,
        updated_at=offer.updated_at,
    )


def upsert_offer(db: Database, offer_id: str, *, name: str, price: Decimal, stock: int, currency: str) -> OfferView:
    """Create or replace an offer; ``stock`` sets the available quantity, holds stay as they are."""
    now = utcnow()
    with db.transaction() as session:
        offer = session.get(Offer, offer_id, with_for_update=True)
        if offer is None:
            offer = Offer(id=offer_id, stock_reserved=0, currency=currency, created_at=now)
            session.add(offer)
        offer.name = name
        offer.price = to_money(price)
        offer.stock_available = stock
        offer.currency = currency
        offer.updated_at = now
        session.flush()
        return _view(offer)


def get_offer(db: Database, offer_id: str) -> OfferView:
    with db.reader() as session:
        offer = session.get(Offer, offer_id)
        if offer is None:
            raise ResourceNotFound("Offer does not exist.", details=[{"offerId": offer_id}])
        return _view(offer)
