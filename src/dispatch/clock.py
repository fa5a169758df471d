"""Time: stored in UTC, shown and entered in Asia/Shanghai. The one place for these rules
and for how dates and times are written."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
LOCAL_FORMAT = "%Y-%m-%d %H:%M"


def utcnow() -> datetime:
    """Naive UTC, as every DateTime column stores it (SQLite keeps no zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def parse_local(text: str) -> datetime:
    """'YYYY-MM-DD HH:MM' in Asia/Shanghai → naive UTC. Raises ValueError."""
    local = datetime.strptime(text.strip(), LOCAL_FORMAT).replace(tzinfo=LOCAL_TZ)
    return local.astimezone(UTC).replace(tzinfo=None)


def to_local(utc_naive: datetime) -> datetime:
    return utc_naive.replace(tzinfo=UTC).astimezone(LOCAL_TZ)


def show(utc_naive: datetime | None) -> str:
    """A stored time as staff read it."""
    return "" if utc_naive is None else to_local(utc_naive).strftime(LOCAL_FORMAT)


def cn_time(utc_naive: datetime | None) -> str:
    """A stored time as the staff web shows it: 2026年12月1日 08:30 (Beijing time);
    '' for None."""
    if utc_naive is None:
        return ""
    local = to_local(utc_naive)
    return f"{cn_date(local.date())} {local:%H:%M}"


def cn_date(value: date | None) -> str:
    """A date as readers read it: 2024年5月6日; '' for None."""
    if value is None:
        return ""
    return f"{value.year}年{value.month}月{value.day}日"
