"""The one small interface every channel (SMTP, WeChat Work) stands behind.

After listmonk's Messenger: a name, push a batch, flush, close. Partial failure is
data, not an exception: push returns one Outcome per message, in order.

`configured` names the channels an installation serves, from its settings alone:
`dispatch status` lists them without connecting to anything (or refusing a bad [smtp]),
and the worker builds one channel for each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from dispatch.config import Config

OutcomeKind = Literal["sent", "temporary", "permanent"]


@dataclass(frozen=True)
class Outgoing:
    """One message ready for a channel: rendered bytes and where they go."""

    delivery_id: int
    recipient: str  # an email address or a WeChat Work userid
    payload: bytes  # MIME bytes (CRLF) or the message/send JSON body
    envelope_sender: str = ""  # SMTP MAIL FROM (bounces+TOKEN@…); unused by WeChat Work


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    kind: OutcomeKind
    detail: str = ""  # the server's reply, kept in the delivery's history
    provider_id: str | None = None  # e.g. the queue id in "250 2.0.0 Ok: queued as …"


class Channel(Protocol):
    name: str

    async def push(self, batch: list[Outgoing]) -> list[Outcome]:
        """Send what can be sent; one Outcome per message, same order. Never raises
        for a message's failure."""
        ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...


def configured(config: Config) -> tuple[str, ...]:
    """The channels this installation serves: email always, WeChat Work when [wecom]
    is enabled (otherwise its rows stay queued)."""
    return ("email", "wecom") if config.wecom.enabled else ("email",)
