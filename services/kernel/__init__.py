"""The shared kernel: domain errors, exact money, the calling principal, and the order and item
lifecycle tables every status change is checked against. Imports nothing else of ``services``."""
