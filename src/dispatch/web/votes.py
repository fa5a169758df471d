"""有用 / 没用 under each article: the one-click links and the page behind them.

    GET  /f/{token}/{article_id}/{value}   a reader's click: records the vote (a second
                                           click changes it, never adds one), thanks them
                                           and offers a comment box
    HEAD, or a GET by a machine            link scanners and mail gateways follow every
         (track.machines.is_machine)       link: nothing recorded, a page whose 确认
                                           button posts the vote instead
    POST /f/{token}/{article_id}/{value}   that button (vote=1) and/or the comment box
                                           (comment=…), with a signed form value
                                           (track.signing, purpose "vote"), same-origin only

`value` is one of track.links.VOTES. `?from=web` (Links.vote(…, web=True)): the click came
from the web pages, stored as channel "web"; otherwise the delivery's own channel. An
unknown token, an article not in the token's issue (or the editor's note) or an unknown
value is the app's 404 page. Nothing here writes anything but Feedback rows.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from jinja2 import Environment
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from dispatch.clock import utcnow
from dispatch.db.models import Article, Delivery, Feedback, Section
from dispatch.db.session import transaction
from dispatch.feedback.votes import Vote, set_vote
from dispatch.masthead import BULLETIN
from dispatch.runtime import Runtime
from dispatch.track.links import FROM_PARAM, FROM_WEB, VOTES, Links
from dispatch.track.machines import is_machine
from dispatch.track.signing import sign, verify
from dispatch.track.tokens import is_token
from dispatch.web.forms import cross_site, read_capped

log = logging.getLogger(__name__)

PATH = "/f/{token}/{article_id:int}/{value}"
TEMPLATE = "web_vote.html.j2"
ERROR_TEMPLATE = "web_error.html.j2"
PURPOSE = "vote"  # of the signed form value
MAX_ID = 2**31 - 1  # ids are PostgreSQL integers: a larger one in a URL is no article
VOTE_WORDS = {"useful": "有用", "not_useful": "没用"}
MAX_COMMENT_CHARS = 2000
# A form with a comment of MAX_COMMENT_CHARS, each percent-encoded (up to 12 bytes for a
# 4-byte character), and the other fields; anything longer is refused unread.
MAX_BODY_BYTES = 32 * 1024
_POSTS_BACK_TO_US = "same-origin"  # Referrer-Policy of pages with a form: see _page


@dataclass(frozen=True)
class Target:
    """What a vote link points at: a delivery and an article of its issue."""

    token: str
    delivery_id: int
    reader_id: int
    issue_id: int
    delivery_channel: str  # email | wecom
    article_id: int
    article_title: str
    value: str  # useful | not_useful
    from_web: bool

    @property
    def channel(self) -> str:
        return "web" if self.from_web else self.delivery_channel


@dataclass(frozen=True)
class Refusal:
    status: int
    title: str
    message: str


TOO_LONG = Refusal(
    400, "意见过长，未能提交",
    f"您填写的意见超过 {MAX_COMMENT_CHARS} 字，未能保存。请返回上一页删减后再提交；"
    "较长的意见也可以直接回复邮件或企业微信消息告诉我们。",
)
BAD_FORM = Refusal(
    403, "无法提交",
    "此页面已过期，或提交并非来自本站，未能保存。请从邮件中的链接重新打开页面后再提交。",
)
NOT_A_FORM = Refusal(400, "无法提交", "提交的内容无法识别，未能保存。请从邮件中的链接重新打开页面后再提交。")


def comment_text(raw: str) -> str:
    """A reader's comment as stored: line breaks kept (as LF), control and invisible
    characters dropped (a stray one is no reason to lose the comment), ends stripped."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    kept = (ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    return "".join(kept).strip()


class Votes:
    def __init__(self, runtime: Runtime, env: Environment, headers: Mapping[str, str]):
        self.runtime = runtime
        self.env = env
        self.headers = dict(headers)  # the app's security headers

    def routes(self) -> list[Route]:
        return [
            Route(PATH, self.click, methods=["GET"]),  # and HEAD
            Route(PATH, self.submit, methods=["POST"]),
        ]

    # -- looking the link up -----------------------------------------------------------

    def target(self, request: Request) -> Target:
        """The delivery and article behind a vote link; 404 if there is none."""
        token = str(request.path_params["token"]).lower()
        value = str(request.path_params["value"])
        article_id = int(request.path_params["article_id"])
        if not is_token(token) or value not in VOTES or not 0 < article_id <= MAX_ID:
            raise HTTPException(404)
        with self.runtime.sessions() as session:
            row = session.execute(
                select(Delivery.id, Delivery.reader_id, Delivery.issue_id, Delivery.channel, Article.title)
                .join(Section, Section.issue_id == Delivery.issue_id)
                .join(Article, Article.section_id == Section.id)
                .where(Delivery.token == token, Article.id == article_id, Article.kind == "article")
            ).one_or_none()
        if row is None:
            raise HTTPException(404)
        from_web = request.query_params.get(FROM_PARAM) == FROM_WEB
        return Target(token, row[0], row[1], row[2], row[3], article_id, row[4], value, from_web)

    # -- endpoints ---------------------------------------------------------------------

    def click(self, request: Request) -> Response:
        """GET (plain def: runs in the thread pool)."""
        target = self.target(request)
        agent = request.headers.get("user-agent", "")
        client_ip = request.client.host if request.client else None
        if request.method == "HEAD" or is_machine(agent, client_ip):
            return self._page(target, "confirm")
        self._store(target, vote=True, comment="")
        return self._page(target, "thanks")

    async def submit(self, request: Request) -> Response:
        """POST: the 确认 button (vote=1) and/or a comment."""
        target = await run_in_threadpool(self.target, request)
        if cross_site(request.headers, self.runtime.config.web.base_url):
            return self._refuse(BAD_FORM)
        body = await read_capped(request, MAX_BODY_BYTES)
        if body is None:
            return self._refuse(TOO_LONG)
        try:
            form = parse_qs(body.decode("latin-1"), encoding="utf-8", errors="replace", max_num_fields=10)
        except ValueError:
            return self._refuse(NOT_A_FORM)
        fields = {k: v[0] for k, v in form.items()}
        if not verify(self.runtime.signing_key, PURPOSE, target.token, fields.get("csrf", "")):
            return self._refuse(BAD_FORM)
        comment = comment_text(fields.get("comment", ""))
        if len(comment) > MAX_COMMENT_CHARS:
            return self._refuse(TOO_LONG)
        vote = fields.get("vote") == "1"
        await run_in_threadpool(self._store, target, vote=vote, comment=comment)
        return self._page(target, "commented" if comment else "thanks")

    # -- storing -----------------------------------------------------------------------

    def _store(self, target: Target, *, vote: bool, comment: str) -> None:
        """The vote and/or the comment, in one transaction: both or neither."""
        if not vote and not comment:
            return
        for attempt in range(3):
            try:
                with transaction(self.runtime.sessions) as session:
                    if vote:
                        set_vote(session, Vote(target.delivery_id, target.reader_id,
                                               target.issue_id, target.article_id,
                                               target.channel, target.value), utcnow())
                    if comment:
                        session.add(_feedback(target, "comment", comment))
                break
            except IntegrityError:
                # Another first click on this delivery and article inserted its vote
                # between our look and our insert (uq_feedback_vote): the row is there
                # now, and the next try changes it.
                if attempt == 2:
                    raise
        log.info(
            "feedback on article %s by delivery %s: %s%s", target.article_id, target.delivery_id,
            target.value if vote else "", " comment" if comment else "",
        )

    # -- pages -------------------------------------------------------------------------

    def _page(self, target: Target, state: str) -> Response:
        """state: confirm (a machine's fetch: ask), thanks (vote recorded), commented."""
        config = self.runtime.config
        links = Links(config.web.base_url, config.smtp.reply_domain, target.token)
        other = "not_useful" if target.value == "useful" else "useful"
        body = self.env.get_template(TEMPLATE).render(
            page_title=f"谢谢您的反馈 - 《{BULLETIN}》",
            state=state,
            article_title=target.article_title,
            vote_word=VOTE_WORDS[target.value],
            other_word=VOTE_WORDS[other],
            other_url=links.vote(target.article_id, other, web=target.from_web),
            action=links.vote(target.article_id, target.value, web=target.from_web),
            csrf=sign(self.runtime.signing_key, PURPOSE, target.token),
            max_chars=MAX_COMMENT_CHARS,
            article_url=links.article(target.article_id),
            issue_url=links.web_view(),
        )
        # The form posts back here: the browser must send our Origin with it, which a
        # no-referrer policy would blank ("null"). Same-origin still tells no other site.
        headers = {**self.headers, "Referrer-Policy": _POSTS_BACK_TO_US}
        return HTMLResponse(body, headers=headers)

    def _refuse(self, refusal: Refusal) -> Response:
        body = self.env.get_template(ERROR_TEMPLATE).render(
            status=refusal.status, title=refusal.title, message=refusal.message,
            page_title=f"{refusal.title} - 《{BULLETIN}》",
        )
        return HTMLResponse(body, status_code=refusal.status, headers=self.headers)


def _feedback(target: Target, kind: str, text: str = "") -> Feedback:
    return Feedback(
        reader_id=target.reader_id, issue_id=target.issue_id, delivery_id=target.delivery_id,
        article_id=target.article_id, channel=target.channel, kind=kind, text=text,
        received_at=utcnow(),
    )
