"""Payments: requests (``requests``), running them at the gateway (``execution``), confirming paid
orders (``confirmation``), hosted checkout (``checkout``), signed gateway webhooks (``webhooks``),
reconciliation of outcomes that never arrived (``reconciliation``), the payment window's expiry
(``expiry``), daily settlement (``settlement``) and the gateway adapters (``gateways``)."""
