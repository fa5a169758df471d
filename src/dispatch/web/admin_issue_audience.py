"""The staff web's 谁会收到什么: who a send of an issue would reach, by which channels,
and what each reader's digest recommends (`dispatch send --dry-run`). Nothing is sent.

    GET  /admin/issues/{id}/audience[?page=N]   the deliveries by channel, and the readers
                                                50 a page, each linked to their page and
                                                to the preview as them

The work is dispatch.plan.dry_run's, one page of readers at a time: 10,000 readers cost
the database a count and a page, and the page's 50 selections. A finalized issue that
has not gone out is worked out for its publication time, when the scheduler sends it.
"""

from __future__ import annotations

from math import ceil

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatch.db.models import Issue
from dispatch.errors import Refused
from dispatch.plan import dry_run
from dispatch.readers import CHANNEL_ORDER, channel_words
from dispatch.statewords import ISSUE_WORDS
from dispatch.web.desk import Desk, Signed, page_number

PAGE_SIZE = 50


def routes(desk: Desk) -> list[Route]:
    runtime = desk.runtime

    def audience(request: Request, who: Signed) -> Response:
        issue_id = int(request.path_params["issue_id"])
        page = page_number(request)

        def page_of(session: Session) -> dry_run.Audience:
            return dry_run.audience(session, issue_id, on_time=True,
                                    offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)

        with runtime.sessions() as session:
            try:
                found = page_of(session)
            except Refused:
                return desk.refused(404, f"期刊 {issue_id} 不存在。", who)
            pages = max(1, ceil(found.readers / PAGE_SIZE))
            if page > pages:  # past the end (readers stopped meanwhile): the last page
                page = pages
                found = page_of(session)
            issue = session.get(Issue, issue_id)  # loaded already by dry_run
            if issue is None:
                return desk.refused(404, f"期刊 {issue_id} 不存在。", who)
            facts = {"id": issue.id, "title": issue.title, "number": issue.number,
                     "status": issue.status, "status_words": ISSUE_WORDS[issue.status],
                     "publish_at": issue.publish_at}
        rows = [{"id": r.reader, "name": r.name, "channels": channel_words(r.channels),
                 "recommended": r.recommended, "others": r.others, "whole": r.whole_issue}
                for r in found.rows]
        return desk.page(
            "admin_issue_audience.html.j2", who, issue=facts, published=found.published,
            readers=found.readers, deliveries=sum(found.by_channel.values()),
            by_channel=[(channel_words((c,)), found.by_channel[c])
                        for c in CHANNEL_ORDER if c in found.by_channel],
            rows=rows, page=page, pages=pages, first=(page - 1) * PAGE_SIZE + 1,
        )

    return [desk.view("/admin/issues/{issue_id:int}/audience", audience)]
