"""The allow-list of hosts a submitted URL may reach although they are private, or over
plain http: CHECKPOINT_ALLOWED_HOSTS, for tests, the demo and private deployments."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Allowed:
    """Hosts, IPs and CIDR networks that may be private or use http, each on given ports.

    An entry is "host", "host:port", "host:*", "[v6 address]:port", or a CIDR network
    (a port too, the same way). Without a port an entry allows only 80 and 443: trusting a host
    is not trusting every service on it (a loopback entry would otherwise reach the local
    Redis and PostgreSQL). "host:*" allows every port, for tests and private deployments.
    """

    DEFAULT_PORTS = frozenset({80, 443})

    def __init__(self, entries: Iterable[str] = ()) -> None:
        if isinstance(entries, str):  # a setting read from the environment: "a,b"
            entries = entries.split(",")
        self.names: list[tuple[str, frozenset[int] | None]] = []
        self.networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, frozenset]] = []
        for entry in entries:
            host, ports = self._split(entry.strip().lower())
            if not host:
                continue
            try:
                self.networks.append((ipaddress.ip_network(host, strict=False), ports))
            except ValueError:
                self.names.append((host.rstrip("."), ports))

    @classmethod
    def _split(cls, entry: str) -> tuple[str, frozenset[int] | None]:
        """(host, ports); ports None means any. A bare IPv6 address has colons but no port."""
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            port = rest.removeprefix(":")
        elif entry.count(":") == 1:
            host, _, port = entry.partition(":")
        else:
            host, port = entry, ""
        if not port:
            return host, cls.DEFAULT_PORTS
        if port == "*":
            return host, None
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"allow-list entry {entry!r}: the port must be 1-65535 or *")
        return host, frozenset({int(port)})

    def trusts(self, host: str, ip: IPAddress, port: int) -> bool:
        host = host.rstrip(".")
        return any(
            ports is None or port in ports for name, ports in self.names if name == host
        ) or any(ports is None or port in ports for net, ports in self.networks if ip in net)
