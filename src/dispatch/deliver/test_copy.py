"""One test copy of an issue, by email, to an address staff give: rendered as a reader
would get it (dispatch.preview: whom), carrying the preview token (no delivery, nothing
recorded), sent through the configured SMTP server. `dispatch send --to` and the staff
web both call `send_test_copy`, which keeps each copy that went out in the issue's change
log (editorial.log_change: to whom, as whom, by whom).

A refusal of the input (an address that is not one, a reader or an issue that does not
exist, an [smtp] the channel refuses) raises Refused before anything is sent; what the
mail server answers is the result, as data: `CopyResult.sent` false and its reason in
Chinese.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from dispatch import editorial
from dispatch.db.session import transaction
from dispatch.deliver.channel import Outcome, Outgoing
from dispatch.deliver.report import reason_words
from dispatch.deliver.smtp import SmtpChannel
from dispatch.errors import Refused
from dispatch.preview import PREVIEW_TOKEN, AsReader, choose_reader
from dispatch.readers.validate import normalize_email
from dispatch.render.pipeline import IssueRenderer, ReaderView
from dispatch.render.templates import environment
from dispatch.runtime import Runtime


class BadAddress(Refused):
    """The address to send to is not an email address (the message says why)."""


@dataclass(frozen=True)
class CopyResult:
    address: str  # normalized
    reader: AsReader  # whom the copy was rendered as
    sent: bool
    kind: str  # the channel's outcome: sent, temporary, permanent
    reason: str = ""  # why it was not sent, in Chinese

    @property
    def words(self) -> str:
        """What happened, as staff read it."""
        if self.sent:
            return f"测试稿已发到 {self.address}，按 {self.reader.view.name} 的视角生成"
        kind = "临时失败，可稍后再试" if self.kind == "temporary" else "被退回"
        return f"测试稿没有发到 {self.address}（{kind}）：{self.reason}"


def send_test_copy(
    runtime: Runtime, issue_id: int, to: str, reader_key: str | None, *, by: int | None = None
) -> CopyResult:
    """Send the issue to `to` as the reader `reader_key` names (None: dispatch.preview's
    default reader); a copy that went out is logged as "test_copy" (`by`: the staff
    member, None for the CLI). Runs its own event loop: call it from a thread, never from
    a loop."""
    try:
        address = normalize_email(to.strip())
    except ValueError as exc:
        raise BadAddress(str(exc)) from None
    with runtime.sessions() as session:
        issue = editorial.get_issue(session, issue_id)
        chosen = choose_reader(session, reader_key)
        renderer = IssueRenderer.for_issue(issue, environment(runtime.config), runtime.config)
    view = ReaderView(**{**chosen.view.__dict__, "email": address})
    payload = renderer.email_message(view, PREVIEW_TOKEN)
    sender = renderer.links(PREVIEW_TOKEN).envelope_sender

    async def go() -> list[Outcome]:
        channel = SmtpChannel.from_config(runtime.config)  # refuses a bad [smtp]
        try:
            return await channel.push([Outgoing(0, address, payload, sender)])
        finally:
            await channel.close()
            # Let the closed connections' transports finish closing before asyncio.run
            # closes the loop (else a TLS connection's socket is left to the collector).
            await asyncio.sleep(0.01)

    [outcome] = asyncio.run(go())
    if outcome.kind == "sent":
        # In a transaction of its own: the mail server was talked to outside any.
        with transaction(runtime.sessions) as session:
            editorial.log_change(session, issue_id, "test_copy", by=by,
                                 new=f"{address}（按 {chosen.view.name} 的视角）")
        return CopyResult(address, chosen, True, outcome.kind)
    return CopyResult(address, chosen, False, outcome.kind, reason_words(outcome.detail))
