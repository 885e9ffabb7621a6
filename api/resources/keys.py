"""``/api/keys``: admins issue and revoke API keys."""

from __future__ import annotations

import falcon

from api.deps import Deps
from api.openapi import LOCATION, Reply, operation
from api.schemas import KeyIn, KeyOut
from api.validation import parse_body
from services.access.keys import issue_key, revoke_key


class KeysResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "createKey",
        tags=["keys"],
        json=KeyIn,
        idempotent=True,
        replies={201: Reply(KeyOut, "Issued.", (LOCATION,))},
        errors=(403,),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Issue a key; the secret is in this response only."""
        req.context.principal.require_role("admin")
        body = parse_body(req, KeyIn)
        issued = issue_key(self.deps.db, body.role, body.customerId)
        resp.status = falcon.HTTP_201
        resp.location = f"/api/keys/{issued.id}"
        resp.media = {"id": issued.id, "key": issued.key, "role": issued.role, "customerId": issued.customer_id}


class KeyResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation("revokeKey", tags=["keys"], replies={204: Reply(description="Revoked.")}, errors=(403, 404))
    def on_delete(self, req: falcon.Request, resp: falcon.Response, key_id: str) -> None:
        """Revoke a key; it stops working at once."""
        req.context.principal.require_role("admin")
        revoke_key(self.deps.db, key_id)
        self.deps.keys.forget(key_id)
        resp.status = falcon.HTTP_204
