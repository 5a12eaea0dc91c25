"""The webhook's SSRF check: whether an address is a public destination, or one the allowlist admits.

A webhook's URL comes from whoever submits jobs, so every address its host resolves to is judged here
before :mod:`jobs.processors.webhook` connects to it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from zipline_site.allowlist import parse_entries

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, Teredo), which is where it leads."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _kind(address: IPAddress) -> str | None:
    """The reason ``address`` is not a public destination, as "a loopback" etc., or None if it is one."""
    if address.is_unspecified:
        return "an unspecified"
    if address.is_loopback:
        return "a loopback"
    if address.is_link_local:
        return "a link-local"
    if address.is_multicast:
        return "a multicast"
    if address.is_private:
        return "a private"
    if address.is_reserved:
        return "a reserved"
    if not address.is_global:
        return "a non-global"
    return None


def refusal_reason(
    address: str | IPAddress, allowed_networks: Iterable[str] = (), port: int | None = None
) -> str | None:
    """Why a webhook may not connect to ``address`` on ``port`` (``"10.0.0.1 is a private address"``), or None.

    An address inside one of ``allowed_networks`` (entries of :mod:`zipline_site.allowlist`: a network,
    or a network and a port) is always allowed, on the entry's port if it names one. An IPv4-mapped
    IPv6 address (``::ffff:127.0.0.1``) is judged as the IPv4 address it stands for; an IPv6 address
    that embeds an IPv4 one otherwise (NAT64, 6to4, Teredo) must pass both checks.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    embedded = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    for entry in parse_entries(allowed_networks):
        if any(candidate is not None and entry.admits(candidate, port) for candidate in (ip, embedded)):
            return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        kind = _kind(ip.ipv4_mapped)
        return f"::ffff:{ip.ipv4_mapped} is {kind} address (IPv4-mapped {ip.ipv4_mapped})" if kind else None
    if embedded is not None and (kind := _kind(embedded)):
        return f"{ip} is {kind} address (it embeds {embedded})"
    kind = _kind(ip)
    return f"{ip} is {kind} address" if kind else None
