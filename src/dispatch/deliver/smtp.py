"""The email channel: rendered messages to the relay over SMTP (aiosmtplib).

A small pool of connections (`concurrency`), kept open across pushes; each is used by one
sender at a time and a batch is spread over all of them. Every message has one recipient
and goes out as the bytes the render step made (`sendmail(envelope_sender, [recipient],
payload)`), MAIL FROM being the delivery's bounce address.

What each message gets back, from the server's replies:

- 2xx: sent; provider_id is the queue id ("queued as ABC123", "id=…"), else the reply text.
- 4xx (421, 450, 451, 452, 454, …), a dropped connection, a timeout: temporary.
- other 5xx: permanent, the reply kept as the detail ("550 5.1.1 user unknown").
- problems of ours, not the reader's (authentication refused, MAIL FROM refused, 530
  "authentication required", TLS that can't be verified, a server that can't be
  reached): temporary, with an ERROR or WARNING log. Failing every reader permanently
  (and recording a bounce against each) because of a wrong password would punish the
  readers for the operator's mistake and be hard to undo; temporary outcomes are retried
  with backoff once the configuration is fixed, and the log says what to fix.

At most once per push: a message whose connection drops or times out is reported
temporary and is not tried again here (the server may have taken it: the worker decides
about retries, and a retry carries the same Message-ID). The broken connection is
replaced for the next message. A connection that cannot be opened stops only its own
sender; messages no sender got to are reported temporary ("not attempted").

TLS: certificates are verified by default against the system's CAs; `tls_ca_file` trusts
a private CA instead (a PEM file); `tls_verify = false` turns verification off and is
accepted only for a server on loopback (the local mail catcher). AUTH over an unencrypted
connection is likewise accepted only on loopback: a password never crosses the network in
clear.

The messages-per-minute cap (ratelimit.TokenBucket) is shared by the whole pool and by
every push of the channel; one channel per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import re
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiosmtplib

from dispatch.deliver.channel import Outcome, OutcomeKind, Outgoing
from dispatch.deliver.ratelimit import TokenBucket
from dispatch.deliver.smtp_wire import install as _install_wire
from dispatch.errors import Refused
from dispatch.mailtls import check_security, tls_context

if TYPE_CHECKING:
    from dispatch.config import Config

log = logging.getLogger(__name__)

_install_wire()  # see smtp_wire: same bytes on the wire, a third less CPU

# A connection unused for longer than this is checked with NOOP before a message is
# entrusted to it: servers drop idle connections, and a message must not be the probe.
IDLE_PROBE_SECONDS = 10.0
MAX_DETAIL = 1000

_QUEUE_ID = (
    re.compile(r"queued as\s+<?([A-Za-z0-9][A-Za-z0-9._@:+=-]*)", re.IGNORECASE),  # Postfix, Sendmail
    re.compile(r"\bid=([A-Za-z0-9][A-Za-z0-9._-]*)", re.IGNORECASE),  # Exim
)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_DETAIL]


def reply_text(code: int, message: str) -> str:
    """A server reply as one line: '550 5.1.1 user unknown'."""
    return _one_line(f"{code} {message}")


def provider_id(message: str) -> str:
    """The queue id in a 2xx reply to DATA, else the reply text itself."""
    for pattern in _QUEUE_ID:
        match = pattern.search(message)
        if match:
            return match.group(1).rstrip(".,;")
    return _one_line(message)


def classify(code: int) -> OutcomeKind:
    """What a reply code means for the message: 2xx sent, 4xx temporary, 5xx permanent.

    Anything else (a malformed reply, an unexpected 3xx) is temporary: it says nothing
    about the reader.
    """
    if 200 <= code < 300:
        return "sent"
    if 500 <= code < 600 and code != 530:  # 530: authentication required, our problem
        return "permanent"
    return "temporary"


@dataclass
class _Connection:
    """One place in the pool: a connection (or none yet) and when it was last used."""

    number: int
    smtp: aiosmtplib.SMTP | None = None
    last_used: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.smtp is not None and self.smtp.is_connected

    def discard(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
        self.smtp = None


@dataclass
class _Push:
    """What the senders of one push share."""

    pending: deque[tuple[int, Outgoing]]
    outcomes: list[Outcome | None]
    connect_error: str = ""
    opened: int = 0
    logged: set[str] = field(default_factory=set)


class SmtpChannel:
    """Email by SMTP. See the module docstring for the rules it follows."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "none",  # one of config.SECURITY_MODES, which load() enforces
        username: str = "",
        password: str = "",
        from_address: str = "",
        concurrency: int = 4,
        rate_per_minute: float = 600,
        timeout_seconds: float = 30.0,
        tls_ca_file: str | None = None,
        tls_verify: bool = True,
        limiter: TokenBucket | None = None,
        local_hostname: str | None = None,
        idle_probe_seconds: float = IDLE_PROBE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise Refused(f"[smtp] concurrency = {concurrency}：至少为 1")
        if timeout_seconds <= 0:
            raise Refused(f"[smtp] timeout_seconds = {timeout_seconds}：必须大于 0")
        check_security("smtp", host, security=security, tls_verify=tls_verify,
                       sends_password=bool(username))
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self.default_sender = email.utils.parseaddr(from_address)[1]
        self.concurrency = concurrency
        self.timeout = float(timeout_seconds)
        self.local_hostname = local_hostname
        self.idle_probe_seconds = idle_probe_seconds
        self.limiter = limiter if limiter is not None else TokenBucket(rate_per_minute)
        self._tls = (
            tls_context(ca_file=tls_ca_file, verify=tls_verify) if security != "none" else None
        )
        self._clock = clock
        self._connections = [_Connection(n) for n in range(1, concurrency + 1)]
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        for connection in self._connections:
            self._idle.put_nowait(connection)

    @classmethod
    def from_config(cls, config: Config, *, limiter: TokenBucket | None = None) -> SmtpChannel:
        smtp = config.smtp
        ca_file = getattr(smtp, "tls_ca_file", "")
        return cls(
            smtp.host,
            smtp.port,
            security=smtp.security,
            username=smtp.username,
            password=config.secrets.smtp_password,
            from_address=smtp.from_,
            concurrency=smtp.concurrency,
            rate_per_minute=smtp.rate_per_minute,
            timeout_seconds=smtp.timeout_seconds,
            tls_ca_file=str(config.path(ca_file)) if ca_file else None,
            tls_verify=getattr(smtp, "tls_verify", True),
            limiter=limiter,
        )

    def __repr__(self) -> str:  # never the password
        return (
            f"SmtpChannel({self.host}:{self.port}, security={self.security}, "
            f"username={self.username!r}, concurrency={self.concurrency})"
        )

    # -- the Channel interface ------------------------------------------------------

    async def push(self, batch: list[Outgoing]) -> list[Outcome]:
        if not batch:
            return []
        push = _Push(pending=deque(enumerate(batch)), outcomes=[None] * len(batch))
        async with asyncio.TaskGroup() as senders:
            for _ in range(min(self.concurrency, len(batch))):
                senders.create_task(self._sender(push))
        reason = push.connect_error or "no connection"
        outcomes = [
            outcome or Outcome(message.delivery_id, "temporary", f"not attempted: {reason}")
            for outcome, message in zip(push.outcomes, batch, strict=True)
        ]
        counts = {kind: sum(o.kind == kind for o in outcomes) for kind in ("sent", "temporary", "permanent")}
        log.info(
            "smtp: %d messages: %d sent, %d temporary, %d permanent (%d connections opened)",
            len(batch), counts["sent"], counts["temporary"], counts["permanent"], push.opened,
        )
        return outcomes

    async def flush(self) -> None:
        """Nothing is buffered: every push has finished with the server when it returns."""

    async def close(self) -> None:
        """Say QUIT on every open connection."""
        for connection in self._connections:
            if connection.is_open:
                assert connection.smtp is not None
                with contextlib.suppress(Exception):
                    await connection.smtp.quit(timeout=min(self.timeout, 5.0))
            connection.discard()

    # -- one sender: one connection of the pool, messages until none is left ---------

    async def _sender(self, push: _Push) -> None:
        connection = await self._idle.get()
        try:
            while push.pending:
                # The token first, then the connection check: a wait for the token must
                # not leave a stale connection between the check and the message.
                await self.limiter.acquire()
                if not push.pending or not await self._ready(connection, push):
                    self.limiter.release()  # this sender stops; the others carry on
                    return
                if not push.pending:
                    self.limiter.release()
                    return
                index, message = push.pending.popleft()
                outcome = await self._send(connection, message, push)
                push.outcomes[index] = outcome
                log.debug(
                    "smtp: delivery %d to %s: %s %s",
                    message.delivery_id, message.recipient, outcome.kind, outcome.detail,
                )
        finally:
            self._idle.put_nowait(connection)

    async def _ready(self, connection: _Connection, push: _Push) -> bool:
        """Make sure the connection is open and alive; False if it can't be."""
        if connection.is_open and self._clock() - connection.last_used >= self.idle_probe_seconds:
            assert connection.smtp is not None
            try:
                await connection.smtp.noop()
                connection.last_used = self._clock()
            except (aiosmtplib.SMTPException, OSError):  # OSError: TimeoutError too
                log.debug("smtp: connection %d went stale; replacing it", connection.number)
                connection.discard()
        if connection.is_open:
            return True
        connection.discard()
        try:
            connection.smtp = await self._open()
        except aiosmtplib.SMTPAuthenticationError as exc:
            self._connect_failed(push, logging.ERROR, f"authentication refused: {reply_text(exc.code, exc.message)}")
            return False
        except ssl.SSLCertVerificationError as exc:
            self._connect_failed(push, logging.ERROR, f"TLS certificate not trusted: {exc}")
            return False
        except (aiosmtplib.SMTPException, OSError) as exc:  # OSError: ssl.SSLError too
            # Also SMTPConnectError (refused, unreachable), SMTPConnectTimeoutError, a 421
            # or 554 greeting, STARTTLS not offered, AUTH not offered.
            detail = _exception_text(exc)
            if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
                self._connect_failed(push, logging.ERROR, f"TLS certificate not trusted: {detail}")
            else:
                self._connect_failed(push, logging.WARNING, f"could not connect: {detail}")
            return False
        connection.last_used = self._clock()
        push.opened += 1
        return True

    def _connect_failed(self, push: _Push, level: int, reason: str) -> None:
        push.connect_error = reason
        self._log_once(push, level, f"{reason}; messages stay queued (temporary)")

    def _log_once(self, push: _Push, level: int, text: str) -> None:
        """A problem of the setup, logged once per push rather than once per message."""
        if text not in push.logged:
            push.logged.add(text)
            log.log(level, "smtp: %s:%d: %s", self.host, self.port, text)

    async def _open(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",  # required when asked; never guessed
            tls_context=self._tls,
            local_hostname=self.local_hostname,
        )
        await smtp.connect()  # greeting, and STARTTLS when asked
        if self.username:
            try:
                await smtp.login(self.username, self._password)
            except BaseException:
                smtp.close()
                raise
        return smtp

    async def _send(self, connection: _Connection, message: Outgoing, push: _Push) -> Outcome:
        smtp = connection.smtp
        assert smtp is not None
        sender = message.envelope_sender or self.default_sender
        options: list[str] = []
        if not (sender.isascii() and message.recipient.isascii()):
            options.append("SMTPUTF8")  # refused before MAIL FROM if the server lacks it
        if not message.payload.isascii() and smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")

        def done(kind: OutcomeKind, detail: str, provider: str | None = None) -> Outcome:
            return Outcome(message.delivery_id, kind, _one_line(detail), provider)

        try:
            errors, reply = await smtp.sendmail(
                sender, [message.recipient], message.payload, mail_options=options
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return done(self._judge(push, refused.code), reply_text(refused.code, refused.message))
        except aiosmtplib.SMTPSenderRefused as exc:
            detail = reply_text(exc.code, exc.message)
            if exc.code >= 500:  # the envelope sender is ours: not the reader's fault
                self._log_once(push, logging.ERROR, f"MAIL FROM refused: {detail}")
                log.debug("smtp: refused MAIL FROM was <%s>", sender)
            return done("temporary", f"MAIL FROM refused: {detail}")
        except aiosmtplib.SMTPResponseException as exc:  # DATA refused, malformed reply
            if exc.code < 200:
                connection.discard()  # out of step with the server: start afresh
            return done(self._judge(push, exc.code), reply_text(exc.code, exc.message))
        except aiosmtplib.SMTPNotSupported as exc:  # e.g. SMTPUTF8 needed, not offered
            return done("permanent", f"not supported by the server: {exc.message}")
        except TimeoutError as exc:  # aiosmtplib.SMTPTimeoutError is one
            connection.discard()
            return done("temporary", f"timed out after {self.timeout:g}s: {_exception_text(exc)}")
        except (aiosmtplib.SMTPException, OSError) as exc:  # dropped connection and the like
            connection.discard()
            return done("temporary", f"connection lost: {_exception_text(exc)}")
        except ValueError as exc:  # an address that can't go on an SMTP command line
            return done("permanent", f"invalid address: {exc}")
        except asyncio.CancelledError:
            connection.discard()  # mid-transaction: the connection's state is unknown
            raise
        except Exception as exc:  # a bug: never let it fail the other messages
            log.exception("smtp: unexpected error for delivery %d", message.delivery_id)
            connection.discard()
            return done("temporary", f"unexpected error: {_exception_text(exc)}")
        finally:
            connection.last_used = self._clock()
            if connection.smtp is not None and not connection.smtp.is_connected:
                connection.discard()  # e.g. after a 421, which closes the connection

        if message.recipient in errors:  # only possible with several recipients
            refused_reply = errors[message.recipient]
            return done(self._judge(push, refused_reply.code), reply_text(refused_reply.code, refused_reply.message))
        return done("sent", reply_text(250, reply), provider_id(reply))

    def _judge(self, push: _Push, code: int) -> OutcomeKind:
        if code == 530:
            self._log_once(push, logging.ERROR, "authentication required: set [smtp] username")
        return classify(code)


def _exception_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return _one_line(text)
