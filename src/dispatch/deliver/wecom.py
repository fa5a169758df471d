"""The WeChat Work (企业微信) channel: each Outgoing's payload is a message/send JSON body
(render/wecom.py, one ``touser``), sent through `wecom_api.WecomApi`.

One call per message by default: each reader's links carry their own token. Messages
whose bodies are the same apart from ``touser`` (tracking links off) share one call of up
to 1000 userids joined by "|"; the answer's ``invaliduser`` / ``unlicenseduser`` are split
back per delivery (the server lower-cases them, so they are matched without case).

What a call's answer means for its deliveries (one table, `wecom_codes.ERRCODES`):

- errcode 0: sent (provider_id = msgid), except the userids named in ``invaliduser`` or
  ``unlicenseduser``: permanent failures of exactly those deliveries.
- 81013 (no receiver valid): permanent for the call's deliveries.
- 45009, 45033, -1, HTTP 5xx, a timeout, an unreachable host: temporary; the worker's
  retry policy (deliver/retry.py) does the backoff.
- 40014 / 42001 (token refused): the wrapper has refreshed and retried once already;
  still refused: temporary.
- The installation's faults (wrong secret, corp id or agent, an IP not trusted, an API
  not allowed …): temporary, with an ERROR log saying what to fix. Failing every reader
  permanently for the operator's mistake would be wrong and hard to undo (as the SMTP
  channel does for AUTH).
- Any other errcode: temporary, with a WARNING.

Pacing (deliver/pacing.py): no call in the quiet minutes (``[wecom] quiet_minutes``,
:00 and :30 by default: the push waits them out); at most ``rate_per_minute`` calls a
minute (ratelimit.TokenBucket, shared by the pushes of the process); at most 30 messages
a minute and 1000 an hour to one member (beyond them the server drops messages
silently): a message over the window is reported temporary ("member limit") and comes
back with the retry policy.

Duplicates: every body carries ``enable_duplicate_check = 1`` with the API's longest
interval, 14400 s (4 h; render/wecom.py). The server then ignores the same request JSON
within the interval. A retry follows the attempt before it by at most the backoff cap
(retry.CAP, 1 h), so a call the server took but whose answer was lost (a timeout, a
crash before the outcome was recorded) is sent again inside the interval, byte for byte
the same for a one-reader call, and answered ok without a second delivery. The
constructor checks retry.CAP < the interval. (A shared call of several readers is the
same request again only if the same readers are retried together; tracking links off is
the only case with shared calls.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dispatch import clock
from dispatch.deliver import retry
from dispatch.deliver.channel import Outcome, OutcomeKind, Outgoing
from dispatch.deliver.pacing import MemberWindow, quiet_wait
from dispatch.deliver.ratelimit import TokenBucket
from dispatch.deliver.wecom_api import WecomApi, WecomError, WecomTimeout, WecomUnreachable
from dispatch.deliver.wecom_codes import (
    ERRCODES,
    INVALID_USER,
    MEMBER_LIMIT,
    UNLICENSED_USER,
    Judgement,
    meaning,
)
from dispatch.errors import Refused
from dispatch.render.wecom import DUPLICATE_CHECK_INTERVAL, TEMPLATE_CARD

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from dispatch.config import Config

log = logging.getLogger(__name__)

MAX_USERS_PER_CALL = 1000  # message/send: touser takes at most 1000 userids
CONCURRENCY = 4  # calls in flight at once (45033 is "too many concurrent calls")
MAX_DETAIL = 500

def judge(errcode: int) -> tuple[Judgement, str]:
    """What an errcode means for a call's deliveries (wecom_codes: the one table)."""
    found = meaning(errcode)
    return found.judgement, found.en


def check_config(config: Config) -> None:
    """Refuse an enabled [wecom] that could not send anything."""
    w = config.wecom
    missing = [
        what for what, ok in (
            ("环境变量 $DISPATCH_WECOM_SECRET（应用密钥）", config.secrets.wecom_secret),
            ("[wecom] corp_id（企业 ID）", w.corp_id),
            ("[wecom] agent_id（应用编号）", w.agent_id),
        ) if not ok
    ]
    if missing:
        raise Refused(f"企业微信已启用（[wecom] enabled = true），但缺少：{'、'.join(missing)}")
    bad = [m for m in w.quiet_minutes if not 0 <= m <= 59]
    if bad or len(set(w.quiet_minutes)) >= 60:
        raise Refused(f"[wecom] quiet_minutes = {w.quiet_minutes}：应为 0 到 59 之间的分钟，且不能是全部 60 分钟")
    if w.timeout_seconds <= 0:
        raise Refused(f"[wecom] timeout_seconds = {w.timeout_seconds}：必须大于 0")
    check_links(config)


def check_links(config: Config) -> None:
    """A template card's buttons come back by the delivery's token (task_id): without
    personal links there is none to give them."""
    w = config.wecom
    if w.message_type == TEMPLATE_CARD and not w.personal_links:
        raise Refused(
            f'[wecom] message_type = "{TEMPLATE_CARD}" 需要 [wecom] personal_links = true：'
            "卡片上的“有用/没用”按钮要靠每位读者自己的链接标识回传。"
            "请把 personal_links 改为 true，或把 message_type 改为 news、textcard 或 markdown"
        )


@dataclass
class _Call:
    """One message/send: a body and the deliveries (index in the batch, message) it carries."""

    body: dict[str, Any]
    items: list[tuple[int, Outgoing]] = field(default_factory=list)


@dataclass
class _Push:
    outcomes: list[Outcome | None]
    logged: set[str] = field(default_factory=set)
    stopped: str = ""  # why the rest of the push is not attempted (the setup is at fault)


class WecomChannel:
    """WeChat Work application messages. See the module docstring for its rules."""

    name = "wecom"

    def __init__(
        self,
        api: WecomApi,
        *,
        rate_per_minute: float = 600,
        quiet_minutes: Collection[int] = (0, 30),
        concurrency: int = CONCURRENCY,
        limiter: TokenBucket | None = None,
        window: MemberWindow | None = None,
        now: Callable[[], datetime] = clock.utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if retry.CAP.total_seconds() >= DUPLICATE_CHECK_INTERVAL:
            raise AssertionError("the retry cap must stay inside the duplicate-check interval")
        self.api = api
        self.quiet_minutes = tuple(quiet_minutes)
        self.limiter = limiter if limiter is not None else TokenBucket(rate_per_minute)
        self.window = window if window is not None else MemberWindow()
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._now = now
        self._monotonic = monotonic
        self._sleep = sleep

    @classmethod
    def from_config(cls, config: Config, sessions: sessionmaker[Session]) -> WecomChannel:
        check_config(config)
        return cls(
            WecomApi.from_config(config, sessions),
            rate_per_minute=config.wecom.rate_per_minute,
            quiet_minutes=config.wecom.quiet_minutes,
        )

    def __repr__(self) -> str:
        return f"WecomChannel({self.api!r})"

    # -- the Channel interface ------------------------------------------------------

    async def push(self, batch: list[Outgoing]) -> list[Outcome]:
        if not batch:
            return []
        push = _Push([None] * len(batch))
        calls = self._plan(batch, push)
        async with asyncio.TaskGroup() as group:
            for call in calls:
                group.create_task(self._send(call, push))
        reason = f"not attempted: {push.stopped}" if push.stopped else "not attempted"
        outcomes = [
            o or _outcome(m, "temporary", reason)
            for o, m in zip(push.outcomes, batch, strict=True)
        ]
        counts = {k: sum(o.kind == k for o in outcomes) for k in ("sent", "temporary", "permanent")}
        log.info("wecom: %d messages in %d calls: %d sent, %d temporary, %d permanent",
                 len(batch), len(calls), counts["sent"], counts["temporary"], counts["permanent"])
        return outcomes

    async def flush(self) -> None:
        """Nothing is buffered: a push has had every answer when it returns."""

    async def close(self) -> None:
        await self.api.close()

    # -- planning: bodies grouped, the member window applied ----------------------------

    def _plan(self, batch: list[Outgoing], push: _Push) -> list[_Call]:
        calls: list[_Call] = []
        filling: dict[str, _Call] = {}  # by body without touser: the call still taking userids
        now = self._monotonic()
        self.window.forget_idle(now)
        for index, message in enumerate(batch):
            try:
                body = json.loads(message.payload)
                if not isinstance(body, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:  # a bug in rendering: this message only
                push.outcomes[index] = _outcome(message, "permanent", f"not sent: bad message body: {exc}")
                continue
            if not self.window.admit(message.recipient, now):
                push.outcomes[index] = _outcome(
                    message, "temporary",
                    MEMBER_LIMIT,
                )
                continue
            rest = {k: v for k, v in body.items() if k != "touser"}
            key = json.dumps(rest, sort_keys=True, ensure_ascii=False)
            call = filling.get(key)
            if call is None or len(call.items) >= MAX_USERS_PER_CALL:
                call = filling[key] = _Call(body)
                calls.append(call)
            call.items.append((index, message))
        return calls

    # -- one call -------------------------------------------------------------------

    async def _send(self, call: _Call, push: _Push) -> None:
        async with self._slots:
            if push.stopped:  # left as "not attempted" by push()
                return
            wait = quiet_wait(self._now(), self.quiet_minutes)
            if wait > 0:
                self._log_once(push, logging.INFO, f"quiet minute: waiting {wait:.0f} s")
                await self._sleep(wait)
            await self.limiter.acquire()
            body = dict(call.body)
            body["touser"] = "|".join(m.recipient for _, m in call.items)
            try:
                answer = await self.api.send(body)
            except WecomTimeout as exc:
                self._all(call, push, "temporary", f"timed out after {self.api.timeout:g}s: {exc}")
            except WecomUnreachable as exc:
                self._log_once(push, logging.WARNING, f"{exc}; messages stay queued (temporary)")
                self._all(call, push, "temporary", f"wecom unreachable: {exc}")
                push.stopped = f"wecom unreachable: {exc}"
            except WecomError as exc:
                self._failed(call, push, exc)
            except Exception as exc:  # a bug: never let it fail the other calls
                log.exception("wecom: unexpected error in a call of %d messages", len(call.items))
                self._all(call, push, "temporary", f"unexpected error: {type(exc).__name__}")
            else:
                self._answered(call, push, answer)

    def _answered(self, call: _Call, push: _Push, answer: dict[str, object]) -> None:
        msgid = str(answer.get("msgid") or "")
        invalid = _userids(answer.get("invaliduser"))
        unlicensed = _userids(answer.get("unlicenseduser"))
        for index, message in call.items:
            member = message.recipient.lower()
            if member in invalid:
                outcome = _outcome(message, "permanent", INVALID_USER)
            elif member in unlicensed:
                outcome = _outcome(message, "permanent", UNLICENSED_USER)
            else:
                outcome = _outcome(message, "sent", f"0 ok msgid {msgid}", msgid or None)
            push.outcomes[index] = outcome

    def _failed(self, call: _Call, push: _Push, exc: WecomError) -> None:
        if exc.errcode is None:  # HTTP 5xx, an answer that isn't JSON
            self._all(call, push, "temporary", f"wecom error: {exc}")
            return
        judgement, meaning = judge(exc.errcode)
        detail = f"wecom error: {exc.errcode} ({meaning}) {exc.errmsg}"
        if judgement == "setup":
            self._log_once(push, logging.ERROR, f"{detail}; messages stay queued (temporary) until fixed")
            push.stopped = detail
        elif exc.errcode not in ERRCODES:
            self._log_once(push, logging.WARNING, f"{detail}; treated as temporary")
        self._all(call, push, "permanent" if judgement == "permanent" else "temporary", detail)

    def _all(self, call: _Call, push: _Push, kind: OutcomeKind, detail: str) -> None:
        for index, message in call.items:
            push.outcomes[index] = _outcome(message, kind, detail)

    def _log_once(self, push: _Push, level: int, text: str) -> None:
        """A problem of the setup, logged once per push rather than once per call."""
        if text not in push.logged:
            push.logged.add(text)
            log.log(level, "wecom: %s: %s", self.api.app, text)


def _userids(value: object) -> set[str]:
    return {u.lower() for u in value.split("|") if u} if isinstance(value, str) else set()


def _outcome(message: Outgoing, kind: OutcomeKind, detail: str, provider: str | None = None) -> Outcome:
    return Outcome(message.delivery_id, kind, " ".join(detail.split())[:MAX_DETAIL], provider)
