"""``If-Match`` → the order versions it accepts (the entity tags ``api.render.etag`` writes).

Parsed here, at the HTTP edge, because the header is client text of any length: an entity tag
is compared as a string (RFC 9110 §8.8.3), so only plain ASCII digits short enough to be one of
our versions can match. Anything else, e.g. a 5,000-digit tag (``int()`` refuses more than 4,300
digits) or ``"²"`` (``str.isdigit()`` says yes, ``int()`` says no), names no version of ours
and fails the precondition (412) instead of raising.
"""

from __future__ import annotations

import re

# Order versions are 32-bit integers: ten digits at most.
_VERSION_TAG = re.compile(r"[0-9]{1,10}")


def if_match_versions(header: str | None) -> frozenset[int] | None:
    """The versions ``If-Match`` accepts; ``None`` means no precondition (absent or ``*``).

    A tag is ``"3"``, a weak ``W/"3"`` (weak comparison is good enough for a version number) or,
    leniently, a bare ``3``. A header naming no version of ours gives the empty set, which
    fails the precondition.
    """
    if header is None or header.strip() == "*":
        return None
    versions = set()
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if _VERSION_TAG.fullmatch(tag):
            versions.add(int(tag))
    return frozenset(versions)
