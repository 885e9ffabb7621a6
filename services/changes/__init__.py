"""Changing orders after placement: the one transition function every status change goes through
(``transitions``), item actions (``items``) and bulk cancellation (``bulk_cancel``)."""
