"""The reader's own settings page, behind 调整关注的产业 in every email and message.

    GET  /p/{token}   the page: industries (6 + 3 + 3, or 全部), channels, a pause, the
                      way to unsubscribe; an unsubscribed reader may subscribe again
    POST /p/{token}   the page's form: saved all or nothing, each change logged with
                      source "page"; the page again with 已保存, or why nothing was saved

A token shows its own reader and nobody else. The form carries a value signed for the
token (dispatch.track.signing): a post without it, with another token's, a stale one or
from another site (Sec-Fetch-Site / Origin) is refused with 403, and input the form cannot
produce (unknown industries or channels, no industry, no channel, an unknown pause, an
oversized or undecodable body) with 400 naming the field; nothing is changed either way.

Pages are server-rendered (templates/web_preferences.html.j2) and carry no JavaScript.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from jinja2 import Environment
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from dispatch import clock
from dispatch.db.models import Delivery, Reader
from dispatch.db.session import transaction
from dispatch.industries import BY_CODE, INDUSTRIES, Industry, by_tier
from dispatch.masthead import BULLETIN
from dispatch.readers import CHANNEL_ORDER, CHANNEL_WORDS
from dispatch.readers.apply import RecordRefused, is_paused, set_status
from dispatch.readers.changes import (
    PAUSE_BY_CODE,
    PAUSE_LENGTHS,
    PauseLength,
    pause,
    pause_date,
    pause_end,
    resume,
    set_preferences,
)
from dispatch.track import signing
from dispatch.track.links import Links
from dispatch.track.tokens import is_token
from dispatch.web.forms import cross_site, read_capped

if TYPE_CHECKING:
    from dispatch.runtime import Runtime

log = logging.getLogger(__name__)

TEMPLATE = "web_preferences.html.j2"
CSRF_PURPOSE = "prefs"
# The form is a few short fields (12 industries at most): anything longer is not it.
MAX_FORM_BYTES = 8 * 1024
MAX_FIELDS = 64
FORM_TYPE = "application/x-www-form-urlencoded"
# What an unknown value may show of itself in a message.
SHOWN_CHARS = 20
# The field names messages use.
INDUSTRIES_FIELD = "关注的产业"
CHANNELS_FIELD = "接收方式"
PAUSE_FIELD = "暂停接收"


# --- reading the form (pure) ---------------------------------------------------------------


class Refusal(Exception):
    """Why a post changes nothing: `status` 403 (not this reader's own form) or 400
    (input the form cannot produce), and the sentence the reader reads."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(field_name: str, message: str) -> Refusal:
    return Refusal(400, f"{field_name}：{message}")


_GARBLED = Refusal(400, "提交的内容无法识别，请重新打开本页后再保存")


def parse_body(body: bytes, content_type: str) -> dict[str, list[str]]:
    """The fields of a posted form; raises Refusal(400) for anything a browser posting
    this page's form would not send."""
    if content_type.split(";")[0].strip().lower() != FORM_TYPE:
        raise _GARBLED
    try:
        text = body.decode("ascii")  # percent-encoded: never anything else
        return parse_qs(text, keep_blank_values=True, strict_parsing=bool(text),
                        encoding="utf-8", errors="strict", max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise _GARBLED from None


def _one(fields: Mapping[str, list[str]], name: str) -> str:
    values = fields.get(name, [])
    if len(values) > 1:
        raise _GARBLED
    return values[0] if values else ""


def _shown(value: str) -> str:
    return value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "…"


@dataclass(frozen=True)
class Choice:
    """What a valid post asks for."""

    action: str  # "save" | "resubscribe"
    follows_all: bool = False
    industries: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    pause: str = ""  # "" keeps it as it is, a PAUSE_LENGTHS code, or "resume"


def read_choice(fields: Mapping[str, list[str]], available: tuple[str, ...]) -> Choice:
    """The reader's choice from the form's fields; raises Refusal(400) naming the field.
    ``available``: the channels the reader has an address for."""
    action = _one(fields, "action")
    if action == "resubscribe":
        return Choice("resubscribe")
    if action != "save":
        raise _GARBLED
    all_value = _one(fields, "all")
    if all_value not in ("", "1"):
        raise _GARBLED
    follows_all = all_value == "1"
    codes = fields.get("industry", [])
    for code in codes:
        if code not in BY_CODE:
            raise _bad(INDUSTRIES_FIELD, f"没有“{_shown(code)}”这个产业")
    if not follows_all and not codes:
        raise _bad(INDUSTRIES_FIELD, "请至少选择一个产业，或选择“全部”")
    channels = fields.get("channel", [])
    for channel in channels:
        if channel not in CHANNEL_WORDS:
            raise _bad(CHANNELS_FIELD, f"没有“{_shown(channel)}”这种接收方式")
        if channel not in available:
            address = "邮箱" if channel == "email" else "企业微信账号"
            raise _bad(CHANNELS_FIELD, f"我们没有您的{address}，不能选择{CHANNEL_WORDS[channel][0]}")
    if not channels:
        raise _bad(CHANNELS_FIELD, "请至少选择一种；如不想再收到，可以在页面下方退订")
    pause_code = _one(fields, "pause")
    if pause_code not in ("", "resume") and pause_code not in PAUSE_BY_CODE:
        raise _bad(PAUSE_FIELD, f"没有“{_shown(pause_code)}”这一项")
    return Choice(
        "save", follows_all,
        () if follows_all else tuple(i.code for i in INDUSTRIES if i.code in codes),
        tuple(c for c in CHANNEL_ORDER if c in channels),
        pause_code,
    )


# --- what the page shows -------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelOption:
    code: str
    words: str  # 邮件 / 企业微信
    address: str  # shown beside it: the email; nothing for WeChat Work
    checked: bool
    suspended: bool  # the bounce rule stopped email to this address


@dataclass(frozen=True)
class PauseOption:
    code: str
    words: str
    until: date


@dataclass(frozen=True)
class PageView:
    """Everything the template shows, for one reader."""

    name: str
    status: str
    follows_all: bool
    industries: frozenset[str]
    groups: list[tuple[str, list[Industry]]]
    channels: list[ChannelOption]
    paused_until: date | None
    pauses: list[PauseOption]
    csrf: str
    action: str
    unsubscribe_url: str
    notice: str = ""
    error: str = ""
    errors_in: str = ""  # the field an error names, to mark it


def industry_groups() -> list[tuple[str, list[Industry]]]:
    """The industries by tier, in the city's order: 6 + 3 + 3."""
    return [(tier, list(items)) for tier, items in by_tier()]


def available_channels(reader: Reader) -> tuple[str, ...]:
    return tuple(c for c, address in (("email", reader.email), ("wecom", reader.wecom_userid))
                 if address)


def page_view(reader: Reader, *, now: datetime, csrf: str, links: Links,
              notice: str = "", error: str = "") -> PageView:
    chosen = set(reader.channels)
    suspended = reader.email_suspended_at is not None
    return PageView(
        name=reader.name,
        status=reader.status,
        follows_all=bool(reader.follows_all),
        industries=frozenset(() if reader.follows_all else reader.industries),
        groups=industry_groups(),
        channels=[
            ChannelOption(c, CHANNEL_WORDS[c][0], reader.email or "" if c == "email" else "",
                          c in chosen, c == "email" and suspended)
            for c in available_channels(reader)
        ],
        paused_until=(pause_date(reader.paused_until)
                      if reader.paused_until is not None and is_paused(reader.paused_until, now)
                      else None),
        pauses=[PauseOption(p.code, p.words, pause_date(pause_end(p, now))) for p in PAUSE_LENGTHS],
        csrf=csrf,
        action=links.preferences(),
        unsubscribe_url=links.unsubscribe(),
        notice=notice,
        error=error,
        errors_in=error.partition("：")[0] if error else "",
    )


def render(env: Environment, view: PageView) -> str:
    return env.get_template(TEMPLATE).render(
        view=view, page_title=f"接收设置 - 《{BULLETIN}》", refused=None,
    )


def render_refused(env: Environment, message: str, retry_url: str) -> str:
    return env.get_template(TEMPLATE).render(
        view=None, page_title=f"无法保存 - 《{BULLETIN}》",
        refused={"message": message, "retry_url": retry_url},
    )


# --- the endpoints -------------------------------------------------------------------------


def _holder(session: Session, token: str) -> Reader | None:
    """The reader of the delivery behind a (lower-cased, well-formed) token; None if none."""
    return session.scalar(
        select(Reader).join(Delivery, Delivery.reader_id == Reader.id)
        .where(Delivery.token == token)
        .options(selectinload(Reader.industry_rows), selectinload(Reader.channel_rows))
    )


def _notice(choice: Choice, changed: bool, paused_until: datetime | None) -> str:
    if choice.action == "resubscribe" and changed:
        return f"已重新订阅，今后的《{BULLETIN}》会照常发送给您。"
    if choice.pause in PAUSE_BY_CODE and paused_until is not None:
        return f"已保存。暂停至 {clock.cn_date(pause_date(paused_until))}，届时自动恢复。"
    if choice.pause == "resume" and changed:
        return "已保存，已恢复接收。"
    return "已保存。" if changed else "已保存（没有改动）。"


class PreferencePages:
    def __init__(self, runtime: Runtime, env: Environment, headers: Mapping[str, str]):
        self.runtime = runtime
        self.env = env
        self.headers = dict(headers)

    def _html(self, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(body, status_code=status, headers=self.headers)

    def _links(self, token: str) -> Links:
        config = self.runtime.config
        return Links(config.web.base_url, config.smtp.reply_domain, token)

    @staticmethod
    def _token(request: Request) -> str:
        token = str(request.path_params["token"]).lower()
        if not is_token(token):
            raise HTTPException(404)
        return token

    def _csrf(self, token: str) -> str:
        return signing.sign(self.runtime.signing_key, CSRF_PURPOSE, token)

    def _page(self, token: str, *, notice: str = "", error: str = "", status: int = 200) -> Response:
        """The page as the database has it now."""
        with self.runtime.sessions() as session:
            reader = _holder(session, token)
            if reader is None:
                raise HTTPException(404)
            view = page_view(reader, now=clock.utcnow(), csrf=self._csrf(token),
                             links=self._links(token), notice=notice, error=error)
        return self._html(render(self.env, view), status)

    # GET (plain def: the thread pool)
    def show(self, request: Request) -> Response:
        return self._page(self._token(request))

    # POST
    async def save(self, request: Request) -> Response:
        token = self._token(request)
        if cross_site(request.headers, self.runtime.config.web.base_url):
            return await run_in_threadpool(self._refused, token, Refusal(403, ""))
        body = await read_capped(request, MAX_FORM_BYTES)
        if body is None:
            return await run_in_threadpool(
                self._refused, token, Refusal(400, "提交的内容过长，没有保存"))
        try:
            fields = parse_body(body, request.headers.get("content-type", ""))
        except Refusal as refusal:
            return await run_in_threadpool(self._refused, token, refusal)
        return await run_in_threadpool(self._save, token, fields)

    def _save(self, token: str, fields: dict[str, list[str]]) -> Response:
        now = clock.utcnow()
        try:
            # Everything is checked before anything is written; any refusal or error
            # leaves the transaction with nothing in it.
            with transaction(self.runtime.sessions) as session:
                reader = _holder(session, token)
                if reader is None:
                    raise HTTPException(404)
                csrf = _one(fields, "csrf")
                if not signing.verify(self.runtime.signing_key, CSRF_PURPOSE, token, csrf):
                    raise Refusal(403, "")
                choice = read_choice(fields, available_channels(reader))
                changed = self._apply(session, reader, choice, now)
                paused_until = reader.paused_until
        except Refusal as refusal:
            return self._refused(token, refusal)
        except RecordRefused as exc:  # the list rules caught what read_choice did not
            return self._refused(token, Refusal(400, str(exc)))
        return self._page(token, notice=_notice(choice, changed, paused_until))

    @staticmethod
    def _apply(session: Session, reader: Reader, choice: Choice, now: datetime) -> bool:
        """Make the change; True if anything changed."""
        if choice.action == "resubscribe":
            if reader.status != "unsubscribed":
                return False
            return set_status(session, reader, "active", source="page")
        if reader.status == "unsubscribed":
            raise Refusal(400, "您已退订：如需重新接收，请先点击“重新订阅”")
        changed = bool(set_preferences(
            session, reader, follows_all=choice.follows_all, industries=choice.industries,
            channels=choice.channels, source="page",
        ))
        length: PauseLength | None = PAUSE_BY_CODE.get(choice.pause)
        if length is not None:
            changed = pause(session, reader, pause_end(length, now), source="page") or changed
        elif choice.pause == "resume":
            changed = resume(session, reader, source="page", now=now) or changed
        return changed

    def _refused(self, token: str, refusal: Refusal) -> Response:
        if refusal.status == 403:
            log.info("preferences post refused: not the page's own form")
            body = render_refused(
                self.env,
                "本页已过期，或者不是从您的链接打开的，所以没有保存任何修改。请重新打开本页后再保存。",
                self._links(token).preferences(),
            )
            return self._html(body, 403)
        return self._page(token, error=refusal.message, status=refusal.status)


def routes(runtime: Runtime, env: Environment, headers: Mapping[str, str]) -> list[Route]:
    """The page's routes, for create_app (dispatch.web.app); ``headers``: the security
    headers every reader page carries."""
    pages = PreferencePages(runtime, env, headers)
    return [
        Route("/p/{token}", pages.show, methods=["GET"]),
        Route("/p/{token}", pages.save, methods=["POST"]),
    ]
