"""Who is calling: the authenticated API key's role and, for customers, their customer id."""

from __future__ import annotations

from dataclasses import dataclass

from services.kernel.errors import Forbidden

ROLES = ("admin", "ops", "customer")


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: str
    customer_id: str | None = None

    @property
    def is_staff(self) -> bool:
        """Admin and ops act on every customer's orders."""
        return self.role in ("admin", "ops")

    @property
    def actor(self) -> str:
        """How history rows name this caller."""
        return f"{self.role}:{self.customer_id or self.key_id}"

    def can_see_customer(self, customer_id: str | None) -> bool:
        return self.is_staff or (customer_id is not None and customer_id == self.customer_id)

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(details=[{"role": self.role, "allowedRoles": list(roles)}])


SYSTEM = Principal(key_id="system", role="admin")
