"""What staff see of an issue's deliveries: how many by channel and state, which failed
and why, and the summary `dispatch status` and `dispatch send` print (or give as JSON).

A delivery's reason is stored as the worker and the channel wrote it, in English (the same
words as the logs; `--json` gives it so); `reason_words` says it in Chinese for staff,
keeping a mail server's reply word for word after a Chinese lead-in.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch import clock, editorial
from dispatch.db.models import CHANNELS, DELIVERY_STATES, Delivery, Reader
from dispatch.deliver.wecom_codes import REASONS, meaning
from dispatch.lifecycle import PENDING_STATES, overdue


@dataclass(frozen=True)
class Failure:
    delivery_id: int
    reader_id: int
    reader_name: str
    channel: str
    reason: str
    attempts: int


def counts(session: Session, issue_id: int) -> dict[str, dict[str, int]]:
    """{channel: {state: n}} for the channels the issue has rows in; every state listed."""
    rows = session.execute(
        select(Delivery.channel, Delivery.state, func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.channel, Delivery.state)
    ).all()
    present = {channel for channel, _, _ in rows}
    out = {c: dict.fromkeys(DELIVERY_STATES, 0) for c in CHANNELS if c in present}
    for channel, state, n in rows:
        out[channel][state] = n
    return out


def pending(
    by_channel: dict[str, dict[str, int]], channels: Collection[str] | None = None
) -> tuple[int, int]:
    """Of `counts`, the deliveries still pending and all of them: in every channel, or in
    `channels` only."""
    states = [s for c, s in by_channel.items() if channels is None or c in channels]
    return (
        sum(n for s in states for state, n in s.items() if state in PENDING_STATES),
        sum(n for s in states for n in s.values()),
    )


def failures(session: Session, issue_id: int, limit: int = 50) -> list[Failure]:
    """The issue's failed rows, oldest first: who, by which channel, why, after how many."""
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.reader_id,
            Reader.name,
            Delivery.channel,
            Delivery.last_error,
            Delivery.attempts,
        )
        .join(Reader, Reader.id == Delivery.reader_id)
        .where(Delivery.issue_id == issue_id, Delivery.state == "failed")
        .order_by(Delivery.id)
        .limit(limit)
    ).all()
    return [Failure(r[0], r[1], r[2], r[3], r[4] or "", r[5]) for r in rows]


def issue_status(
    session: Session, issue_id: int, now: datetime, max_lateness: timedelta
) -> dict[str, Any]:
    """An issue's state and its deliveries', as `dispatch status --json` gives them:
    {issue, status, publish_at, counts, pending, failures, overdue}."""
    issue = editorial.get_issue(session, issue_id)
    by_channel = counts(session, issue_id)
    return {
        "issue": issue_id,
        "status": issue.status,
        "publish_at": clock.show(issue.publish_at) or None,
        "counts": by_channel,
        "pending": pending(by_channel)[0],
        "failures": [
            {"delivery": f.delivery_id, "reader": f.reader_id, "name": f.reader_name,
             "channel": f.channel, "reason": f.reason, "attempts": f.attempts}
            for f in failures(session, issue_id, limit=50)
        ],
        "overdue": issue_id in {i.id for i in overdue(session, now, max_lateness)},
    }


# Lead-ins the worker (dispatch.deliver.worker), the outbox (leases) and the channels
# (smtp, wecom) write, in Chinese. What follows the colon is kept as it is (a server's reply, an
# exception's text), but after the lead-ins in _NESTING: a reason of its own.
_LEAD_INS = {
    "not sent": "未发送",
    "the issue can't be rendered": "本期无法生成",
    "render error": "生成出错",
    "channel error": "渠道出错",
    "not attempted": "未尝试发送",
    "authentication refused": "邮件服务器拒绝登录",
    "TLS certificate not trusted": "邮件服务器的 TLS 证书不受信任",
    "could not connect": "连不上邮件服务器",
    "MAIL FROM refused": "邮件服务器拒收发件地址",
    "not supported by the server": "邮件服务器不支持",
    "connection lost": "与邮件服务器的连接中断",
    "invalid address": "地址无效",
    "unexpected error": "意外错误",
    # the WeChat Work channel (deliver/wecom.py; its errcodes: wecom_codes)
    "wecom error": "企业微信接口返回错误",
    "wecom unreachable": "连不上企业微信服务器",
}
_NESTING = {"not sent", "not attempted"}
_WHOLE = {
    "reader is inactive": "读者已停用",
    "reader is unsubscribed": "读者已退订",
    "reader removed": "读者已删除",
    "permanent failure": "永久失败",
    "temporary failure": "临时失败",
    "no connection": "没有可用的连接",
    **REASONS,
}
_WECOM_CODE = re.compile(r"wecom error: (-?\d+) (.*)", re.DOTALL)
_GAVE_UP = re.compile(r"gave up after (\d+) attempts in ([^:]+): (.*)", re.DOTALL)
_TIMED_OUT = re.compile(r"timed out after ([\d.]+)s: (.*)", re.DOTALL)
_SPAN_UNITS = {"d": "天", "h": "小时", "min": "分钟"}
_SERVER_REPLY = re.compile(r"[2-5]\d\d[ -]")


def _span_words(span: str) -> str:
    """'2 d 3 h' (dispatch.deliver.retry.describe_span) → '2 天 3 小时'."""
    words = span.split()
    return " ".join(_SPAN_UNITS.get(w, w) for w in words)


def reason_words(reason: str) -> str:
    """A stored reason as staff read it: '550 5.1.1 user unknown' → '邮件服务器退回：550
    5.1.1 user unknown'; 'not sent: reader is inactive' → '未发送：读者已停用'."""
    if reason in _WHOLE:
        return _WHOLE[reason]
    gave_up = _GAVE_UP.fullmatch(reason)
    if gave_up:
        attempts, span, rest = gave_up.groups()
        return f"试了 {attempts} 次、历时 {_span_words(span)}后放弃：{reason_words(rest)}"
    timed_out = _TIMED_OUT.fullmatch(reason)
    if timed_out:
        seconds, rest = timed_out.groups()
        return f"{seconds} 秒无应答，超时：{rest}"
    wecom = _WECOM_CODE.fullmatch(reason)
    if wecom:
        # deliver/wecom.py writes "wecom error: CODE (the English meaning) errmsg".
        code, rest = int(wecom[1]), wecom[2]
        found = meaning(code)
        rest = rest.removeprefix(f"({found.en})").strip()
        said = f"（企业微信原话：{rest}）" if rest else ""
        return f"企业微信接口返回错误 {code}：{found.zh}{said}"
    lead, sep, rest = reason.partition(": ")
    if sep and lead in _LEAD_INS:
        return f"{_LEAD_INS[lead]}：{reason_words(rest) if lead in _NESTING else rest}"
    if _SERVER_REPLY.match(reason):
        return f"邮件服务器回复：{reason}"
    return reason
