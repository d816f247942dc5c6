"""Offer chosen addresses as ICE host candidates (aioice skips 127.0.0.1 by itself).

aioice gathers host candidates from ``aioice.ice.get_host_addresses``, which leaves out
127.0.0.1; on a loopback-only machine (tests, benchmarks, ``telemed demo``) no candidate
would be left. With ``TELEMED_MEDIA_HOST_ADDRESSES`` set, :func:`install_host_addresses`
makes every peer connection of this process offer exactly those addresses. It also serves
to pin the service to the addresses of one interface in production.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

import aioice.ice

_original: Callable[[bool, bool], list[str]] | None = None
_installed: tuple[str, ...] | None = None


def install_host_addresses(addresses: Sequence[str]) -> None:
    """Make aioice gather host candidates on ``addresses`` only (IPv4 and IPv6 literals)."""
    global _original, _installed
    checked = tuple(str(ipaddress.ip_address(a.strip())) for a in addresses if a.strip())
    if not checked:
        raise ValueError("no host address given")
    if _original is None:
        _original = aioice.ice.get_host_addresses

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            a
            for a in checked
            if (use_ipv4 and ipaddress.ip_address(a).version == 4)
            or (use_ipv6 and ipaddress.ip_address(a).version == 6)
        ]

    aioice.ice.get_host_addresses = get_host_addresses
    _installed = checked


def uninstall() -> None:
    """Give aioice its own host-address discovery back."""
    global _original, _installed
    if _original is not None:
        aioice.ice.get_host_addresses = _original  # type: ignore[assignment]
    _original = None
    _installed = None


def installed() -> tuple[str, ...] | None:
    """The addresses in force, or None when aioice discovers its own."""
    return _installed
