"""Per-process service objects the tasks share (built lazily, again after a fork)."""

from __future__ import annotations

import os

from services.payments.checkout import CheckoutLinks
from services.payments.gateways import Gateways
from workers import runtime

_gateways: tuple[int, Gateways] | None = None


def gateways() -> Gateways:
    """This process's configured gateways, on this process's database handle."""
    global _gateways
    if _gateways is None or _gateways[0] != os.getpid():
        _gateways = (os.getpid(), Gateways(runtime.settings(), runtime.database()))
    return _gateways[1]


def checkout_links() -> CheckoutLinks:
    return CheckoutLinks(runtime.settings().public_base_url)
