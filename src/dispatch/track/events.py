"""What the web app tells the track stage: one reader (or machine) action per PageEvent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from dispatch.clock import utcnow
from dispatch.track.deliveries import Delivered

# What an event keeps of the user agent: its first characters (Event.user_agent's width).
USER_AGENT_CHARS = 400

# The kinds of the events table (db.models.EVENT_KINDS).
OPEN, CLICK, WEB_VIEW, ARTICLE_VIEW = "open", "click", "web_view", "article_view"


@dataclass(frozen=True)
class PageEvent:
    """Something done through the web app, for the track stage to record."""

    kind: str  # open (/o/T.gif) | web_view (/w/T) | article_view (/w/T/a/ID) | click (/c/T/N)
    token: str  # normalized (lower case, well formed)
    # The delivery, when the request looked it up already. None for an open: the pixel
    # answers without touching the database, and the recorder looks the token up later.
    delivery: Delivered | None
    article_id: int | None
    n: int | None  # the link number, for clicks
    user_agent: str
    client_ip: str | None
    at: datetime = field(default_factory=utcnow)  # naive UTC

    @property
    def delivery_id(self) -> int | None:
        return self.delivery.delivery_id if self.delivery else None


EventHook = Callable[[PageEvent], None]
