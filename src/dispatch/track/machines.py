"""Machines that fetch on a reader's behalf: image proxies, security gateways, link
scanners. What they do is kept but counted apart from what people do.

Pure: a user agent, an address and two times in, a verdict out. The one place for the
rule; docs/tracking.md ("What is counted") explains it to staff. What the services send,
as publicly reported (checked 2025; refine here when logs show otherwise):

- Apple Mail Privacy Protection loads every remote image when the message reaches the
  device, through iCloud Private Relay's egress (CDN addresses Apple publishes, shared
  with ordinary Safari users of Private Relay, so not listed), with a bare
  "Mozilla/5.0" user agent. Apple Mail without it sends "Mozilla/5.0 (Macintosh; …)
  AppleWebKit/605.1.15 (KHTML, like Gecko)": a reader, left alone.
- Gmail loads images through its proxy: "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko
  Firefox/11.0 (via ggpht.com GoogleImageProxy)", from Google's ranges. It fetches when a
  message is first shown, sometimes on arrival, and serves later opens from its cache: it
  can't tell a reader from a prefetch, so it counts as a machine.
- Yahoo: "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html".
- iOS/macOS mail sync daemons: "iOS/16.5.1 (20F75) dataaccessd/1.0".
- Microsoft Exchange Online / Outlook.com scanners fetch images and follow every link
  on arrival, some with a fixed old-Edge agent ("… Chrome/42.0.2311.135 Safari/537.36
  Edge/12.246 Mozilla/5.0"), some with an ordinary Chrome agent from Exchange Online
  Protection's own ranges (listed below); Safe Links' time-of-click check sends the
  reader's own browser on through a redirect, which counts as the reader.
- Security gateways name themselves ("Barracuda Sentinel (EE)", Mimecast, Proofpoint,
  …), or send a library's agent (python-requests, Java/, okhttp, Go-http-client, …).
- QQ Mail and 163 block remote images until the reader allows them; no fetch on their
  behalf has been seen that would need a rule.

And whatever its agent: a fetch within `[tracking] machine_open_seconds` of the message
being handed over, or before it is even recorded as sent, is a gateway's (no person
opens a message, let alone follows a link in it, that fast).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from functools import lru_cache

_AGENTS = re.compile(
    # image proxies
    r"GoogleImageProxy|ggpht\.com|YahooMailProxy|Mail\.RU_Bot|dataaccessd|"
    # mail security gateways and link scanners
    r"Barracuda|Mimecast|Proofpoint|ppops-|Forcepoint|Symantec|MessageLabs|"
    r"Microsoft Office Protocol Discovery|Microsoft Office Existence Discovery|"
    r"BingPreview|SafeLinks|Edge/12\.246 Mozilla/5\.0|"
    r"TrendMicro|Trend Micro|Sophos|FortiGuard|IronPort|Cisco|McAfee|Cloudmark|"
    r"HubSpot Connect|Amazon CloudFront|cortex/|"
    # crawlers, previews and libraries
    r"bot\b|crawler|spider|scanner|facebookexternal|Snap URL Preview|"
    r"python-requests|python-urllib|aiohttp|httpx|curl/|wget/|Go-http-client|okhttp|"
    r"Java/|Apache-HttpClient|AHC/|lua-resty-http|libwww-perl|node-fetch|axios/|"
    r"HeadlessChrome|PhantomJS",
    re.IGNORECASE,
)

# Networks no reader browses from: the fetchers of the mail services themselves.
_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "17.0.0.0/8",  # Apple's own network (Applebot, Apple's fetchers)
        "66.249.64.0/19",  # Google (image proxy, crawlers)
        "66.102.0.0/20",  # Google
        "74.125.0.0/16",  # Google
        "209.85.128.0/17",  # Google
        "40.92.0.0/15",  # Exchange Online Protection (Safe Links, Safe Attachments)
        "40.107.0.0/16",  # Exchange Online Protection
        "52.100.0.0/14",  # Exchange Online Protection
        "104.47.0.0/17",  # Exchange Online Protection
        "2a01:111:f400::/48",  # Exchange Online Protection
        "2a01:111:f403::/48",  # Exchange Online Protection
    )
)

# Apple Mail Privacy Protection sends exactly this, with no platform or engine after it.
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


def is_machine_event(
    user_agent: str, client_ip: str | None, at: datetime, sent_at: datetime | None,
    machine_seconds: float,
) -> bool:
    """The verdict stored with every event (open, click, web read): a known machine, or
    a fetch within `machine_seconds` of the hand-over, or before it was recorded (the
    worker records "sent" just after the server took the message: a gateway's fetch can
    come in between). `at` and `sent_at` are naive UTC."""
    if sent_at is None or (at - sent_at).total_seconds() < machine_seconds:
        return True
    return is_machine(user_agent, client_ip)
