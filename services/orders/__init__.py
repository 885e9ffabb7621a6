"""Orders and what they are made of: placing an order (``placing``: validation, stock reservation,
the checkout job), offers, stock movements after placement (``stock``), listing with the OData
query language (``listing``, ``query``) and metrics."""
