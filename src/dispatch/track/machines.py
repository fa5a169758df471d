"""Machines that fetch on a reader's behalf: image proxies, security gateways, link
scanners. What they do is kept but counted apart from what people do.

Pure: a user agent and an address in, a verdict out. The lists are what these services
publish or are widely seen to send; refine them here, in one place.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

# Image proxies fetch every image when the message arrives or is first shown (Gmail's
# GoogleImageProxy, Apple Mail Privacy Protection, Yahoo), and security gateways and link
# scanners follow every link before the reader sees it.
_AGENTS = re.compile(
    r"GoogleImageProxy|ggpht\.com|YahooMailProxy|Mail\.RU_Bot|"
    r"Barracuda|Mimecast|Proofpoint|ppops-|Forcepoint|Symantec|MessageLabs|"
    r"Microsoft Office Protocol Discovery|BingPreview|SafeLinks|"
    r"TrendMicro|Sophos|FortiGuard|Cisco|IronPort|"
    r"bot\b|crawler|spider|scanner|python-requests|curl/|wget/|Go-http-client|okhttp|"
    r"HeadlessChrome|PhantomJS",
    re.IGNORECASE,
)

# Apple Mail Privacy Protection fetches from Apple's relay ranges with a bare
# "Mozilla/5.0" agent; Gmail's proxy and QQ Mail's image servers from their own ranges.
_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "17.0.0.0/8",        # Apple (Mail Privacy Protection relays)
        "66.249.64.0/19",    # Google (image proxy, scanners)
        "66.102.0.0/20",     # Google
        "74.125.0.0/16",     # Google
        "209.85.128.0/17",   # Google
    )
)

# Apple's proxy sends exactly this, with no platform or engine after it.
_BARE_MOZILLA = "Mozilla/5.0"


@lru_cache(maxsize=4096)
def is_machine(user_agent: str, client_ip: str | None) -> bool:
    """True for a fetch by a known proxy or scanner, whatever the timing."""
    agent = user_agent.strip()
    if not agent or agent == _BARE_MOZILLA or _AGENTS.search(agent):
        return True
    if client_ip:
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        return any(address in network for network in _NETWORKS)
    return False
