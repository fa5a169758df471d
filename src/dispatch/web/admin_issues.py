"""The staff web's issues pages: upload, check the tags, finalize, follow the send.

    GET  /admin/issues                          every issue, newest first; what is scheduled on top
    GET  /admin/issues/new                      the upload form
    POST /admin/issues/new                      a file (.txt, .md, .docx) → a draft, or its errors
    GET  /admin/issues/{id}                     sections, articles and tags; publication; the
                                                live counts; failures; the change log
    GET  /admin/issues/{id}/progress            the counts as an HTML fragment (live.js)
    POST /admin/issues/{id}/articles/{aid}/tags the editor's tags, or back to the automatic ones
    POST /admin/issues/{id}/retag               the keyword rules run again (the file as it is
                                                now); the editor's tags kept
    POST /admin/issues/{id}/finalize            finalize with a publication time
    POST /admin/issues/{id}/reschedule          move the publication time (not gone out yet)
    GET  /admin/issues/{id}/delete              confirm deleting a draft
    POST /admin/issues/{id}/delete              delete the draft
    POST /admin/issues/{id}/retry               queue the failed deliveries again
    /admin/issues/{id}/preview…                 preview and test copy (web.admin_issue_preview)
    GET  /admin/issues/{id}/audience            who would get what (web.admin_issue_audience)

The work is dispatch.editorial's (and lifecycle's, deliver.leases'); each of its
operations keeps its change with who and when (`by=who.id`) in the same transaction, as
the CLI's do. Editors may do all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatch import clock, editorial, issue_summary
from dispatch.db.models import Article, Issue
from dispatch.db.session import transaction
from dispatch.deliver import report
from dispatch.deliver.channel import configured
from dispatch.errors import Hinted, Refused
from dispatch.industries import TAG_CODES, describe
from dispatch.ingest import IngestError, parse_bytes
from dispatch.limits import ISSUE_FILE_BYTES
from dispatch.readers import channel_words
from dispatch.statewords import DELIVERY_WORDS, ISSUE_WORDS
from dispatch.tagging.rules import Rules, RulesError, load_rules
from dispatch.web import admin_issue_audience, admin_issue_preview
from dispatch.web.desk import Desk, Posted, Signed, uploaded_name

log = logging.getLogger(__name__)

MORNING = time(8, 30)  # the bulletin's usual hour: the publication time offered
LEAD_CHARS = 90  # of an article's first paragraph, under its title
DONE = {  # ?done=… after a change (PRG): what the page then says
    "ingested": "已入库为草稿。核对各篇文章的产业标签，然后定稿。",
    "tags": "标签已保存。",
    "finalized": "已定稿：到发布时间自动发送。",
    "publish_at": "发布时间已修改。",
    "deleted": "草稿已删除。",
}


def refusal_words(exc: Refused) -> str:
    """A domain refusal as the staff web says it: without the command-line hint."""
    return exc.reason if isinstance(exc, Hinted) else str(exc)


class IssuePages:
    def __init__(self, desk: Desk):
        self.desk = desk
        self.runtime = desk.runtime

    # -- the list ------------------------------------------------------------------------

    def list_page(self, request: Request, who: Signed) -> Response:
        lateness = timedelta(hours=self.runtime.config.schedule.max_lateness_hours)
        with self.runtime.sessions() as session:
            rows = issue_summary.rows(session, clock.utcnow(), lateness)
        done = request.query_params.get("done", "")
        return self.desk.page("admin_issues.html.j2", who, rows=rows,
                              scheduled=issue_summary.scheduled(rows), words=ISSUE_WORDS,
                              message=DONE["deleted"] if done == "deleted" else "")

    # -- upload --------------------------------------------------------------------------

    def new_page(self, request: Request, who: Signed) -> Response:
        return self._new(who)

    def _new(self, who: Signed, status: int = 200, **values: Any) -> Response:
        values = {"error": None, "same": None, "again": False, "limit_mb": ISSUE_FILE_BYTES >> 20,
                  **values}
        return self.desk.page("admin_issue_new.html.j2", who, status, words=ISSUE_WORDS,
                              **values)

    def upload(self, request: Request, who: Signed, posted: Posted) -> Response:
        again = posted.get("again") == "1"
        uploaded = posted.files.get("file")
        if uploaded is None:
            return self._new(who, 400, again=again,
                             error={"file": "", "line": None, "reason": "请选择要导入的期刊文件。"})
        name = uploaded_name(uploaded.filename)
        try:
            parsed = parse_bytes(uploaded.data, name)
        except IngestError as exc:
            return self._new(who, 400, again=again,
                             error={"file": name, "line": exc.line, "reason": exc.reason})
        rules = self._rules()
        if isinstance(rules, str):
            return self._new(who, 500, again=again, error={
                "file": name, "line": None, "reason": f"{rules}期刊没有入库。请管理员改正。"})
        try:
            with transaction(self.runtime.sessions) as session:
                issue_id = editorial.store_issue(session, parsed, name, rules, again=again,
                                                 by=who.id).id
        except editorial.SameContent as same:
            return self._new(who, 409, again=True, same={"file": name, "issues": same.issues})
        log.info("staff %d ingested issue %d (%s)", who.id, issue_id, parsed.source_format)
        return self.desk.redirect(f"/admin/issues/{issue_id}?done=ingested")

    # -- one issue -----------------------------------------------------------------------

    def issue_page(self, request: Request, who: Signed) -> Response:
        done = request.query_params.get("done", "")
        message = DONE.get(done, "")
        n = request.query_params.get("n", "")
        count = int(n) if n.isdecimal() and len(n) < 10 else 0
        if done == "retried":
            message = f"{count} 个失败的投递已重新排队。"
        elif done == "retagged":
            message = (f"已按关键词规则重新打标签：{count} 篇文章的自动标签有变化，见下方修改记录。"
                       if count else "已按关键词规则重新打标签：自动标签都没有变化。")
        return self._issue(who, int(request.path_params["issue_id"]), message=message)

    def _issue(self, who: Signed, issue_id: int, status: int = 200, *, message: str = "",
               error: str = "", article_error: tuple[int, str] | None = None,
               publish_at: str | None = None) -> Response:
        now = clock.utcnow()
        with self.runtime.sessions() as session:
            try:
                issue = editorial.get_issue(session, issue_id)
            except Refused:
                return self.desk.refused(404, f"期刊 {issue_id} 不存在。", who)
            values = self._issue_values(session, issue, now)
            changes = issue_summary.changes(session, issue_id)
        if publish_at is None:
            publish_at = clock.local_input(
                issue.publish_at if issue.status != "draft" and issue.publish_at
                else clock.next_local(now, MORNING))
        return self.desk.page(
            "admin_issue.html.j2", who, status, **values, changes=changes, message=message,
            error=error, article_error=article_error, publish_at=publish_at,
        )

    def _issue_values(self, session: Session, issue: Issue, now: datetime) -> dict[str, Any]:
        sections = []
        for s in issue.sections:
            articles = []
            for a in s.articles:
                view = editorial.tag_view(a)
                paragraphs = [b["text"] for b in a.blocks if b["kind"] == "paragraph"]
                lead = paragraphs[0] if paragraphs else ""
                articles.append({
                    "id": a.id, "title": a.title, "kind": a.kind, "source": a.source,
                    "lead": lead[:LEAD_CHARS] + ("…" if len(lead) > LEAD_CHARS else ""),
                    "paragraphs": len(paragraphs),
                    "subheadings": [b["text"] for b in a.blocks if b["kind"] == "subheading"],
                    "codes": view.codes, "overridden": view.overridden,
                    "words": view.words, "auto_words": describe(False, view.auto),
                })
            sections.append({"title": s.title, "articles": articles})
        failures = [
            {"reader": f.reader_id, "name": f.reader_name, "channel": channel_words((f.channel,)),
             "attempts": f.attempts, "reason": report.reason_words(f.reason)}
            for f in report.failures(session, issue.id)
        ]
        return {
            "issue": {
                "id": issue.id, "title": issue.title, "number": issue.number,
                "status": issue.status, "status_words": ISSUE_WORDS[issue.status],
                "publish_at": issue.publish_at, "finalized_at": issue.finalized_at,
                "created_at": issue.created_at, "source_file": issue.source_file,
                "issue_date": issue.issue_date,
                "articles": len(issue.articles), "sections": len(issue.sections),
                "movable": issue.status == "finalized" and issue.fanned_out_at is None,
            },
            "frozen": editorial.frozen_reason(issue, "改标签"),
            "sections": sections,
            "failures": failures,
            "progress": self._progress(session, issue, now),
        }

    def _progress(self, session: Session, issue: Issue, now: datetime) -> dict[str, Any]:
        by_channel = report.counts(session, issue.id)
        pending, total = report.pending(by_channel)
        serving = configured(self.runtime.config)
        rows = []
        for channel, states in by_channel.items():
            if not sum(states.values()):
                continue
            rows.append({
                "channel": channel_words((channel,)) or channel,
                "counts": [states.get(s, 0) for s in DELIVERY_WORDS],
                "total": sum(states.values()),
                "unserved": states.get("queued", 0) if channel not in serving else 0,
            })
        return {
            "status_words": ISSUE_WORDS[issue.status], "rows": rows, "states": DELIVERY_WORDS,
            "pending": pending, "total": total, "publish_at": issue.publish_at,
            "done": not issue_summary.moving(issue.status, pending, issue.publish_at, now),
        }

    def progress(self, request: Request, who: Signed) -> Response:
        issue_id = int(request.path_params["issue_id"])
        with self.runtime.sessions() as session:
            # The issue's row only (its status and time): every open page asks every 2 s,
            # and loading its articles would cost as much as the page (8,495 articles:
            # 0.55 s a poll).
            issue = session.get(Issue, issue_id)
            if issue is None:
                return self.desk.refused(404, f"期刊 {issue_id} 不存在。", who)
            progress = self._progress(session, issue, clock.utcnow())
        response = self.desk.page("admin_issue_progress.html.j2", who, progress=progress,
                                  issue_id=issue_id)
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- tags ----------------------------------------------------------------------------

    def tags(self, request: Request, who: Signed, posted: Posted) -> Response:
        issue_id = int(request.path_params["issue_id"])
        article_id = int(request.path_params["article_id"])
        chosen = posted.getlist("tag")
        if posted.get("action") == "auto":
            codes: list[str] | None = None
        else:
            unknown = [c for c in chosen if c not in TAG_CODES]
            if unknown:
                return self._issue(who, issue_id, 400,
                                   article_error=(article_id, "标签：有不认识的产业，请刷新页面后再选。"))
            codes = [c for c in TAG_CODES if c in chosen]
        try:
            with transaction(self.runtime.sessions) as session:
                article = session.get(Article, article_id)
                if article is None or article.section.issue_id != issue_id:
                    return self.desk.refused(404, f"期刊 {issue_id} 里没有文章 {article_id}。", who)
                editorial.set_tags(session, article_id, codes, by=who.id)
        except Refused as exc:
            return self._issue(who, issue_id, 400, article_error=(article_id, refusal_words(exc)))
        return self.desk.redirect(f"/admin/issues/{issue_id}?done=tags#a{article_id}")

    def _rules(self) -> Rules | str:
        """The keyword rules as the file is now (an admin may edit it while the service
        runs: uploads and retagging follow at once), or what is wrong with it."""
        config = self.runtime.config
        try:
            return load_rules(config.path(config.tagging.rules))
        except RulesError as exc:
            return f"关键词规则文件有错：{exc}。"

    def retag(self, request: Request, who: Signed, posted: Posted) -> Response:
        issue_id = int(request.path_params["issue_id"])
        rules = self._rules()
        if isinstance(rules, str):
            return self._issue(who, issue_id, 500, error=f"{rules}没有重新打标签。请管理员改正。")
        try:
            with transaction(self.runtime.sessions) as session:
                issue = editorial.get_issue(session, issue_id)
                changed = editorial.retag(session, issue, rules, by=who.id)
        except Refused as exc:
            return self._issue(who, issue_id, 409, error=refusal_words(exc))
        log.info("staff %d retagged issue %d: %d articles changed", who.id, issue_id, len(changed))
        return self.desk.redirect(f"/admin/issues/{issue_id}?done=retagged&n={len(changed)}")

    # -- publication ---------------------------------------------------------------------

    def finalize(self, request: Request, who: Signed, posted: Posted) -> Response:
        def apply(session: Session, issue_id: int, when: datetime) -> None:
            editorial.finalize(session, issue_id, when, by=who.id)

        return self._publication(request, who, posted, apply, "finalized")

    def reschedule(self, request: Request, who: Signed, posted: Posted) -> Response:
        def apply(session: Session, issue_id: int, when: datetime) -> None:
            editorial.reschedule(session, issue_id, when, by=who.id)

        return self._publication(request, who, posted, apply, "publish_at")

    def _publication(self, request: Request, who: Signed, posted: Posted,
                     apply: Callable[[Session, int, datetime], None], done: str) -> Response:
        """A publication time from the form, set by `apply` in one transaction; a bad or
        refused time: the issue's page again, the time as typed, nothing changed."""
        issue_id = int(request.path_params["issue_id"])
        text = posted.get("publish_at")
        when = self._publish_time(text)
        if isinstance(when, str):
            return self._issue(who, issue_id, 400, error=when, publish_at=text)
        try:
            with transaction(self.runtime.sessions) as session:
                apply(session, issue_id, when)
        except Refused as exc:
            return self._issue(who, issue_id, 400, error=refusal_words(exc), publish_at=text)
        return self.desk.redirect(f"/admin/issues/{issue_id}?done={done}")

    @staticmethod
    def _publish_time(text: str) -> datetime | str:
        """The entered time (naive UTC), or what is wrong with it."""
        if not text.strip():
            return "发布时间：请填写（北京时间）。"
        try:
            return clock.parse_local_input(text)
        except ValueError:
            return f"发布时间：“{text.strip()[:40]}”不是有效的日期和时间，请按 年-月-日 时:分 填写北京时间。"

    # -- delete --------------------------------------------------------------------------

    def delete_page(self, request: Request, who: Signed) -> Response:
        issue_id = int(request.path_params["issue_id"])
        with self.runtime.sessions() as session:
            try:
                issue = editorial.get_issue(session, issue_id)
            except Refused:
                return self.desk.refused(404, f"期刊 {issue_id} 不存在。", who)
            values = {"id": issue.id, "title": issue.title, "number": issue.number,
                      "articles": len(issue.articles), "source_file": issue.source_file,
                      "frozen": editorial.frozen_reason(issue, "删除")}
        return self.desk.page("admin_issue_delete.html.j2", who, issue=values)

    def delete(self, request: Request, who: Signed, posted: Posted) -> Response:
        issue_id = int(request.path_params["issue_id"])
        try:
            with transaction(self.runtime.sessions) as session:
                editorial.delete_draft(session, issue_id, by=who.id)
        except Refused as exc:
            return self._issue(who, issue_id, 409, error=refusal_words(exc))
        log.info("staff %d deleted draft issue %d", who.id, issue_id)
        return self.desk.redirect("/admin/issues?done=deleted")

    # -- failures ------------------------------------------------------------------------

    def retry(self, request: Request, who: Signed, posted: Posted) -> Response:
        issue_id = int(request.path_params["issue_id"])
        try:
            with transaction(self.runtime.sessions) as session:
                n = editorial.retry_failed(session, issue_id, by=who.id)
        except Refused as exc:
            return self._issue(who, issue_id, 409, error=refusal_words(exc))
        return self.desk.redirect(f"/admin/issues/{issue_id}?done=retried&n={n}")


def routes(desk: Desk) -> list[Route]:
    pages = IssuePages(desk)
    one = "/admin/issues/{issue_id:int}"
    return [
        desk.view("/admin/issues", pages.list_page),
        desk.view("/admin/issues/new", pages.new_page),
        desk.action("/admin/issues/new", pages.upload, limit=ISSUE_FILE_BYTES),
        desk.view(one, pages.issue_page),
        desk.view(f"{one}/progress", pages.progress),
        desk.action(f"{one}/articles/{{article_id:int}}/tags", pages.tags),
        desk.action(f"{one}/retag", pages.retag),
        desk.action(f"{one}/finalize", pages.finalize),
        desk.action(f"{one}/reschedule", pages.reschedule),
        desk.view(f"{one}/delete", pages.delete_page),
        desk.action(f"{one}/delete", pages.delete),
        desk.action(f"{one}/retry", pages.retry),
        *admin_issue_preview.routes(desk),
        *admin_issue_audience.routes(desk),
    ]
