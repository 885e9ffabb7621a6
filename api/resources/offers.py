"""``/api/offers/{id}``: upsert (admin/ops) and read."""

from __future__ import annotations

import re

import falcon

from api.deps import Deps
from api.openapi import Reply, operation
from api.render import offer_body
from api.schemas import OfferIn, OfferOut
from api.validation import parse_body
from services.kernel.errors import ValidationFailed
from services.orders.offers import get_offer, upsert_offer

_OFFER_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


def _check_id(offer_id: str) -> None:
    if not _OFFER_ID.match(offer_id):
        raise ValidationFailed(details=[{"field": "id", "message": "1-64 characters of A-Z a-z 0-9 _ . : -"}])


class OfferResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "putOffer",
        tags=["offers"],
        json=OfferIn,
        replies={200: Reply(OfferOut, "The offer as stored.")},
        errors=(403,),
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response, offer_id: str) -> None:
        """Create or replace an offer; ``stock`` sets the available quantity."""
        req.context.principal.require_role("admin", "ops")
        _check_id(offer_id)
        body = parse_body(req, OfferIn)
        offer = upsert_offer(
            self.deps.db,
            offer_id,
            name=body.name,
            price=body.price,
            stock=body.stock,
            currency=self.deps.settings.currency,
        )
        resp.media = offer_body(offer)

    @operation("getOffer", tags=["offers"], replies={200: Reply(OfferOut, "The offer.")}, errors=(404,))
    def on_get(self, req: falcon.Request, resp: falcon.Response, offer_id: str) -> None:
        """An offer with its free and held stock."""
        resp.media = offer_body(get_offer(self.deps.db, offer_id))
