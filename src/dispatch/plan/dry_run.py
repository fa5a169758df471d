"""Who a send would reach and what each reader would get, sending nothing: `dispatch send
--dry-run` and the staff web's 谁会收到什么 (web.admin_issue_audience).

Whom: dispatch.plan.fanout's audience, by the conditions planning uses, at the issue's
publication time. What: each reader's selection (dispatch.render.selection), as their
digest recommends it. A page of readers at a time, so 10,000 readers cost one page's work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from dispatch import editorial
from dispatch.plan import fanout
from dispatch.render.pipeline import ReaderView
from dispatch.render.selection import Selection, articles_for
from dispatch.render.views import article_views, tags_of


@dataclass(frozen=True)
class Row:
    """One reader: by which channels, and the titles their digest recommends (the whole
    issue for a reader who follows 全部); `others`: how many articles come after them."""

    reader: int
    name: str
    channels: list[str]
    recommended: list[str]
    others: int
    whole_issue: bool


@dataclass(frozen=True)
class Audience:
    issue: int
    published: datetime  # naive UTC: whom it reaches is decided at this time
    readers: int  # in all
    by_channel: dict[str, int]  # deliveries planning would make, per channel
    rows: list[Row]  # the readers asked for, by id


def audience(session: Session, issue_id: int, *, on_time: bool = False, offset: int = 0,
             limit: int | None = None) -> Audience:
    """Who planning the issue would reach, and `limit` of them from `offset` (all for
    None) with what they would get. Refused for an issue that does not exist.

    As `dispatch send` would plan it now; `on_time`: a finalized issue that has not gone
    out as the scheduler will plan it, at its publication time (a reader paused until
    before then gets it)."""
    issue = editorial.get_issue(session, issue_id)
    view = article_views(issue)
    tags = tags_of(view)
    titles = {a.id: a.title for a in view.articles}
    waiting = on_time and issue.status == "finalized" and issue.fanned_out_at is None
    published = fanout.publication_time(
        session, issue_id, issue.publish_at if waiting and issue.publish_at else None)
    # Readers with the same interests get the same selection: few sets, many readers.
    chosen: dict[tuple[bool, frozenset[str]], Selection] = {}
    rows = []
    for reader, channels in fanout.audience(session, published, offset=offset, limit=limit):
        r = ReaderView.of(reader)
        key = (r.follows_all, r.industries)
        if key not in chosen:
            chosen[key] = articles_for(tags, r.follows_all, r.industries)
        sel = chosen[key]
        rows.append(Row(reader.id, reader.name, channels, [titles[i] for i in sel.recommended],
                        len(sel.others), sel.whole_issue))
    return Audience(
        issue_id, published, fanout.audience_count(session, published),
        fanout.audience_by_channel(session, published), rows,
    )
