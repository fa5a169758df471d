"""An issue rendered for many readers: expensive work once per variant, cheap per reader.

An email variant is what readers with the same selection of articles and the same
own industries among its badges share. The HTML (Jinja2 + premailer) is rendered once
per selection with both forms of those badges (render.marks); each variant picks its
forms and builds its MIME template once; then each reader's message is spliced from it
(greeting, industries in words and token are per-reader slots).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from jinja2 import Environment

from dispatch.render import email as email_render
from dispatch.render import marks, slots, wecom
from dispatch.render.message import MessageTemplate
from dispatch.render.personal import greeting
from dispatch.render.selection import Selection, articles_for
from dispatch.render.views import (
    Digest,
    IssueView,
    article_views,
    build_digest,
    interests_words,
    tags_of,
)
from dispatch.track.links import IssueLinks, Links

if TYPE_CHECKING:
    from dispatch.config import Config
    from dispatch.db.models import Issue, Reader


@dataclass(frozen=True)
class ReaderView:
    """What rendering needs of a reader; built from the ORM row or by hand."""

    id: int
    name: str
    position: str = ""
    email: str | None = None
    wecom_userid: str | None = None
    follows_all: bool = False
    industries: frozenset[str] = frozenset()

    @classmethod
    def of(cls, reader: Reader) -> ReaderView:
        return cls(
            id=reader.id,
            name=reader.name,
            position=reader.position or "",
            email=reader.email,
            wecom_userid=reader.wecom_userid,
            follows_all=reader.follows_all,
            industries=frozenset(reader.industries),
        )

    @property
    def greeting(self) -> str:
        return greeting(self.name, self.position)

    @property
    def interests(self) -> str:
        return interests_words(self.follows_all, self.industries)


@dataclass
class EmailVariant:
    digest: Digest
    html: slots.Spliced
    text: slots.Spliced
    message: MessageTemplate


@dataclass(frozen=True)
class SelectionBodies:
    """A selection's email bodies, rendered once: badges in both forms (render.marks)."""

    digest: Digest  # the first reader's
    html: str
    text: str
    codes: frozenset[str]  # industries with a badge that may be marked as a reader's own


# An email variant: the selection, then the reader's own industries among its badges.
EmailKey = tuple[Selection, frozenset[str]]
# A WeChat Work variant: the selection, then the reader's interests (follows all, industries).
WecomKey = tuple[Selection, bool, frozenset[str]]


@dataclass
class IssueRenderer:
    """Renders one issue; keeps each variant it has built."""

    view: IssueView
    env: Environment  # from dispatch.render.templates
    base_url: str
    reply_domain: str
    from_addr: str
    wecom_msgtype: str = "news"
    wecom_agentid: int = 0
    # False: WeChat Work messages carry no token and no greeting and link to the issue's
    # own pages (web_key), so every reader of a variant gets the same body.
    wecom_personal: bool = True
    web_key: str | None = None  # Issue.web_key
    _bodies: dict[Selection, SelectionBodies] = field(default_factory=dict)
    _email: dict[EmailKey, EmailVariant] = field(default_factory=dict)
    _email_by_interests: dict[tuple[bool, frozenset[str]], EmailVariant] = field(default_factory=dict)
    _wecom: dict[WecomKey, wecom.WecomVariant] = field(default_factory=dict)
    # Readers with the same interests get the same selection; there are few such sets.
    _selections: dict[tuple[bool, frozenset[str]], Selection] = field(default_factory=dict)

    @classmethod
    def for_issue(cls, issue: Issue, env: Environment, config: Config) -> IssueRenderer:
        """`issue` with its sections and articles loaded."""
        return cls(
            article_views(issue),
            env,
            base_url=config.web.base_url,
            reply_domain=config.smtp.reply_domain,
            from_addr=config.smtp.from_,
            wecom_msgtype=config.wecom.message_type,
            wecom_agentid=config.wecom.agent_id,
            wecom_personal=config.wecom.personal_links,
            web_key=issue.web_key,
        )

    @property
    def subject(self) -> str:
        number = f"（{self.view.number}）" if self.view.number else ""
        return f"《{self.view.title}》{number}"

    def variant_links(self) -> Links:
        return Links(self.base_url, self.reply_domain, slots.TOKEN)

    def links(self, token: str) -> Links:
        return Links(self.base_url, self.reply_domain, token)

    def issue_links(self) -> IssueLinks:
        """The issue's own pages (/i/KEY), the same for every reader."""
        if not self.web_key:  # every issue has one (the model's default, migration 0008)
            raise ValueError(f"issue {self.view.id} has no web key")
        return IssueLinks(self.base_url, self.web_key)

    def selection(self, reader: ReaderView) -> Selection:
        key = (reader.follows_all, reader.industries)
        sel = self._selections.get(key)
        if sel is None:
            sel = articles_for(tags_of(self.view), reader.follows_all, reader.industries)
            self._selections[key] = sel
        return sel

    def digest_for(self, reader: ReaderView) -> Digest:
        return build_digest(self.view, self.selection(reader), reader.follows_all, reader.industries)

    def _variant_key(self, reader: ReaderView) -> WecomKey:
        # The selection fixes the articles and their order; the interests, the words
        # some forms show. WeChat Work messages are keyed by both.
        return (self.selection(reader), reader.follows_all, reader.industries)

    def selection_bodies(self, reader: ReaderView) -> SelectionBodies:
        # Email carries the interests in a per-reader slot and the own badges in both
        # forms, so premailer runs once per selection (a handful per issue), not once
        # per set of industries (hundreds).
        sel = self.selection(reader)
        bodies = self._bodies.get(sel)
        if bodies is None:
            d = build_digest(self.view, sel, reader.follows_all, reader.industries)
            links = self.variant_links()
            html = email_render.render_html(self.env, d, links, self.subject)
            text = email_render.render_text(self.env, d, links, self.subject)
            bodies = SelectionBodies(d, html, text, marks.codes_in(html) | marks.codes_in(text))
            self._bodies[sel] = bodies
        return bodies

    def email_variant(self, reader: ReaderView) -> EmailVariant:
        # Per reader, one look-up by what decides the variant: what the reader follows.
        interests = (reader.follows_all, reader.industries)
        variant = self._email_by_interests.get(interests)
        if variant is None:
            variant = self._email_by_interests[interests] = self._email_variant(reader)
        return variant

    def _email_variant(self, reader: ReaderView) -> EmailVariant:
        bodies = self.selection_bodies(reader)
        own = marks.own_codes(reader.follows_all, reader.industries) & bodies.codes
        key = (self.selection(reader), own)
        variant = self._email.get(key)
        if variant is None:
            html = email_render.finish(bodies.html, own, email_render.HTML_TEMPLATE)
            text = email_render.finish(bodies.text, own, email_render.TEXT_TEMPLATE)
            message = MessageTemplate.build(
                subject=self.subject,
                from_addr=self.from_addr,
                html=html,
                text=text,
                reply_domain=self.reply_domain,
                base_url=self.base_url,
            )
            variant = EmailVariant(bodies.digest, slots.splice(html), slots.splice(text), message)
            self._email[key] = variant
        return variant

    @property
    def variants_built(self) -> int:
        """Email variants (MIME templates) built so far."""
        return len(self._email)

    @property
    def selections_rendered(self) -> int:
        """Selections rendered so far (Jinja2 + premailer)."""
        return len(self._bodies)

    def email_message(self, reader: ReaderView, token: str, date: datetime | None = None) -> bytes:
        if not reader.email:
            raise ValueError(f"reader {reader.id} has no email address")
        return self.email_variant(reader).message.render(
            to_name=reader.name, to_addr=reader.email, token=token,
            greeting=reader.greeting, interests=reader.interests, date=date,
        )

    def html_for(self, reader: ReaderView, token: str) -> str:
        import html as html_lib

        return self.email_variant(reader).html.fill(
            {
                slots.TOKEN: token,
                slots.GREETING: html_lib.escape(reader.greeting),
                slots.INTERESTS: html_lib.escape(reader.interests),
            }
        )

    def text_for(self, reader: ReaderView, token: str) -> str:
        return self.email_variant(reader).text.fill(
            {slots.TOKEN: token, slots.GREETING: reader.greeting, slots.INTERESTS: reader.interests}
        )

    def wecom_variant(self, reader: ReaderView) -> wecom.WecomVariant:
        key = self._variant_key(reader)
        variant = self._wecom.get(key)
        if variant is None:
            variant = wecom.render_variant(
                self.digest_for(reader),
                self.variant_links() if self.wecom_personal else self.issue_links(),
                msgtype=self.wecom_msgtype,
                agentid=self.wecom_agentid,
            )
            self._wecom[key] = variant
        return variant

    def wecom_json(self, reader: ReaderView, token: str) -> str:
        """The JSON body of the message/send call for this reader."""
        if not reader.wecom_userid:
            raise ValueError(f"reader {reader.id} has no WeChat Work account")
        return self.wecom_variant(reader).fill_json(
            touser=reader.wecom_userid, token=token, greeting=reader.greeting
        )
