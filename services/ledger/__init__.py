"""An order's money: its payment rows and what they add up to (``book``), and the attempts that
move money (``attempts``: refunds, voids, closing checkouts, payments received by hand). Both the
lifecycle (``services.changes``) and the payment workflow (``services.payments``) build on it."""
