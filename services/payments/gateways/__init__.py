"""Payment gateway adapters behind one interface (``base.Gateway``): the built-in ``sandbox`` and
``stripe``; ``registry.Gateways`` builds the configured one for each ``paymentGatewayId``."""
