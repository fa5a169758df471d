"""Every URL and address a delivery's token appears in, and the URLs of an issue's
pages that need no delivery (`IssueLinks`): the one place for their form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

# A reader's vote on an article, as its URL writes it (and as Feedback.kind stores it).
VOTES = ("useful", "not_useful")
# The query parameter a vote link on the web pages carries (?from=web): the vote came
# from there, not from the message itself.
FROM_PARAM = "from"
FROM_WEB = "web"


@dataclass(frozen=True)
class Links:
    """Links of one delivery (token), or of a variant when token is the slot marker."""

    base_url: str
    reply_domain: str
    token: str
    # Pages show the per-delivery parts (votes, 调整关注, 退订) only for personal links.
    personal: ClassVar[bool] = True

    def _url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def click(self, n: int) -> str:
        """The issue's n-th link (ArticleView.n); the web app redirects it to that article."""
        return self._url(f"/c/{self.token}/{n}")

    def web_view(self, page: int = 1) -> str:
        """The issue on the web; `page` of a large one (dispatch.web.pages pages it)."""
        return self._url(f"/w/{self.token}" + (f"?page={page}" if page > 1 else ""))

    def article(self, article_id: int) -> str:
        return self._url(f"/w/{self.token}/a/{article_id}")

    def vote(self, article_id: int, value: str, *, web: bool = False) -> str:
        """有用 / 没用 under an article: `value` one of VOTES; `web` for the web pages'."""
        if value not in VOTES:
            raise ValueError(f"not a vote: {value!r}")
        return self._url(f"/f/{self.token}/{article_id}/{value}") + (f"?{FROM_PARAM}={FROM_WEB}" if web else "")

    def pixel(self) -> str:
        return self._url(f"/o/{self.token}.gif")

    def preferences(self) -> str:
        return self._url(f"/p/{self.token}")

    def unsubscribe(self) -> str:
        return self._url(f"/u/{self.token}")

    @property
    def reply_to(self) -> str:
        return f"feedback+{self.token}@{self.reply_domain}"

    @property
    def envelope_sender(self) -> str:
        return f"bounces+{self.token}@{self.reply_domain}"

    @property
    def unsubscribe_mailto(self) -> str:
        return f"mailto:unsubscribe+{self.token}@{self.reply_domain}"

    @property
    def message_id(self) -> str:
        # Derived from the delivery, so a re-send carries the same id; 32 + domain
        # keeps it under ~65 characters, where headers would start to fold.
        return f"<{self.token}@{self.reply_domain}>"


@dataclass(frozen=True)
class IssueLinks:
    """The issue's own pages, for messages without personal links (`[wecom]
    personal_links = false`): the same for every reader, so no delivery behind them and
    nothing of a reader's (votes, 调整关注, 退订) on them. `key` is the issue's
    unguessable `web_key`; an article is linked directly, with no click redirect."""

    base_url: str
    key: str
    personal: ClassVar[bool] = False

    def _url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def web_view(self, page: int = 1) -> str:
        return self._url(f"/i/{self.key}" + (f"?page={page}" if page > 1 else ""))

    def article(self, article_id: int) -> str:
        return self._url(f"/i/{self.key}/a/{article_id}")
