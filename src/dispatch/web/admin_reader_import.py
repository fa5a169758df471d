"""Importing a reader list (CSV or XLSX) in the staff web, in two steps, as
`dispatch recipients import --dry-run` then `dispatch recipients import`:

    GET  /admin/readers/import           the upload form (and what the last import did)
    POST /admin/readers/import           upload: check the list; its errors by file, row
                                         and column, or what it would add, update and leave
    POST /admin/readers/import/confirm   确认导入: write it all, in one transaction
    POST /admin/readers/import/cancel    drop the uploaded file

The checks and the all-or-nothing rule are the CLI's (readers.apply.read_lists,
import_records). Between the steps the file waits under the instance's var/uploads/
(web.held), bound to the session, for an hour at most. Confirming checks the list again
against the readers as they are then: if what it would do is no longer what the preview
showed (someone changed the readers meanwhile), nothing is written and the new preview is
shown to confirm instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatch.db.session import transaction
from dispatch.errors import Refused, os_reason
from dispatch.limits import MB, READER_LIST_BYTES
from dispatch.readers import COLUMNS, ImportReport, ReaderRecord
from dispatch.readers.apply import (
    apply_lists,
    import_records,
    log_outcome,
    read_lists,
    sort_errors,
)
from dispatch.web.desk import MAX_FORM_BYTES, Desk, Posted, Signed
from dispatch.web.held import Held, Holds, folder_of

log = logging.getLogger(__name__)

# A list as large as the CLI takes, and the form around it.
UPLOAD_LIMIT = READER_LIST_BYTES + MAX_FORM_BYTES
SHOWN_ROWS = 200  # of each list on the preview; the counts say how many in all
_FIELD_WORDS = {"follows_all": "industries"}


def digest(report: ImportReport) -> str:
    """What an import would do, in short: the preview's, compared with the confirm's."""
    what = {"added": report.added, "updated": report.updated, "unchanged": report.unchanged,
            "changes": [c.to_json() for c in report.changes],
            "kept": report.kept_unsubscribed}
    return hashlib.sha256(json.dumps(what, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class Line:
    """One row of the preview's lists."""

    row: int | None
    id: int | None
    name: str
    organization: str
    what: str  # the columns that change, in words


def _fields_words(fields: Sequence[str]) -> str:
    return "、".join(dict.fromkeys(COLUMNS[_FIELD_WORDS.get(f, f)] for f in fields))


def preview_lists(report: ImportReport, records: Sequence[ReaderRecord]) -> dict[str, list[Line]]:
    """The rows that add, update and leave readers unchanged, SHOWN_ROWS of each."""
    by_row = {(r.file, r.row): r for r in records}
    changed = {(c.file, c.row) for c in report.changes}
    added: list[Line] = []
    updated: list[Line] = []
    for c in report.changes:
        rec = by_row.get((c.file, c.row))
        line = Line(c.row, c.id, (rec.name if rec else None) or "", (rec.organization if rec else None) or "",
                    _fields_words(c.fields))
        (added if c.action == "added" else updated).append(line)
    unchanged = [Line(r.row, None, r.name or "", r.organization or "", "")
                 for r in records if (r.file, r.row) not in changed]
    return {"added": added[:SHOWN_ROWS], "updated": updated[:SHOWN_ROWS],
            "unchanged": unchanged[:SHOWN_ROWS]}


def routes(desk: Desk) -> list[Route]:
    def holds() -> Holds:
        return Holds(folder_of(desk.runtime.config), desk.runtime.signing_key, desk.clock)

    def upload_page(who: Signed, message: str = "", report: ImportReport | None = None,
                    done: dict[str, int] | None = None) -> Response:
        return desk.page("admin_reader_import.html.j2", who, step="upload", message=message,
                         errors=report.errors if report else [], done=done,
                         columns=list(COLUMNS.values()),
                         limit_mb=f"{READER_LIST_BYTES / MB:g}")

    def preview_page(who: Signed, held: Held, report: ImportReport,
                     records: Sequence[ReaderRecord], message: str = "") -> Response:
        return desk.page("admin_reader_import.html.j2", who, step="preview", held=held,
                         report=report, digest=digest(report), message=message,
                         lists=preview_lists(report, records), shown=SHOWN_ROWS)

    def form(request: Request, who: Signed) -> Response:
        params = request.query_params
        done = None
        if all(params.get(k, "").isdigit() for k in ("added", "updated", "unchanged")):
            done = {k: int(params[k]) for k in ("added", "updated", "unchanged")}
        return upload_page(who, done=done)

    def upload(request: Request, who: Signed, posted: Posted) -> Response:
        sent = posted.files.get("file")
        if sent is None or not sent.data:
            return upload_page(who, "请选择要导入的名单文件（CSV 或 XLSX）。")
        store = holds()
        try:
            held = store.put(who.cookie, sent.filename, sent.data)
        except OSError as exc:
            log.error("cannot keep an uploaded list in %s: %s", store.folder, exc)
            return upload_page(who, f"无法在服务器上暂存上传的文件（{os_reason(exc)}）；"
                                    "请联系管理员。")
        try:
            report, records = apply_lists(desk.runtime.sessions, [held.path],
                                          names=[held.name], dry_run=True)
        except BaseException:
            store.drop(held)
            raise
        if report.errors:
            return refused(who, store, held, report)
        return preview_page(who, held, report, records)

    def refused(who: Signed, store: Holds, held: Held, report: ImportReport) -> Response:
        """A list with errors: nothing written, the upload dropped, every error shown."""
        store.drop(held)
        log_outcome(report, who.id)
        return upload_page(who, f"名单中有 {len(report.errors)} 处错误，没有导入任何内容；"
                                "请改正后重新上传。", report)

    def confirm(request: Request, who: Signed, posted: Posted) -> Response:
        store = holds()
        held = store.take(who.cookie, posted.get("held"), posted.get("name"), posted.get("token"))
        if held is None:
            return upload_page(who, "上传的文件已经过期（超过 1 小时）或已经导入过了；"
                                    "请重新上传。")
        report, records = read_lists([held.path], names=[held.name])
        changed = False
        try:
            if not report.errors:
                with transaction(desk.runtime.sessions) as session:
                    import_records(session, records, report=report, by=who.id)
                    changed = not report.errors and digest(report) != posted.get("digest")
                    if report.errors or changed:
                        session.rollback()
        except Refused as exc:
            return upload_page(who, str(exc))
        sort_errors(report)
        if report.errors:
            return refused(who, store, held, report)
        if changed:
            return preview_page(who, held, report, records,
                                "在您预览之后，读者名单被改动过（可能有人同时导入或修改了读者）；"
                                "已按现在的名单重新检查，什么也没有写入。请核对后再次确认。")
        store.drop(held)
        log_outcome(report, who.id)
        return desk.redirect(f"/admin/readers/import?added={report.added}"
                             f"&updated={report.updated}&unchanged={report.unchanged}")

    def cancel(request: Request, who: Signed, posted: Posted) -> Response:
        held = holds().take(who.cookie, posted.get("held"), posted.get("name"), posted.get("token"))
        if held is not None:
            holds().drop(held)
        return desk.redirect("/admin/readers/import")

    return [
        desk.view("/admin/readers/import", form),
        desk.action("/admin/readers/import", upload, limit=UPLOAD_LIMIT),
        desk.action("/admin/readers/import/confirm", confirm),
        desk.action("/admin/readers/import/cancel", cancel),
    ]
