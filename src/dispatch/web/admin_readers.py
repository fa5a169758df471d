"""The staff web's readers pages (editors and admins):

    GET  /admin/readers[?q=&industry=&group=&channel=&status=&bounced=1&unsubscribed=&page=]
                                        the list: search, filters, 50 a page
    GET  /admin/readers/export?format=csv|xlsx&…   the filtered list as a file to download
    GET  /admin/readers/{id}            one reader: fields, deliveries, opens and clicks,
                                        feedback, and every change with who made it
    /admin/readers/new, /{id}/edit, /{id}/deactivate, /{id}/activate
                                        add, edit, stop and start sending (web.admin_reader_edit)
    /admin/readers/import…              import a list: check, then confirm (web.admin_reader_import)

The filters are a GET form: a filtered page's address can be kept and shared. The database
does the filtering and the paging (dispatch.readers.query).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatch import clock
from dispatch.db.models import Reader
from dispatch.industries import BY_CODE, describe
from dispatch.readers import (
    CHANNEL_ORDER,
    CHANNEL_WORDS,
    COLUMNS,
    STATE_WORDS,
    channel_words,
    state_words,
)
from dispatch.readers import activity as act
from dispatch.readers.apply import Listed, list_readers
from dispatch.readers.changes import ACTIVATED_WORDS, pause_date
from dispatch.readers.export import csv_bytes, reader_cells, xlsx_bytes
from dispatch.readers.query import (
    ReaderFilter,
    condition,
    count_readers,
    groups,
    page_of_readers,
)
from dispatch.web import admin_reader_edit, admin_reader_import
from dispatch.web.desk import DOWNLOAD_TYPES, Desk, Signed, page_number

PAGE_SIZE = 50
SHOWN = 100  # rows of each list on a reader's page; the count says how many in all
# The filters' fields in the query string, in the order links write them.
FILTER_FIELDS = ("q", "industry", "group", "channel", "status", "bounced", "unsubscribed")
UNSUBSCRIBED_WORDS = {"": "不限", "only": "只看已退订", "hide": "不含已退订"}
DONE_WORDS = {
    "added": "已添加读者。",
    "saved": "已保存修改。",
    "unchanged": "没有修改任何内容。",
    "deactivated": "已停用：不再给这位读者发送快报。",
    "already": "这位读者本来就不会收到快报。",
}


@dataclass(frozen=True)
class Chosen:
    """The filters as the query string gave them (unknown values dropped) and as a filter."""

    values: dict[str, str]
    filter: ReaderFilter

    def query(self, **extra: str | int) -> str:
        """The query string of these filters (and ``extra``), for links."""
        pairs = [(k, v) for k, v in self.values.items() if v]
        pairs += [(k, str(v)) for k, v in extra.items()]
        return urlencode(pairs)


def chosen(request: Request) -> Chosen:
    """The filters of a list or export request. A value no choice has (a hand-made
    address) is dropped: the list shows everyone for that filter, never an error."""
    params = request.query_params
    text = params.get("q", "").strip()[:200]
    industry = params.get("industry", "")
    industry = industry if industry in BY_CODE else ""
    group = params.get("group", "").strip()[:100]
    channel = params.get("channel", "")
    channel = channel if channel in CHANNEL_ORDER else ""
    status = params.get("status", "")
    status = status if status in STATE_WORDS else ""
    bounced = "1" if params.get("bounced") == "1" else ""
    unsubscribed = params.get("unsubscribed", "")
    unsubscribed = unsubscribed if unsubscribed in UNSUBSCRIBED_WORDS else ""
    values = {"q": text, "industry": industry, "group": group, "channel": channel,
              "status": status, "bounced": bounced, "unsubscribed": unsubscribed}
    return Chosen(values, ReaderFilter(
        text=text, industries=(industry,) if industry else None, group=group or None,
        channels=(channel,) if channel else None, state=status or None, bounced=bool(bounced),
        unsubscribed=unsubscribed,
    ))


def row_of(listed: Listed, now: datetime) -> dict[str, object]:
    s = listed.state
    return {
        "id": listed.id, "name": s.name, "organization": s.organization,
        "position": s.position, "group": s.group,
        "industries": describe(s.follows_all, s.industries),
        "channels": channel_words(s.channels), "state": state_words(listed.states(now)),
        "normal": listed.states(now) == ("active",),
    }


def routes(desk: Desk) -> list[Route]:
    def readers_list(request: Request, who: Signed) -> Response:
        picked = chosen(request)
        now = desk.now()
        where = condition(picked.filter, now)
        with desk.runtime.sessions() as session:
            total = count_readers(session, where)
            pages = max(1, -(-total // PAGE_SIZE))
            page = min(page_number(request), pages)
            listed = page_of_readers(session, where, offset=(page - 1) * PAGE_SIZE,
                                     limit=PAGE_SIZE)
            group_choices = groups(session)
        if picked.values["group"] and picked.values["group"] not in group_choices:
            group_choices.append(picked.values["group"])
        return desk.page(
            "admin_readers.html.j2", who, rows=[row_of(r, now) for r in listed], total=total,
            page=page, pages=pages, first=(page - 1) * PAGE_SIZE + 1, values=picked.values,
            filtered=not picked.filter.empty, groups=group_choices,
            channels=[(c, CHANNEL_WORDS[c][0]) for c in CHANNEL_ORDER],
            states=[(s, words[0]) for s, words in STATE_WORDS.items()],
            unsubscribed_words=UNSUBSCRIBED_WORDS,
            link=lambda **extra: picked.query(**extra),
        )

    def export(request: Request, who: Signed) -> Response:
        kind = request.query_params.get("format", "csv")
        if kind not in DOWNLOAD_TYPES:
            return desk.refused(400, "只能导出为 CSV 或 XLSX 文件。", who)
        picked = chosen(request)
        with desk.runtime.sessions() as session:
            states = [r.state for r in list_readers(session, condition(picked.filter,
                                                                       desk.now()))]
        data = csv_bytes(states) if kind == "csv" else xlsx_bytes(states)
        day = clock.to_local(desk.now()).date()
        name = f"读者名单{'（筛选）' if not picked.filter.empty else ''}-{day:%Y%m%d}.{kind}"
        return desk.download(data, kind, f"readers-{day:%Y%m%d}.{kind}", name)

    def reader_page(request: Request, who: Signed) -> Response:
        reader_id = int(request.path_params["id"])  # past the column's range: 404 by the desk
        now = desk.now()
        with desk.runtime.sessions() as session:
            found = list_readers(session, Reader.id == reader_id)
            if not found:
                return desk.refused(404, "没有这位读者。", who)
            listed = found[0]
            deliveries = act.deliveries(session, listed.id, SHOWN)
            events = act.events(session, listed.id, SHOWN)
            feedback = act.feedback(session, listed.id, SHOWN)
            changes = act.changes(session, listed.id, SHOWN)
        states = listed.states(now)
        fields = list(zip(COLUMNS.values(), reader_cells(listed.state), strict=True))
        fields[-1] = ("状态", state_words(states))
        done = DONE_WORDS.get(request.query_params.get("done", ""))
        if "activated" in request.query_params:
            words = [ACTIVATED_WORDS[f] for f in request.query_params["activated"].split(",")
                     if f in ACTIVATED_WORDS]
            done = "；".join(words) + "。" if words else "这位读者本来就是正常状态。"
        return desk.page(
            "admin_reader.html.j2", who, reader=listed, fields=fields, done=done,
            paused_until=(clock.cn_date(pause_date(listed.paused_until))
                          if "paused" in states and listed.paused_until else ""),
            can_deactivate=listed.state.status == "active",
            can_activate=states != ("active",), deliveries=deliveries, events=events,
            feedback=feedback, changes=changes,
        )

    return [
        desk.view("/admin/readers", readers_list),
        desk.view("/admin/readers/export", export),
        *admin_reader_import.routes(desk),
        *admin_reader_edit.routes(desk),
        desk.view("/admin/readers/{id:int}", reader_page),
    ]
