"""The feedback inbox of the staff web (editors and admins):

    GET  /admin/feedback            the inbox, newest first: filters (issue, article,
                                    reader, channel, kind, handled or not), 50 a page
    POST /admin/feedback/handled    mark the ticked rows handled (ids, back: where to return)
    GET  /admin/feedback/export?format=csv|xlsx&…  the rows the inbox's filters let
                                    through (every page), as a table to download
    GET  /admin/feedback/{id}       one item, and its message as received, decoded
    GET  /admin/feedback/{id}/raw   the message as received: .eml (email), .xml (WeChat Work)

The rows and filters are dispatch.report.feedback_list's (the CLI's `dispatch feedback`),
the message's reading dispatch.feedback.message_view's, the download's columns
report.feedback_list.block's (the CLI's `dispatch feedback export`). Marking handled records the staff
member's name and the time on the row (handled_by, handled_at), as the CLI records the
OS user's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from math import ceil
from urllib.parse import urlencode, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatch import clock, editorial
from dispatch.db.models import FEEDBACK_CHANNELS, Article, Feedback, Issue, Section
from dispatch.db.session import transaction
from dispatch.errors import Refused
from dispatch.feedback.message_view import view as message_view
from dispatch.report import feedback_list
from dispatch.report.feedback_list import Filters
from dispatch.report.sheets import csv_bytes, xlsx_bytes
from dispatch.report.words import KIND_WORDS, channel_word, parse_kinds
from dispatch.web.desk import DOWNLOAD_TYPES, Desk, Posted, Signed, attachment

log = logging.getLogger(__name__)

PAGE_SIZE = 50
EXCERPT = 80  # characters of a text the list shows; the item's page has it all
STATES = {"": "全部", "open": "未处理", "done": "已处理"}
KIND_CHOICES = {"": "全部", **KIND_WORDS, "votes": "投票（有用和没用）"}
CHANNEL_CHOICES = {"": "全部", **{c: channel_word(c) for c in FEEDBACK_CHANNELS}}
FILTER_KEYS = ("issue", "article", "reader", "reader_id", "channel", "kind", "state", "page")
_BACK = re.compile(r"/admin/feedback(?:/\d+)?")


@dataclass
class Query:
    """The inbox's filters as the form sends them, what they mean, and what was wrong."""

    values: dict[str, str] = field(default_factory=dict)  # as typed, for the form
    filters: Filters = field(default_factory=Filters)
    page: int = 1
    errors: list[str] = field(default_factory=list)

    def export_link(self, kind: str) -> str:
        """The download of every row these filters let through."""
        kept = [(k, v) for k, v in self.values.items() if v and k != "page"]
        return "/admin/feedback/export?" + urlencode([("format", kind), *kept])

    def link(self, **changes: object) -> str:
        """The inbox with these filters, some changed (None: left out)."""
        values = {**self.values, **{k: "" if v is None else str(v) for k, v in changes.items()}}
        kept = {k: v for k, v in values.items() if v and not (k == "page" and v == "1")}
        return "/admin/feedback" + (f"?{urlencode(kept)}" if kept else "")


def _whole(text: str, name: str, errors: list[str]) -> int | None:
    text = text.strip()
    if not text:
        return None
    if text.isdigit() and len(text) <= 9:
        return int(text)
    errors.append(f"{name}应为编号（数字），不是“{text}”。")
    return None


def read_query(params: Mapping[str, str]) -> Query:
    """The filters of the inbox's address; a bad value is reported and left out."""
    values = {k: params.get(k, "").strip() for k in FILTER_KEYS}
    errors: list[str] = []
    issue_id = _whole(values["issue"], "期刊", errors)
    article_id = _whole(values["article"], "文章", errors)
    reader_id = _whole(values["reader_id"], "读者", errors)
    kinds: tuple[str, ...] = ()
    if values["kind"]:
        try:
            kinds = parse_kinds(values["kind"])
        except ValueError as exc:
            errors.append(f"类别：{exc}。")
    channel = values["channel"]
    if channel and channel not in FEEDBACK_CHANNELS:
        errors.append(f"渠道“{channel}”不对，可选：{'、'.join(list(CHANNEL_CHOICES.values())[1:])}。")
        channel = ""
    state = values["state"] if values["state"] in STATES else ""
    page = _whole(values["page"], "页码", errors) or 1
    filters = Filters(
        issue_id=issue_id, article_id=article_id, reader_id=reader_id,
        reader=values["reader"][:100], kinds=kinds, channels=(channel,) if channel else (),
        unhandled=state == "open", handled=state == "done",
        limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
    )
    return Query(values, filters, page, errors)


def excerpt(text: str, size: int = EXCERPT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[:size] + "…"


def handled_by(who: Signed) -> str:
    """Who marked a row handled, as the row keeps it: 李四（lisi）."""
    return f"{who.display_name}（{who.name}）"[:100]


def safe_back(path: str) -> str:
    """Where to return after marking: a page of the inbox (its filters kept) or an item's
    page, nothing else."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not _BACK.fullmatch(parts.path):
        return "/admin/feedback"
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_param(path: str, name: str, value: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{urlencode({name: value})}"


def routes(desk: Desk) -> list[Route]:
    runtime = desk.runtime

    def inbox(request: Request, who: Signed) -> Response:
        query = read_query(request.query_params)
        with runtime.sessions() as session:
            stored = editorial.list_issues(session)
            issues = [{"id": i.id, "title": i.title, "number": i.number} for i in stored]
            titles: dict[int | None, str] = {i.id: i.title for i in stored}
            articles: list[dict[str, object]] = []
            filters = query.filters
            if filters.issue_id is not None:
                if filters.issue_id in titles:
                    # Titles only, in the issue's order: not the articles' text and tags.
                    articles = [{"id": i, "title": t} for i, t in session.execute(
                        select(Article.id, Article.title).join(Section)
                        .where(Section.issue_id == filters.issue_id)
                        .order_by(Section.position, Article.position))]
                else:
                    query.errors.append(f"期刊 {filters.issue_id} 不存在。")
            if query.errors:  # nothing shown that the staff member did not ask for
                items: list[feedback_list.Item] = []
                total = 0
            else:
                total = feedback_list.count_feedback(session, filters)
                pages = max(1, ceil(total / PAGE_SIZE))
                if query.page > pages:  # past the end (rows handled meanwhile): the last
                    query.page = pages
                    filters = replace(filters, offset=(pages - 1) * PAGE_SIZE)
                items = feedback_list.list_feedback(session, filters)
        done = request.query_params.get("done", "")
        return desk.page(
            "admin_feedback.html.j2", who, query=query, issues=issues, articles=articles,
            rows=[_row(item, titles) for item in items], total=total,
            pages=max(1, ceil(total / PAGE_SIZE)), page_size=PAGE_SIZE,
            kinds=KIND_CHOICES, channels=CHANNEL_CHOICES, states=STATES,
            done=int(done) if done.isdigit() else None,
            none_ticked=request.query_params.get("none") == "1",
            back=query.link(),
        )

    def export(request: Request, who: Signed) -> Response:
        kind = request.query_params.get("format", "csv")
        if kind not in DOWNLOAD_TYPES:
            return desk.refused(400, "只能导出为 CSV 或 XLSX 文件。", who)
        query = read_query(request.query_params)
        filters = replace(query.filters, limit=None, offset=0)  # every page
        with runtime.sessions() as session:
            if filters.issue_id is not None and session.get(Issue, filters.issue_id) is None:
                query.errors.append(f"期刊 {filters.issue_id} 不存在。")
            items = [] if query.errors else feedback_list.list_feedback(session, filters)
        if query.errors:
            return desk.refused(400, "没有导出：" + "".join(query.errors), who)
        block = feedback_list.block(items)
        data = (csv_bytes([block]) if kind == "csv"
                else xlsx_bytes("反馈", block, feedback_list.WIDTHS))
        day = clock.to_local(desk.now()).date()
        filtered = any(v for k, v in query.values.items() if k != "page")
        name = f"读者反馈{'（筛选）' if filtered else ''}-{day:%Y%m%d}.{kind}"
        log.info("staff %d exported %d feedback rows", who.id, len(items))
        return desk.download(data, kind, f"feedback-{day:%Y%m%d}.{kind}", name)

    def item_page(request: Request, who: Signed) -> Response:
        feedback_id = int(request.path_params["feedback_id"])
        with runtime.sessions() as session:
            item = feedback_list.get_item(session, feedback_id)
            if item is None:
                return desk.refused(404, f"反馈 {feedback_id} 不存在。", who)
            raw = session.scalar(select(Feedback.raw).where(Feedback.id == feedback_id))
            issue_title = _issue_title(session, item.issue_id)
        message = message_view(raw, item.channel)
        done = request.query_params.get("done", "")
        return desk.page("admin_feedback_item.html.j2", who,
                         item=_row(item, {item.issue_id: issue_title} if item.issue_id else {}),
                         text=item.text, message=message, done=done == "1")

    def raw_message(request: Request, who: Signed) -> Response:
        feedback_id = int(request.path_params["feedback_id"])
        with runtime.sessions() as session:
            row = session.execute(
                select(Feedback.raw, Feedback.channel).where(Feedback.id == feedback_id)
            ).first()
        if row is None or not row.raw:
            return desk.refused(404, f"反馈 {feedback_id} 没有原始消息。", who)
        shown = message_view(row.raw, row.channel)
        name = f"feedback-{feedback_id}{shown.suffix}"
        headers = {**desk.headers, "Content-Disposition": attachment(name, name)}
        return Response(row.raw, media_type=shown.media_type, headers=headers)

    def mark(request: Request, who: Signed, posted: Posted) -> Response:
        back = safe_back(posted.get("back"))
        wanted = posted.getlist("ids")
        ids = [int(i) for i in wanted if i.isdigit() and len(i) <= 9]
        if len(ids) != len(wanted):
            return desk.refused(400, "请求无效：请刷新页面后再试。", who)
        if not ids:
            return desk.redirect(with_param(back, "none", "1"))
        try:
            with transaction(runtime.sessions) as session:
                marked = feedback_list.mark_handled(session, ids, handled_by(who),
                                                    desk.now())
        except Refused:
            return desk.refused(404, "勾选的反馈有的已不存在，请刷新页面后再试。", who)
        newly = sum(1 for m in marked if not m.already)
        log.info("staff %d marked %d feedback rows handled", who.id, newly)
        return desk.redirect(with_param(back, "done", str(newly)))

    return [
        desk.view("/admin/feedback", inbox),
        desk.action("/admin/feedback/handled", mark),
        desk.view("/admin/feedback/export", export),
        desk.view("/admin/feedback/{feedback_id:int}", item_page),
        desk.view("/admin/feedback/{feedback_id:int}/raw", raw_message),
    ]


def _issue_title(session: Session, issue_id: int | None) -> str:
    if issue_id is None:
        return ""
    return session.scalar(select(Issue.title).where(Issue.id == issue_id)) or ""


def _row(item: feedback_list.Item, titles: Mapping[int | None, str]) -> dict[str, object]:
    return {
        "id": item.id, "received_at": item.received_at, "kind": KIND_WORDS.get(item.kind, item.kind),
        "kind_code": item.kind, "channel": channel_word(item.channel),
        "issue_id": item.issue_id, "issue_title": titles.get(item.issue_id, ""),
        "article_id": item.article_id, "article": item.article_words,
        "reader_id": item.reader_id, "reader_name": item.reader_name or "",
        "reader_address": item.reader_address, "sender": item.sender or "",
        "subject": item.subject or "", "excerpt": excerpt(item.text),
        "handled_at": item.handled_at, "handled_by": item.handled_by or "",
    }
