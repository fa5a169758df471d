"""What every form of the reader pages shares: reading a small body, and telling a post
from another site. The signed value (dispatch.track.signing) is what proves a form is
ours; these checks refuse what a browser itself says came from elsewhere."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.requests import Request


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is longer than `limit` (never read whole)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return body


def origin_of(url: str) -> str:
    """scheme://host[:port] as a browser's Origin header writes it (no default port)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{scheme}://{host}{port}"


def cross_site(headers: Mapping[str, str], base_url: str) -> bool:
    """Whether a post says it came from another site.

    - Sec-Fetch-Site, when sent, must be same-origin (or none: typed, bookmarked).
    - No Origin at all (an old client, not a browser) is left to the signed value.
    - `Origin: null` (a no-referrer page, a sandboxed frame) passes only when the browser
      vouches with Sec-Fetch-Site: same-origin.
    - Any other Origin must be the configured base URL's or the host asked for.
    """
    fetch_site = headers.get("sec-fetch-site", "").lower()
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    origin = origin.strip().lower()
    if origin == "null":
        return fetch_site != "same-origin"
    try:
        sent = origin_of(origin)
        netloc = urlsplit(origin).netloc
    except ValueError:  # "http://x:port", "http://[::1": not an origin a browser sends
        return True
    if not netloc:
        return True
    return sent != origin_of(base_url) and netloc != headers.get("host", "").lower()
