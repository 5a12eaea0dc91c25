"""Entries of ``JQS_WEBHOOK_ALLOWED_NETWORKS``: a network, optionally narrowed to one port.

``10.0.0.5`` or ``10.0.0.0/8`` (every port of those addresses), ``10.0.0.5:8443`` or
``10.0.0.0/8:8443`` (that port only), ``[::1]:8443`` or ``[fd00::/8]:8443`` for IPv6 with a port
(``::1`` and ``fd00::/8`` without one). Allowing a single service should name its port: a bare
address opens every port on that host, redirects included.

Plain standard library, so that the configuration can check entries before Django starts.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_BRACKETED = re.compile(r"\[([^\]]+)\](?::([0-9]{1,5}))?")
_WITH_PORT = re.compile(r"([^:]+):([0-9]{1,5})")  # IPv4 only: IPv6 with a port takes brackets


@dataclass(frozen=True)
class AllowedNetwork:
    """A network webhooks may reach although it is not public, on one port or (None) on all."""

    network: Network
    port: int | None = None

    def admits(self, address: Address, port: int | None) -> bool:
        """Whether a connection to ``address`` on ``port`` is allowed by this entry."""
        if address.version != self.network.version or address not in self.network:
            return False
        return self.port is None or self.port == port


def parse_entry(text: str) -> AllowedNetwork:
    """One entry; raises ValueError saying what is expected."""
    text = text.strip()
    bracketed = _BRACKETED.fullmatch(text)
    with_port = None if bracketed else _WITH_PORT.fullmatch(text)
    match = bracketed or with_port
    network_text, port_text = (match.group(1), match.group(2)) if match else (text, None)
    try:
        network = ipaddress.ip_network(network_text, strict=False)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a CIDR network (expected e.g. 10.0.0.0/8, 10.0.0.5:8443 or [::1]:8443)"
        ) from None
    if with_port and network.version != 4:
        raise ValueError(f"{text!r}: an IPv6 network with a port takes brackets (e.g. [::1]:8443)")
    port = int(port_text) if port_text is not None else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is not from 1 to 65535")
    return AllowedNetwork(network, port)


def parse_entries(entries: Iterable[str]) -> list[AllowedNetwork]:
    return [parse_entry(entry) for entry in entries]
