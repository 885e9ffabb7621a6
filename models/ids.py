"""Opaque, prefixed, time-sortable identifiers (``ord_…``, ``task_…``).

The body is a ULID: 48 bits of milliseconds then 80 random bits in Crockford base32, so ids sort
by creation time (good index locality, stable keyset paging) and cannot be guessed.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id such as ``ord_01JX3…`` (26-character ULID body)."""
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_encode(millis, 10)}{_encode(secrets.randbits(80), 16)}"
