"""Time: stored in UTC, shown and entered in Asia/Shanghai. The one place for these rules
and for how dates and times are written."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
LOCAL_FORMAT = "%Y-%m-%d %H:%M"
# What <input type="datetime-local"> sends (seconds too, if the browser shows them).
INPUT_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


def utcnow() -> datetime:
    """Naive UTC, as every DateTime column stores it (SQLite keeps no zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_utc(seconds: float) -> datetime:
    """Unix seconds (an injected clock's) as naive UTC, as the tables store times."""
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def parse_local(text: str) -> datetime:
    """'YYYY-MM-DD HH:MM' in Asia/Shanghai → naive UTC. Raises ValueError."""
    local = datetime.strptime(text.strip(), LOCAL_FORMAT).replace(tzinfo=LOCAL_TZ)
    return local.astimezone(UTC).replace(tzinfo=None)


def parse_local_input(text: str) -> datetime:
    """A datetime-local input's value ('2026-12-01T08:30', Beijing time) → naive UTC; the
    CLI's form ('2026-12-01 08:30') is taken too. Raises ValueError."""
    text = text.strip()
    for form in INPUT_FORMATS:
        try:
            local = datetime.strptime(text, form).replace(tzinfo=LOCAL_TZ)
        except ValueError:
            continue
        return local.astimezone(UTC).replace(tzinfo=None)
    return parse_local(text)


def local_input(utc_naive: datetime | None) -> str:
    """A stored time as a datetime-local input's value ('2026-12-01T08:30'); '' for None."""
    return "" if utc_naive is None else to_local(utc_naive).strftime(INPUT_FORMATS[0])


def next_local(utc_naive: datetime, at: time) -> datetime:
    """The first `at` (Beijing time) after `utc_naive`, as naive UTC: the next 08:30."""
    local = to_local(utc_naive)
    when = datetime.combine(local.date(), at, tzinfo=LOCAL_TZ)
    if when <= local:
        when += timedelta(days=1)
    return when.astimezone(UTC).replace(tzinfo=None)


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
