"""Where a webhook may point: public addresses, and the networks an admin allows.

A member's webhook URL is posted to by the API itself, so without a guard it could reach what
only the API can (a cloud metadata service at 169.254.169.254, Redis or PostgreSQL on
loopback, the office network). Every address the host name resolves to must be global, or
inside ``FITBOARD_WEBHOOK_ALLOWED_NETWORKS``; it is checked when the URL is saved (literal
addresses, and names that resolve then) and again before every POST (DNS may change).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(ValueError):
    """The URL's host is (or resolves to) an address a webhook may not reach."""


def check_address(address: Address, allowed: Iterable[Network]) -> None:
    """Refused unless ``address`` is global or inside an allowed network."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    if any(address in network for network in allowed):
        return
    if not address.is_global or address.is_multicast:
        raise Refused(
            f"{address} is a private, loopback, link-local or reserved address; an admin "
            "can allow its network with FITBOARD_WEBHOOK_ALLOWED_NETWORKS"
        )


def check_url(url: str, allowed: Iterable[Network], *, must_resolve: bool) -> None:
    """Check every address the URL's host names. A host that does not resolve is Refused
    when ``must_resolve`` (before a POST), and let through when saving (it may resolve later;
    each POST checks again)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    allowed = list(allowed)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(literal, allowed)
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        if must_resolve:
            raise Refused(f"{host} does not resolve: {exc}") from exc
        return
    for info in infos:
        check_address(ipaddress.ip_address(str(info[4][0]).split("%")[0]), allowed)
