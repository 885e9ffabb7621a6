"""Bearer API keys: resources are private unless they declare ``public = True``."""

from __future__ import annotations

from typing import Any

import falcon

from models import Database
from services.access.keys import KeyCache


def bearer_secret(req: falcon.Request) -> str | None:
    header = req.get_header("Authorization")
    if not header:
        return None
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


class AuthMiddleware:
    def __init__(self, db: Database, keys: KeyCache) -> None:
        self.db = db
        self.keys = keys

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        req.context.principal = None
        if resource is None or getattr(resource, "public", False) or req.method == "OPTIONS":
            return
        req.context.principal = self.keys.authenticate(self.db, bearer_secret(req))
