"""The staff web's preview of an issue as one reader gets it, and the test copy.

    GET  /admin/issues/{id}/preview[?reader=N][&q=TEXT]  choose a reader (search by name,
                                  organisation, email, WeChat Work id); the email in a
                                  frame, the WeChat Work message as a card, a test copy form
    GET  /admin/issues/{id}/preview/email?reader=N      the email's HTML, for that frame
    POST /admin/issues/{id}/test-copy                   one test copy by email (fields:
                                  to, reader)

Whom: dispatch.preview (reader N; with none, a reader who follows everything, or the
made-up 测试读者). Every link carries its PREVIEW_TOKEN: opening, clicking or voting in a
preview records nothing. The test copy is dispatch.deliver.test_copy's, as `dispatch
send --to` sends it.
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import Any

from jinja2 import Environment
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from dispatch import editorial
from dispatch.clock import utcnow
from dispatch.db.models import Issue, IssueChange, Reader
from dispatch.deliver.test_copy import BadAddress, send_test_copy
from dispatch.deliver.wecom import check_links
from dispatch.errors import Refused
from dispatch.preview import PREVIEW_TOKEN, AsReader, choose_reader, default_reader
from dispatch.readers import query as reader_query
from dispatch.readers.apply import Listed
from dispatch.render.pipeline import IssueRenderer, ReaderView
from dispatch.render.templates import environment
from dispatch.render.wecom_mockup import mockup
from dispatch.statewords import ISSUE_WORDS
from dispatch.web.desk import Desk, Posted, Signed, frameable

log = logging.getLogger(__name__)


def _search(session: Session, text: str) -> list[Listed]:
    """Readers whose name, organisation or address holds `text`: the readers list's search."""
    where = reader_query.condition(reader_query.parse_filter(text=text), utcnow())
    return reader_query.page_of_readers(session, where, offset=0, limit=FOUND_MAX)

FOUND_MAX = 50  # readers listed for a search
PLACEHOLDER_USERID = "preview"  # for a reader without a WeChat Work account
MSGTYPE_WORDS = {
    "news": "图文消息", "markdown": "Markdown 消息", "textcard": "文本卡片",
    "template_card": "模板卡片（带“有用”“没用”按钮）",
}


def _reader_id(value: str) -> int:
    """A reader's id from the query or a form; 0 (the default reader) for anything else."""
    return int(value) if value.isdecimal() and len(value) < 10 else 0


def _choose(session: Session, reader_id: int) -> tuple[AsReader, str]:
    """The reader to render as, and what went wrong finding the one asked for."""
    if reader_id:
        try:
            return choose_reader(session, f"id:{reader_id}"), ""
        except Refused:
            return default_reader(session), f"没有编号为 {reader_id} 的读者，以下按默认读者显示。"
    return default_reader(session), ""


class PreviewPages:
    def __init__(self, desk: Desk):
        self.desk = desk
        self.runtime = desk.runtime

    def _renderer(self, session: Session, issue_id: int) -> IssueRenderer | None:
        try:
            issue = editorial.get_issue(session, issue_id)
        except Refused:
            return None
        return IssueRenderer.for_issue(issue, self.env, self.runtime.config)

    @cached_property
    def env(self) -> Environment:
        """The email's templates, as the reader pages and the workers load them: once."""
        return environment(self.runtime.config)

    def preview(self, request: Request, who: Signed) -> Response:
        issue_id = int(request.path_params["issue_id"])
        reader_id = _reader_id(request.query_params.get("reader", ""))
        return self._page(who, issue_id, reader_id, request.query_params.get("q", ""),
                          done=request.query_params.get("done", ""))

    def _page(self, who: Signed, issue_id: int, reader_id: int, query: str, code: int = 200,
              *, done: str = "", error: str = "", to: str = "") -> Response:
        query = query.strip()[:100]
        with self.runtime.sessions() as session:
            renderer = self._renderer(session, issue_id)
            if renderer is None:
                return self.desk.refused(404, f"期刊 {issue_id} 不存在。", who)
            chosen, missing = _choose(session, reader_id)
            found = [
                {"id": r.id, "name": r.state.name, "organization": r.state.organization,
                 "email": r.state.email or "", "wecom": r.state.wecom_userid or ""}
                for r in (_search(session, query) if query else [])
            ]
            message = self._sent_message(session, issue_id, who) if done == "test_copy" else ""
            status = session.scalar(select(Issue.status).where(Issue.id == issue_id)) or "draft"
        return self.desk.page(
            "admin_issue_preview.html.j2", who, code,
            issue={"id": issue_id, "subject": renderer.subject, "status": ISSUE_WORDS[status]},
            reader=chosen, reader_id=chosen.view.id, asked=reader_id, query=query, found=found,
            missing=missing, message=message, error=error, to=to,
            wecom=self._wecom(renderer, chosen.view),
        )

    def _wecom(self, renderer: IssueRenderer, view: ReaderView) -> dict[str, Any]:
        config = self.runtime.config.wecom
        values: dict[str, Any] = {
            "enabled": config.enabled, "msgtype": config.message_type,
            "msgtype_words": MSGTYPE_WORDS.get(config.message_type, config.message_type),
            "personal": config.personal_links, "has_account": bool(view.wecom_userid),
            "mockup": None, "error": "",
        }
        try:
            check_links(self.runtime.config)
            as_member = view if view.wecom_userid else ReaderView(
                **{**view.__dict__, "wecom_userid": PLACEHOLDER_USERID})
            body = renderer.wecom_json(as_member, PREVIEW_TOKEN)
        except (Refused, ValueError) as exc:
            values["error"] = ("企业微信消息无法生成：消息类型与“个人链接”设置不相容，"
                               "请管理员检查配置文件 [wecom] 一节。" if isinstance(exc, Refused)
                               else "企业微信消息无法生成，请管理员检查配置文件 [wecom] 一节。")
            return values
        values["mockup"] = mockup(json.loads(body))
        return values

    def _sent_message(self, session: Session, issue_id: int, who: Signed) -> str:
        """What the newest test copy of this staff member said (kept in the change log)."""
        new = session.scalar(
            select(IssueChange.new)
            .where(IssueChange.issue_id == issue_id, IssueChange.field == "test_copy",
                   IssueChange.staff_id == who.id)
            .order_by(IssueChange.id.desc()).limit(1)
        )
        return f"测试稿已发到 {new}。" if new else ""

    def email(self, request: Request, who: Signed) -> Response:
        issue_id = int(request.path_params["issue_id"])
        reader_id = _reader_id(request.query_params.get("reader", ""))
        headers = frameable(self.desk.headers)
        with self.runtime.sessions() as session:
            renderer = self._renderer(session, issue_id)
            if renderer is None:
                return HTMLResponse("<p>期刊不存在。</p>", 404, headers=headers)
            chosen, _ = _choose(session, reader_id)
        body = renderer.html_for(chosen.view, PREVIEW_TOKEN)
        return HTMLResponse(body, headers={**headers, "Cache-Control": "no-store"})

    def test_copy(self, request: Request, who: Signed, posted: Posted) -> Response:
        issue_id = int(request.path_params["issue_id"])
        reader_id = _reader_id(posted.get("reader"))
        to = posted.get("to").strip()
        if not to:
            return self._page(who, issue_id, reader_id, "", 400,
                              error="收件邮箱：请填写要收测试稿的邮箱。", to=to)
        if reader_id:
            with self.runtime.sessions() as session:
                if session.get(Reader, reader_id) is None:
                    return self._page(who, issue_id, 0, "", 400, to=to,
                                      error=f"没有编号为 {reader_id} 的读者：请重新选择读者。")
        key = f"id:{reader_id}" if reader_id else None
        try:
            result = send_test_copy(self.runtime, issue_id, to, key, by=who.id)
        except BadAddress as exc:
            return self._page(who, issue_id, reader_id, "", 400, error=f"收件邮箱：{exc}", to=to)
        except Refused as exc:
            return self._page(who, issue_id, reader_id, "", 400, error=str(exc), to=to)
        if not result.sent:
            return self._page(who, issue_id, reader_id, "", 502, error=result.words, to=to)
        log.info("staff %d sent a test copy of issue %d", who.id, issue_id)
        return self.desk.redirect(
            f"/admin/issues/{issue_id}/preview?reader={reader_id}&done=test_copy")


def routes(desk: Desk) -> list[Route]:
    pages = PreviewPages(desk)
    one = "/admin/issues/{issue_id:int}"
    return [
        desk.view(f"{one}/preview", pages.preview),
        desk.view(f"{one}/preview/email", pages.email),
        desk.action(f"{one}/test-copy", pages.test_copy),
    ]
