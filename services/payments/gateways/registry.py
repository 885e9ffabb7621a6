"""Payment gateway adapters behind one interface (``base.Gateway``), chosen by gateway id.

``settings.gateways`` maps each ``paymentGatewayId`` to an adapter (``sandbox`` or ``stripe``) and
its credentials; :class:`Gateways` builds each adapter on first use, once per process.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from config.settings import Settings
from models import Database
from services.kernel.errors import ValidationFailed
from services.payments.gateways.base import Gateway
from services.payments.gateways.sandbox.books import session_owner
from services.payments.gateways.sandbox.gateway import SandboxGateway
from services.payments.gateways.sandbox.sender import Deliver

ADAPTERS = ("sandbox", "stripe")


def webhook_secret(settings: Settings, gateway_id: str) -> str:
    """The gateway's configured signing secret, or one derived from ``SECRET_KEY`` and its id."""
    configured = settings.gateways.get(gateway_id, {}).get("webhook_secret")
    if configured:
        return configured
    digest = hmac.new(settings.secret_key.encode(), f"webhook:{gateway_id}".encode(), hashlib.sha256).hexdigest()
    return f"whsec_{digest}"


class Gateways:
    """The configured gateways of one process."""

    def __init__(self, settings: Settings, db: Database, *, deliver: Deliver | None = None) -> None:
        self.settings = settings
        self.db = db
        self.deliver = deliver
        self._built: dict[str, Any] = {}

    def ids(self) -> frozenset[str]:
        return frozenset(self.settings.gateways)

    def adapter_name(self, gateway_id: str) -> str:
        return self._config(gateway_id).get("adapter", "sandbox")

    def _config(self, gateway_id: str) -> dict[str, str]:
        config = self.settings.gateways.get(gateway_id)
        if config is None:
            raise ValidationFailed(
                "Unknown payment gateway.",
                details=[{"field": "paymentGatewayId", "gatewayId": gateway_id, "configured": sorted(self.ids())}],
            )
        return config

    def get(self, gateway_id: str) -> Gateway:
        if gateway_id not in self._built:
            self._built[gateway_id] = self._build(gateway_id)
        return self._built[gateway_id]

    def sandbox(self, gateway_id: str) -> SandboxGateway | None:
        """The sandbox adapter behind ``gateway_id``, or None when it is another kind."""
        if gateway_id not in self.settings.gateways or self.adapter_name(gateway_id) != "sandbox":
            return None
        gateway = self.get(gateway_id)
        return gateway if isinstance(gateway, SandboxGateway) else None

    def sandbox_for_session(self, session_id: str) -> SandboxGateway | None:
        """The sandbox gateway that opened checkout session ``session_id``, if any did."""
        gateway_id = session_owner(self.db, session_id)
        return self.sandbox(gateway_id) if gateway_id else None

    def _build(self, gateway_id: str) -> Any:
        config = self._config(gateway_id)
        adapter = config.get("adapter", "sandbox")
        secret = webhook_secret(self.settings, gateway_id)
        tolerance = self.settings.webhook_tolerance_seconds
        if adapter == "sandbox":
            return SandboxGateway(
                gateway_id,
                self.db,
                webhook_secret=secret,
                base_url=self.settings.public_base_url,
                pause_seconds=self.settings.sandbox_pause_seconds,
                tolerance_seconds=tolerance,
                deliver=self.deliver,
            )
        if adapter == "stripe":
            from services.payments.gateways.stripe_gateway import StripeGateway

            return StripeGateway(
                gateway_id,
                api_key=config["api_key"],
                webhook_secret=secret,
                api_base=config.get("api_base"),
                tolerance_seconds=tolerance,
            )
        raise ValueError(f"gateway {gateway_id!r}: unknown adapter {adapter!r} (known: {ADAPTERS})")
