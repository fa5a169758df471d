"""Host and port as settings and flags write them."""

from __future__ import annotations

import ipaddress

DEFAULT_HOST = "127.0.0.1"


def split_host_port(text: str) -> tuple[str, int]:
    """'host:port', '[::1]:port' or ':port' (this machine) → (host, port).

    Raises ValueError when there is no numeric port.
    """
    host, _, port = text.strip().rpartition(":")
    if not port.isdigit():
        raise ValueError(f"not host:port: {text!r}")
    return host.strip("[]") or DEFAULT_HOST, int(port)


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
