"""The SMTP channel against real servers on loopback (aiosmtpd in a thread)."""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

import pytest
from smtp_servers import (
    DROP_IN_DATA,
    Certificates,
    MailServer,
    data,
    free_port,
    make_certificates,
    rcpt,
    slow,
)

from dispatch.config import Config
from dispatch.deliver.channel import Outcome, Outgoing
from dispatch.deliver.ratelimit import TokenBucket
from dispatch.deliver.smtp import SmtpChannel, classify, provider_id
from dispatch.errors import Refused

USER, PASSWORD = "bulletin", "correct horse 电池 staple"
LOGGER = "dispatch.deliver.smtp"


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def payload(n: int, recipient: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "许昌竞争情报快递 <bulletin@example.org>"
    msg["To"] = recipient
    msg["Subject"] = f"许昌竞争情报快递 第{n}期"
    msg["Message-ID"] = f"<d{n}@example.org>"
    msg.set_content(f"尊敬的读者：\n.a line that starts with a dot\n第{n}条\n")
    return msg.as_bytes(policy=SMTP_POLICY)


def outgoing(recipients: list[str], start: int = 1) -> list[Outgoing]:
    return [
        Outgoing(
            delivery_id=start + i,
            recipient=r,
            payload=payload(start + i, r),
            envelope_sender=f"bounces+tok{start + i}@example.org",
        )
        for i, r in enumerate(recipients)
    ]


def channel_for(server: MailServer, **overrides) -> SmtpChannel:
    kwargs = server.channel_kwargs() | {
        "from_address": "许昌竞争情报快递 <bulletin@example.org>",
        "rate_per_minute": 0,
        "timeout_seconds": 5.0,
    }
    if server.users:
        kwargs |= {"username": USER, "password": PASSWORD}
    kwargs |= overrides
    return SmtpChannel(**kwargs)


async def push_and_close(channel: SmtpChannel, *batches: list[Outgoing]) -> list[list[Outcome]]:
    try:
        return [await channel.push(batch) for batch in batches]
    finally:
        await channel.close()


def by_recipient(batch: list[Outgoing], outcomes: list[Outcome]) -> dict[str, Outcome]:
    assert [o.delivery_id for o in outcomes] == [m.delivery_id for m in batch]  # same order
    return {m.recipient: o for m, o in zip(batch, outcomes, strict=True)}


def assert_received_exactly(server: MailServer, batch: list[Outgoing], outcomes: list[Outcome]):
    """The server took each 'sent' message once, byte for byte, and nothing else."""
    sent = [m for m, o in zip(batch, outcomes, strict=True) if o.kind == "sent"]
    assert sorted(r.rcpt_tos for r in server.accepted) == sorted((m.recipient,) for m in sent)
    for message in sent:
        (received,) = server.accepted_for(message.recipient)
        assert received.mail_from == message.envelope_sender
        assert received.data == message.payload


# -- the rate cap: token arithmetic on an injected clock, no wall-clock timing ------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:  # records; time stands still
        self.sleeps.append(seconds)
        await asyncio.sleep(0)


def test_bucket_is_smooth_with_a_small_burst():
    clock = ManualClock()
    bucket = TokenBucket(60, burst=3, clock=clock)  # one a second
    assert [bucket.reserve() for _ in range(6)] == [0, 0, 0, 1.0, 2.0, 3.0]
    clock.now += 3.5  # the three promised slots have come, half a token to spare
    assert bucket.reserve() == pytest.approx(0.5)
    clock.now += 3600  # a long idle spell buys no more than the burst
    assert [bucket.reserve() for _ in range(4)] == [0, 0, 0, 1.0]
    bucket.release()  # a waiter that gave up hands its slot back
    assert bucket.reserve() == 1.0


def test_bucket_rate_is_per_minute_and_zero_means_no_cap():
    clock = ManualClock()
    bucket = TokenBucket(600, burst=1, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0, 0.1, 0.2])
    free = TokenBucket(0, clock=clock)
    assert [free.reserve() for _ in range(100)] == [0] * 100


def test_bucket_waiters_sleep_their_reserved_time_and_cancellation_refunds():
    clock = ManualClock()
    bucket = TokenBucket(30, burst=2, clock=clock, sleep=clock.sleep)  # one per 2 s

    async def main() -> None:
        await asyncio.gather(*(bucket.acquire() for _ in range(5)))

    asyncio.run(main())
    assert sorted(clock.sleeps) == [2.0, 4.0, 6.0]
    assert bucket.reserve() == 8.0  # the next caller gets the slot after those three

    async def cancelled() -> None:
        async def never(_: float) -> None:
            await asyncio.Event().wait()

        waiting = TokenBucket(30, burst=1, clock=clock, sleep=never)
        waiting.reserve()
        task = asyncio.create_task(waiting.acquire())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert waiting.reserve() == 2.0  # the cancelled caller's slot, not the one after

    asyncio.run(cancelled())


def test_channel_takes_one_token_per_message_from_the_shared_bucket():
    clock = ManualClock()
    bucket = TokenBucket(60, burst=3, clock=clock, sleep=clock.sleep)
    with MailServer() as server:
        batch = outgoing([f"r{i}@example.com" for i in range(10)])
        channel = channel_for(server, limiter=bucket, concurrency=4)
        (first, second) = asyncio.run(push_and_close(channel, batch[:6], batch[6:]))
    assert {o.kind for o in first + second} == {"sent"}
    # Time stood still: the 10 messages took 10 tokens from the 3 saved up, across both
    # pushes and all four connections (a sender that found no work gave its token back),
    # and the senders that went into debt were told to wait for their slot.
    assert bucket.reserve() == 10 - 3 + 1  # the next message's slot, in seconds
    assert sorted(clock.sleeps)[:3] == [1.0, 2.0, 3.0]
    assert max(clock.sleeps) >= 7.0


# -- a good server: STARTTLS + AUTH, implicit TLS ------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_starttls_with_auth_sends_each_message_once_over_reused_connections(
    certificates, caplog, concurrency
):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    recipients = [f"reader{i}@example.com" for i in range(24)]
    batch = outgoing(recipients)
    with MailServer(security="starttls", certificates=certificates, users={USER: PASSWORD}) as server:
        channel = channel_for(server, concurrency=concurrency)
        first, second = asyncio.run(push_and_close(channel, batch[:12], batch[12:]))
        outcomes = first + second
        assert [o.kind for o in outcomes] == ["sent"] * 24
        assert_received_exactly(server, batch, outcomes)
        # The batch is spread over the whole pool and the pool outlives a push.
        assert server.connections == concurrency
        assert {r.connection for r in server.accepted} == set(range(1, concurrency + 1))
        assert server.logins == [(USER, True)] * concurrency
        assert {r.login for r in server.accepted} == {USER}

    for message, outcome in zip(batch, outcomes, strict=True):
        (received,) = [r for r in server.accepted if r.rcpt_tos == (message.recipient,)]
        assert outcome.provider_id == received.queue_id
        assert outcome.detail == f"250 2.0.0 Ok: queued as {received.queue_id}"
    info = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.INFO]
    assert "smtp: 12 messages: 12 sent, 0 temporary, 0 permanent" in info[0]
    assert not any("@" in line for line in info)  # readers' addresses only at DEBUG
    assert not any(PASSWORD in r.getMessage() for r in caplog.records)
    assert PASSWORD not in repr(channel)


def test_implicit_tls_with_auth(certificates):
    batch = outgoing(["a@example.com", "b@example.com", "c@example.com"])
    with MailServer(security="tls", certificates=certificates, users={USER: PASSWORD}) as server:
        channel = channel_for(server, concurrency=2)
        (outcomes,) = asyncio.run(push_and_close(channel, batch))
        assert [o.kind for o in outcomes] == ["sent"] * 3
        assert_received_exactly(server, batch, outcomes)
        assert server.connections == 2


def test_wrong_password_is_temporary_for_every_message_with_an_error_log(certificates, caplog):
    """A refused login is the operator's to fix, not the readers': every message stays
    queued (temporary, retried with backoff), ERROR says why, and each connection of the
    pool tries once per push: no hammering the server with one login per message."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    batch = outgoing([f"r{i}@example.com" for i in range(10)])
    with MailServer(security="starttls", certificates=certificates, users={USER: PASSWORD}) as server:
        channel = channel_for(server, concurrency=2, password="wrong")
        (outcomes,) = asyncio.run(push_and_close(channel, batch))
        assert server.accepted == []
        # aiosmtplib tries each mechanism offered (PLAIN, LOGIN) on each connection
        assert len(server.logins) <= 2 * 2
        assert not any(ok for _, ok in server.logins)
    assert {o.kind for o in outcomes} == {"temporary"}
    assert all("authentication refused: 535" in o.detail for o in outcomes)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "authentication refused" in errors[0].getMessage()
    assert not any("wrong" in r.getMessage() for r in caplog.records)


def test_certificates_are_verified_by_default(certificates, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    batch = outgoing(["a@example.com", "b@example.com"])
    for security in ("starttls", "tls"):
        with MailServer(security=security, certificates=certificates) as server:
            channel = channel_for(server, tls_ca_file=None)  # system CAs: ours isn't one
            (outcomes,) = asyncio.run(push_and_close(channel, batch))
            assert server.accepted == []
        assert {o.kind for o in outcomes} == {"temporary"}
        assert all("certificate" in o.detail for o in outcomes)
    assert any(r.levelno == logging.ERROR and "certificate" in r.getMessage() for r in caplog.records)


def test_verification_can_be_turned_off_for_a_catcher_on_loopback_only(certificates):
    batch = outgoing(["a@example.com"])
    with MailServer(security="tls", certificates=certificates) as server:
        channel = channel_for(server, tls_ca_file=None, tls_verify=False)
        (outcomes,) = asyncio.run(push_and_close(channel, batch))
        assert [o.kind for o in outcomes] == ["sent"]
    with pytest.raises(Refused, match="tls_verify"):
        SmtpChannel("smtp.example.org", 465, security="tls", tls_verify=False)
    with pytest.raises(Refused, match="明文"):
        SmtpChannel("smtp.example.org", 25, security="none", username="u", password="p")


# -- a faulty server -------------------------------------------------------------------------


def test_faulty_server_each_message_gets_its_own_outcome_and_nothing_is_sent_twice():
    faults = {
        "greylisted@example.com": rcpt("451 4.7.1 Greylisted, try again later"),
        "busy@example.com": rcpt("421 4.7.0 Too many connections"),
        "full@example.com": rcpt("452 4.2.2 Mailbox full"),
        "unavailable@example.com": rcpt("450 4.2.1 Mailbox unavailable"),
        "tls-needed@example.com": rcpt("454 4.7.0 TLS not available"),
        "unknown@example.com": rcpt("550 5.1.1 user unknown"),
        "policy@example.com": rcpt("553 5.7.1 Relaying denied"),
        "spam@example.com": data("554 5.7.1 Message rejected as spam"),
        "later@example.com": data("451 4.3.0 Local error in processing"),
        "dropped@example.com": DROP_IN_DATA,
        "slow@example.com": slow(2.0),
    }
    expected = {
        "greylisted@example.com": ("temporary", "451 4.7.1 Greylisted, try again later"),
        "busy@example.com": ("temporary", "421 4.7.0 Too many connections"),
        "full@example.com": ("temporary", "452 4.2.2 Mailbox full"),
        "unavailable@example.com": ("temporary", "450 4.2.1 Mailbox unavailable"),
        "tls-needed@example.com": ("temporary", "454 4.7.0 TLS not available"),
        "unknown@example.com": ("permanent", "550 5.1.1 user unknown"),
        "policy@example.com": ("permanent", "553 5.7.1 Relaying denied"),
        "spam@example.com": ("permanent", "554 5.7.1 Message rejected as spam"),
        "later@example.com": ("temporary", "451 4.3.0 Local error in processing"),
        "dropped@example.com": ("temporary", "connection lost"),
        "slow@example.com": ("temporary", "timed out after 0.4s"),
    }
    good = [f"ok{i}@example.com" for i in range(12)]
    recipients = [r for pair in zip(good, list(faults) + [None], strict=False) for r in pair if r]
    recipients += good[len(faults) + 1 :]
    batch = outgoing(recipients)
    with MailServer(faults=faults) as server:
        channel = channel_for(server, concurrency=2, timeout_seconds=0.4)
        (outcomes,) = asyncio.run(push_and_close(channel, batch))
        result = by_recipient(batch, outcomes)
        for recipient, (kind, detail) in expected.items():
            assert result[recipient].kind == kind, recipient
            assert result[recipient].detail.startswith(detail), (recipient, result[recipient])
            assert result[recipient].provider_id is None
        for recipient in good:
            assert result[recipient].kind == "sent"
        assert_received_exactly(server, batch, outcomes)
        assert server.state.dropped == ["dropped@example.com"]  # it reached the server...
        assert server.accepted_for("dropped@example.com") == []  # ...and was not resent
        # A connection is replaced after a 421, a drop and a timeout, and reused otherwise.
        assert server.connections <= 2 + 3


def test_a_connection_dropped_while_idle_is_replaced_before_a_message_uses_it():
    batch = outgoing([f"r{i}@example.com" for i in range(4)])
    with MailServer() as server:
        channel = channel_for(server, concurrency=1, idle_probe_seconds=0)

        async def main() -> list[list[Outcome]]:
            first = await channel.push(batch[:2])
            server.drop_connections()
            second = await channel.push(batch[2:])
            await channel.close()
            return [first, second]

        first, second = asyncio.run(main())
        assert [o.kind for o in first + second] == ["sent"] * 4
        assert_received_exactly(server, batch, first + second)
        assert server.connections == 2


def test_unreachable_server_leaves_every_message_queued(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    batch = outgoing(["a@example.com", "b@example.com", "c@example.com"])
    channel = SmtpChannel("127.0.0.1", free_port(), concurrency=2, timeout_seconds=2)
    (outcomes,) = asyncio.run(push_and_close(channel, batch))
    assert {o.kind for o in outcomes} == {"temporary"}
    assert all("could not connect" in o.detail for o in outcomes)
    assert len([r for r in caplog.records if "could not connect" in r.getMessage()]) == 1


def test_an_address_that_cannot_be_sent_fails_alone():
    batch = outgoing(["good@example.com", "bad address@example.com", "also-good@example.com"])
    with MailServer() as server:
        (outcomes,) = asyncio.run(push_and_close(channel_for(server, concurrency=1), batch))
        assert [o.kind for o in outcomes] == ["sent", "permanent", "sent"]
        assert "invalid address" in outcomes[1].detail
        assert_received_exactly(server, batch, outcomes)
        assert server.connections == 1


# -- settings and reply parsing -------------------------------------------------------------


def test_from_config_reads_settings_and_the_password_from_secrets(tmp_path: Path):
    config = Config()
    config.smtp.host, config.smtp.port, config.smtp.security = "smtp.example.org", 587, "starttls"
    config.smtp.username, config.smtp.concurrency, config.smtp.rate_per_minute = "u", 3, 120
    config.secrets.smtp_password = "from-env"
    channel = SmtpChannel.from_config(config)
    assert (channel.host, channel.port, channel.security, channel.concurrency) == (
        "smtp.example.org", 587, "starttls", 3
    )
    assert channel.limiter.rate_per_minute == 120
    assert channel.default_sender == "bulletin@localhost"
    assert "from-env" not in repr(channel)


def test_reply_parsing():
    assert provider_id("2.0.0 Ok: queued as 4XbT1k0Zq9z3") == "4XbT1k0Zq9z3"
    assert provider_id("OK id=1tGhQe-0004Kc-2V") == "1tGhQe-0004Kc-2V"
    assert provider_id("Ok") == "Ok"
    assert provider_id("2.6.0 <d1@example.org> Queued mail\nfor delivery") == (
        "2.6.0 <d1@example.org> Queued mail for delivery"
    )
    assert [classify(c) for c in (250, 251, 421, 450, 451, 452, 454, 550, 552, 554, 530, -1)] == [
        "sent", "sent", "temporary", "temporary", "temporary", "temporary", "temporary",
        "permanent", "permanent", "permanent", "temporary", "temporary",
    ]


def test_server_wanting_auth_we_did_not_configure_is_our_problem_not_the_readers(
    certificates, caplog
):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    batch = outgoing(["a@example.com", "b@example.com", "c@example.com"])
    with MailServer(security="starttls", certificates=certificates, users={USER: PASSWORD}) as server:
        channel = channel_for(server, username="", password="", concurrency=1)
        (outcomes,) = asyncio.run(push_and_close(channel, batch))
        assert server.accepted == []
    assert {o.kind for o in outcomes} == {"temporary"}
    assert all(o.detail == "MAIL FROM refused: 530 5.7.0 Authentication required" for o in outcomes)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "530" in errors[0]
    assert not any("bounces+" in line for line in errors)  # the token stays out of logs


def test_a_retry_by_the_worker_sends_only_what_failed():
    """Faults given as a list are consumed one per attempt: greylisting, then success."""
    faults = {"grey@example.com": [rcpt("451 4.7.1 Greylisted")]}
    batch = outgoing(["ok@example.com", "grey@example.com"])
    with MailServer(faults=faults) as server:
        channel = channel_for(server, concurrency=2)
        (first,) = asyncio.run(push_and_close(channel, batch))
        assert [o.kind for o in first] == ["sent", "temporary"]
        retry = [m for m, o in zip(batch, first, strict=True) if o.kind != "sent"]
        (second,) = asyncio.run(push_and_close(channel_for(server), retry))
        assert [o.kind for o in second] == ["sent"]
        assert [r.rcpt_tos for r in server.accepted] == [("ok@example.com",), ("grey@example.com",)]
