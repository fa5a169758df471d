"""Adding and changing one reader in the staff web (editors and admins):

    GET|POST /admin/readers/new              add a reader
    GET|POST /admin/readers/{id}/edit        change a reader's fields
    GET|POST /admin/readers/{id}/deactivate  stop sending to them (a page asks first)
    GET|POST /admin/readers/{id}/activate    send again (asks first; a reader who
                                             unsubscribed only at their own request)

The form's fields are the lists' columns, checked by the rules of an import and of
`recipients add / set` (readers.validate.build_record, readers.apply.add_reader /
update_reader, readers.changes.activate). A refused form comes back with what was typed
and each problem under its field; nothing is written. Every change is logged with the
staff member who made it (reader_changes.staff_id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, selectinload
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatch.db.models import Reader
from dispatch.db.session import transaction
from dispatch.industries import ALL_NAME
from dispatch.readers import CHANNEL_ORDER, CHANNEL_WORDS, COLUMNS, ListProblem, ReaderRecord
from dispatch.readers.apply import RecordRefused, add_reader, set_status, update_reader
from dispatch.readers.changes import StillUnsubscribed, activate
from dispatch.readers.validate import build_record
from dispatch.web.desk import Desk, Posted, Signed

TEXT_FIELDS = ("name", "organization", "position", "group", "email", "wecom_userid")
FORM_NAME = "表单"  # where a problem is, as build_record's `file`: not shown
FIELD_OF_COLUMN = {label: f for f, label in COLUMNS.items()}


@dataclass
class ReaderForm:
    """What the form shows: the text fields, the industries ticked, 全部, the channels."""

    values: dict[str, str] = field(default_factory=lambda: dict.fromkeys(TEXT_FIELDS, ""))
    industries: list[str] = field(default_factory=list)
    follows_all: bool = False
    channels: list[str] = field(default_factory=list)

    @classmethod
    def posted(cls, posted: Posted) -> ReaderForm:
        return cls({f: posted.get(f) for f in TEXT_FIELDS}, posted.getlist("industries"),
                   posted.get("follows_all") == "1", posted.getlist("channels"))

    @classmethod
    def of(cls, reader: Reader) -> ReaderForm:
        return cls(
            {"name": reader.name, "organization": reader.organization or "",
             "position": reader.position or "", "group": reader.group or "",
             "email": reader.email or "", "wecom_userid": reader.wecom_userid or ""},
            list(reader.industries), bool(reader.follows_all), list(reader.channels),
        )

    def record(self) -> tuple[ReaderRecord | None, list[ListProblem]]:
        """The reader the form gives, checked as a list's row is: every field given (an
        empty address removes it; no channel ticked: by the addresses given)."""
        cells = dict(self.values)
        # Codes, as a list may write them too: the checkboxes' values.
        cells["industries"] = ALL_NAME if self.follows_all else "、".join(self.industries)
        cells["channels"] = "、".join(self.channels)
        return build_record(cells, file=FORM_NAME, row=None)


def problems_by_field(problems: Sequence[ListProblem]) -> tuple[dict[str, list[str]], list[str]]:
    """Each field's messages, and every message with its field's name (for the summary)."""
    by_field: dict[str, list[str]] = {}
    summary = []
    for p in problems:
        f = FIELD_OF_COLUMN.get(p.column or "", "")
        by_field.setdefault(f, []).append(p.message)
        named = not p.column or p.message.startswith(p.column)  # 姓名为空, 邮箱“…”格式不正确
        summary.append(p.message if named else f"{p.column}：{p.message}")
    return by_field, summary


def routes(desk: Desk) -> list[Route]:
    def form_page(who: Signed, form: ReaderForm, reader: tuple[int, str] | None,
                  problems: Sequence[ListProblem] = ()) -> Response:
        """The add form (``reader`` None) or a reader's (id, name) edit form."""
        by_field, summary = problems_by_field(problems)
        return desk.page(
            "admin_reader_form.html.j2", who, form=form, errors=by_field, summary=summary,
            reader_id=reader[0] if reader else None, reader_name=reader[1] if reader else "",
            labels=COLUMNS, channels=[(c, CHANNEL_WORDS[c][0]) for c in CHANNEL_ORDER],
        )

    def _reader(session: Session, request: Request) -> Reader | None:
        # The desk's guard answered 404 already for an id past the column's range.
        return session.get(Reader, int(request.path_params["id"]), options=(
            selectinload(Reader.industry_rows), selectinload(Reader.channel_rows)))

    def new_form(request: Request, who: Signed) -> Response:
        return form_page(who, ReaderForm(), None)

    def add(request: Request, who: Signed, posted: Posted) -> Response:
        form = ReaderForm.posted(posted)
        record, problems = form.record()
        if record is not None:
            try:
                with transaction(desk.runtime.sessions) as session:
                    reader_id = add_reader(session, record, by=who.id).id
            except RecordRefused as exc:
                problems = exc.errors
        if problems:
            return form_page(who, form, None, problems)
        return desk.redirect(f"/admin/readers/{reader_id}?done=added")

    def edit_form(request: Request, who: Signed) -> Response:
        with desk.runtime.sessions() as session:
            reader = _reader(session, request)
            if reader is None:
                return desk.refused(404, "没有这位读者。", who)
            return form_page(who, ReaderForm.of(reader), (reader.id, reader.name))

    def edit(request: Request, who: Signed, posted: Posted) -> Response:
        with desk.runtime.sessions() as session:
            reader = _reader(session, request)
            if reader is None:
                return desk.refused(404, "没有这位读者。", who)
            shown = (reader.id, reader.name)
        form = ReaderForm.posted(posted)
        record, problems = form.record()
        changed: tuple[str, ...] = ()
        if record is not None:
            try:
                with transaction(desk.runtime.sessions) as session:
                    reader = _reader(session, request)
                    if reader is None:
                        return desk.refused(404, "没有这位读者。", who)
                    changed = update_reader(session, reader, record, by=who.id)
            except RecordRefused as exc:
                problems = exc.errors
        if problems:
            return form_page(who, form, shown, problems)
        return desk.redirect(f"/admin/readers/{shown[0]}?done={'saved' if changed else 'unchanged'}")

    def status_page(request: Request, who: Signed, action: str, message: str = "") -> Response:
        with desk.runtime.sessions() as session:
            reader = _reader(session, request)
            if reader is None:
                return desk.refused(404, "没有这位读者。", who)
            return desk.page(
                "admin_reader_status.html.j2", who, action=action, reader_id=reader.id,
                name=reader.name, reader_status=reader.status, paused=reader.paused_until is not None,
                suspended=reader.email_suspended_at is not None, message=message,
            )

    def deactivate_page(request: Request, who: Signed) -> Response:
        return status_page(request, who, "deactivate")

    def deactivate(request: Request, who: Signed, posted: Posted) -> Response:
        with transaction(desk.runtime.sessions) as session:
            reader = _reader(session, request)
            if reader is None:
                return desk.refused(404, "没有这位读者。", who)
            changed = reader.status != "unsubscribed" and set_status(
                session, reader, "inactive", by=who.id)
            reader_id = reader.id
        return desk.redirect(f"/admin/readers/{reader_id}?done="
                             f"{'deactivated' if changed else 'already'}")

    def activate_page(request: Request, who: Signed) -> Response:
        return status_page(request, who, "activate")

    def activate_post(request: Request, who: Signed, posted: Posted) -> Response:
        try:
            with transaction(desk.runtime.sessions) as session:
                reader = _reader(session, request)
                if reader is None:
                    return desk.refused(404, "没有这位读者。", who)
                done = activate(session, reader, resubscribe=posted.get("resubscribe") == "1",
                                by=who.id)
                reader_id = reader.id
        except StillUnsubscribed:
            return status_page(request, who, "activate",
                               "这位读者已退订：只有读者本人要求重新接收时，才能勾选确认并恢复发送。")
        return desk.redirect(f"/admin/readers/{reader_id}?activated={','.join(done)}")

    return [
        desk.view("/admin/readers/new", new_form),
        desk.action("/admin/readers/new", add),
        desk.view("/admin/readers/{id:int}/edit", edit_form),
        desk.action("/admin/readers/{id:int}/edit", edit),
        desk.view("/admin/readers/{id:int}/deactivate", deactivate_page),
        desk.action("/admin/readers/{id:int}/deactivate", deactivate),
        desk.view("/admin/readers/{id:int}/activate", activate_page),
        desk.action("/admin/readers/{id:int}/activate", activate_post),
    ]
