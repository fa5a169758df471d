"""Whom staff see an issue as, when they preview it or send themselves a test copy: a
reader they name, or else a reader who follows everything (an active one if any), or
else a made-up 测试读者. Shared by `dispatch preview`, `dispatch send --to` and the
staff web (web.admin_issues).

A preview or a test copy carries PREVIEW_TOKEN, a well-formed token no delivery has: its
links lead to a 404 page, and an open or a click on it records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from dispatch.db.models import Reader
from dispatch.plan.fanout import whole_issue_reader
from dispatch.readers import status_word
from dispatch.readers.apply import find_reader
from dispatch.render.pipeline import ReaderView

PREVIEW_TOKEN = "previewpreviewpreviewpreviewprev"
TEST_READER = ReaderView(id=0, name="测试读者")


@dataclass(frozen=True)
class AsReader:
    """Whom a preview is rendered as: the view rendering needs, and a warning when that
    reader is sent nothing (停用, 退订)."""

    view: ReaderView
    status: str  # the reader's (dispatch.readers.STATUS_WORDS); "active" for 测试读者
    warning: str | None = None

    @property
    def made_up(self) -> bool:
        return self.view.id == 0


def receives_nothing(reader: Reader) -> str | None:
    """The warning for staff who preview or test-send as a reader who is sent nothing;
    None for an active reader."""
    if reader.status == "active":
        return None
    return (
        f"注意：读者 {reader.id} {reader.name} 的状态是“{status_word(reader.status)}”，"
        "不会收到任何期刊"
    )


def as_reader(reader: Reader) -> AsReader:
    return AsReader(ReaderView.of(reader), reader.status, receives_nothing(reader))


def default_reader(session: Session) -> AsReader:
    """A reader who follows everything (so the preview shows the whole issue), or 测试读者."""
    first = whole_issue_reader(session)
    return AsReader(TEST_READER, "active") if first is None else as_reader(first)


def choose_reader(session: Session, key: str | None) -> AsReader:
    """The reader a KEY names (dispatch.readers.apply.find_reader: an email, a WeChat
    Work user id, `id:N`; Refused if none), or the default reader for no KEY."""
    if not key:
        return default_reader(session)
    return as_reader(find_reader(session, key))
