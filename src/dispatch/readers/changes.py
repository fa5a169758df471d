"""Changes to one reader beyond the lists: their preferences, a pause, an email suspension
lifted. Each change is kept in reader_changes with who made it (its source: "page" for the
reader's own preferences page, "staff" for the CLI), so staff can see where it came from.

What the lists hold (industries, channels, status) goes through the same merge, checks and
log as an import or `recipients set` (dispatch.readers.apply): one place for those rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch import clock
from dispatch.db.models import Reader, ReaderChange
from dispatch.errors import Refused
from dispatch.readers import CHANNEL_WORDS, ReaderRecord, status_word
from dispatch.readers.apply import is_paused, log_change, set_status, update_reader

log = logging.getLogger(__name__)


# --- pausing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PauseLength:
    code: str  # what the page's form posts
    words: str  # what the reader reads
    days: int = 0
    months: int = 0


PAUSE_LENGTHS: tuple[PauseLength, ...] = (
    PauseLength("1w", "1 周", days=7),
    PauseLength("2w", "2 周", days=14),
    PauseLength("1m", "1 个月", months=1),
    PauseLength("3m", "3 个月", months=3),
)
PAUSE_BY_CODE: dict[str, PauseLength] = {p.code: p for p in PAUSE_LENGTHS}


def _add_months(day: date, months: int) -> date:
    """The same day ``months`` later; the month's last day when it is shorter (1月31日 + 1
    个月 = 2月28日)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    following = date(year + month // 12, month % 12 + 1, 1)
    return date(year, month, min(day.day, (following - timedelta(days=1)).day))


def pause_end(length: PauseLength, now: datetime) -> datetime:
    """When a pause asked for at ``now`` (naive UTC) ends: the start (00:00, Asia/Shanghai)
    of the day that far ahead, so 暂停至 12月15日 means the issues of the 15th come again."""
    today = clock.to_local(now).date()
    end = _add_months(today, length.months) + timedelta(days=length.days)
    local = datetime.combine(end, time(), tzinfo=clock.LOCAL_TZ)
    return local.astimezone(UTC).replace(tzinfo=None)


def pause_date(paused_until: datetime) -> date:
    """The day a pause ends, as the reader reads it (暂停至 …)."""
    return clock.to_local(paused_until).date()


def _stamp(value: datetime | None) -> str | None:
    """A time as the change log writes it (naive UTC, ISO)."""
    return None if value is None else value.isoformat(timespec="seconds")


def pause(session: Session, reader: Reader, until: datetime, *, source: str) -> bool:
    """Send the reader nothing published before ``until``; True if that changed anything."""
    if reader.paused_until == until:
        return False
    log_change(session, reader.id, "paused_until", _stamp(reader.paused_until), _stamp(until),
               source=source)
    reader.paused_until = until
    session.flush()
    log.info("reader %s paused (%s)", reader.id, source)
    return True


def resume(session: Session, reader: Reader, *, source: str, now: datetime | None = None,
           by: int | None = None) -> bool:
    """End a reader's pause now; True if they were paused. A pause already over is
    cleared without a log entry: nothing changes for the reader."""
    if reader.paused_until is None:
        return False
    paused = is_paused(reader.paused_until, now or clock.utcnow())
    if paused:
        log_change(session, reader.id, "paused_until", _stamp(reader.paused_until), None,
                   source=source, by=by)
        log.info("reader %s resumed (%s)", reader.id, source)
    reader.paused_until = None
    session.flush()
    return paused


# --- the email suspension ------------------------------------------------------------------


def suspend_email(session: Session, reader: Reader, now: datetime, *, source: str) -> None:
    """Stop mailing the reader's email (the bounce rule); WeChat Work still goes."""
    reader.email_suspended_at = now
    log_change(session, reader.id, "email_suspended_at", None, _stamp(now), source=source)
    session.flush()
    log.info("reader %s: email suspended after %s hard bounces (%s)",
             reader.id, reader.email_bounces, source)


def lift_email_suspension(session: Session, reader: Reader, *, source: str = "staff",
                          by: int | None = None) -> bool:
    """Mail the reader's email again after the bounce rule suspended it: the count of
    bounces starts again at 0. True if it was suspended."""
    if reader.email_suspended_at is None:
        return False
    log_change(session, reader.id, "email_suspended_at", _stamp(reader.email_suspended_at),
               None, source=source, by=by)
    reader.email_suspended_at = None
    reader.email_bounces = 0
    session.flush()
    log.info("reader %s: email suspension lifted (%s)", reader.id, source)
    return True


# --- staff: stop and start sending ----------------------------------------------------------

# What `activate` did, by the field it changed, as staff read it.
ACTIVATED_WORDS = {
    "status": "已恢复发送（状态改为正常）",
    "paused_until": "已取消读者设置的暂停",
    "email_suspended_at": "已恢复发送邮件（退信停发已解除）",
}


class StillUnsubscribed(Refused):
    """Staff asked to send to a reader who unsubscribed, without the reader's own request."""


def activate(session: Session, reader: Reader, *, resubscribe: bool = False,
             by: int | None = None) -> tuple[str, ...]:
    """Send to the reader again: status 正常, their own pause ended, an email suspended by
    the bounce rule mailed again (staff have checked the address). The fields changed, in
    ACTIVATED_WORDS' order. A reader who unsubscribed comes back only when they asked
    (``resubscribe``); else StillUnsubscribed."""
    if reader.status == "unsubscribed" and not resubscribe:
        raise StillUnsubscribed(f"读者 {reader.id} 已退订；只有读者本人要求重新接收时才能恢复发送")
    done = (
        ("status", set_status(session, reader, "active", source="staff", by=by)),
        ("paused_until", resume(session, reader, source="staff", by=by)),
        ("email_suspended_at", lift_email_suspension(session, reader, by=by)),
    )
    return tuple(f for f, changed in done if changed)


# --- preferences ---------------------------------------------------------------------------


def set_preferences(
    session: Session, reader: Reader, *, follows_all: bool, industries: tuple[str, ...],
    channels: tuple[str, ...], source: str,
) -> tuple[str, ...]:
    """The reader's industries (or 全部) and channels, checked and logged as `recipients
    set` does; the fields that changed. Raises RecordRefused (e.g. a channel without an
    address). ``channels`` must not be empty (empty means "by addresses" to a list)."""
    if not channels:
        raise ValueError("channels must not be empty")
    record = ReaderRecord(follows_all=follows_all, industries=() if follows_all else industries,
                          channels=channels)
    return update_reader(session, reader, record, source=source)


# --- what staff read -----------------------------------------------------------------------


def recent_changes(session: Session, reader_id: int, limit: int = 5) -> list[ReaderChange]:
    """The reader's last changes, newest first."""
    return list(session.scalars(
        select(ReaderChange).where(ReaderChange.reader_id == reader_id)
        .order_by(ReaderChange.at.desc(), ReaderChange.id.desc()).limit(limit)
    ))


def _industry_words(value: str | None) -> str:
    from dispatch.industries import BY_CODE, describe

    if value == "all":
        return describe(True, ())
    codes = [c for c in (value or "").split(",") if c in BY_CODE]
    return describe(False, codes) or "无"


def _channel_words(value: str | None) -> str:
    words = [CHANNEL_WORDS[c][0] for c in (value or "").split(",") if c in CHANNEL_WORDS]
    return "、".join(words) or "无"


def _status_words(value: str | None) -> str:
    try:
        return status_word(value or "")
    except KeyError:
        return value or "无"


def _time_words(value: str | None) -> str:
    try:
        return clock.show(datetime.fromisoformat(value)) if value else ""
    except ValueError:
        return value or ""


def describe_change(field: str, old: str | None, new: str | None) -> str:
    """One change as staff read it: 关注产业：生物医药 → 生物医药、新材料."""
    if field == "industries":
        return f"关注产业：{_industry_words(old)} → {_industry_words(new)}"
    if field == "channels":
        return f"接收方式：{_channel_words(old)} → {_channel_words(new)}"
    if field == "status":
        return f"状态：{_status_words(old)} → {_status_words(new)}"
    if field == "paused_until":
        return f"暂停至 {_time_words(new)}" if new else "恢复接收（取消暂停）"
    if field == "email_suspended_at":
        return "邮件退信停发" if new else "解除邮件退信停发"
    if field == "created":
        return "加入名单"
    if field == "email_bounces":
        return f"邮件连续退信次数：{old or 0} → {new or 0}"
    from dispatch.readers import COLUMNS

    return f"{COLUMNS.get(field, '其他')}：{old or '空'} → {new or '空'}"
