"""The service's public URLs. Route paths live here, in the API; workers receive the URLs they
hand out (checkout return pages, export downloads) in their job's args, so no route path is
written in ``services`` or ``tasks``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class PublicLinks:
    base_url: str  # PUBLIC_BASE_URL: where browsers and gateways reach the service

    def success_url(self, order_id: str) -> str:
        """Where the gateway sends the customer after paying (it fills in the session id)."""
        return f"{self.base_url}{self.order_path(order_id)}/checkout/complete?session_id={{CHECKOUT_SESSION_ID}}"

    def cancel_url(self, order_id: str) -> str:
        return f"{self.base_url}{self.order_path(order_id)}/checkout/cancelled"

    def export_file_url(self, export_id: str) -> str:
        """The export's download URL before signing (the worker adds ``expires`` and ``signature``)."""
        return f"{self.base_url}/api/exports/{quote(export_id, safe='')}/file"

    @staticmethod
    def order_path(order_id: str) -> str:
        return f"/api/orders/{quote(order_id, safe='')}"
