"""Server-side request forgery: where an endpoint URL may point.

A URL is checked when the endpoint is created and again before every delivery (a name can be
pointed somewhere else later): its host must resolve, and every address it resolves to must be a
public one, never loopback, private, link-local (the cloud metadata address), multicast, reserved
or unspecified, unless the deployment allows private addresses (``WEBHOOK_ALLOW_PRIVATE_URLS``, as
the tests do). Redirects are never followed, so a public receiver cannot bounce a delivery inward.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from services.kernel.errors import ValidationFailed

MAX_URL_LENGTH = 2048


class UnsafeAddress(Exception):
    """The URL's host is not allowed (or does not resolve); the message says why."""


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeAddress(f"the host {host!r} does not resolve ({exc})") from None
    return sorted({str(info[4][0]).split("%", 1)[0] for info in infos})


def check_destination(url: str, *, allow_private: bool) -> list[str]:
    """The addresses of ``url``'s host, or :class:`UnsafeAddress` unless every one may be reached.

    A delivery connects to one of these very addresses (never resolving the name again), so a DNS
    answer changed between the check and the connection cannot point it inward."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve(host, port)
    if not addresses:
        raise UnsafeAddress(f"the host {host!r} does not resolve")
    if allow_private:
        return addresses
    refused = [address for address in addresses if not _is_public(ipaddress.ip_address(address))]
    if refused:
        raise UnsafeAddress(f"the host {host!r} resolves to an address that is not public: {', '.join(refused)}")
    return addresses


def validate_url(url: str, *, allow_private: bool) -> str:
    """The endpoint URL as given, or a 400 VALIDATION_ERROR on ``url`` saying what is wrong."""

    def refuse(message: str) -> ValidationFailed:
        return ValidationFailed("The endpoint URL is not allowed.", details=[{"field": "url", "message": message}])

    if len(url) > MAX_URL_LENGTH:
        raise refuse(f"longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        raise refuse(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refuse("must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise refuse("must not carry credentials")
    if parts.fragment:
        raise refuse("must not have a fragment")
    try:
        check_destination(url, allow_private=allow_private)
    except UnsafeAddress as exc:
        raise refuse(str(exc)) from None
    return url
