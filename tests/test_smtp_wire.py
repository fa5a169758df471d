"""The faster DATA preparation puts the same bytes on the wire as aiosmtplib's own."""

from __future__ import annotations

import asyncio
import random

from smtp_servers import MailServer
from test_smtp_channel import channel_for, push_and_close

from dispatch.deliver import smtp_wire
from dispatch.deliver.channel import Outgoing

TRICKY = [
    b"",
    b"a",
    b"a\r\n",
    b"a\n",
    b"a\r",
    b".",
    b".\r\n",
    b"line\r\n.dot\r\n..two\r\nend",
    b"bare\nlf\r\nand\rcr\r\n",
    b"\r\r\n\n\r\n.",
    b"Subject: x\r\n\r\n" + b"QUJD" * 19 + b"\r\n" * 3,
]


def wire(message: bytes, normalize, period) -> bytes:
    """What aiosmtplib's execute_data_command writes after DATA (before the final dot)."""
    return period.sub(b"..", normalize(message))


def test_same_bytes_as_aiosmtplib_for_tricky_and_random_messages():
    assert smtp_wire.install()
    rng = random.Random(7)
    messages = list(TRICKY)
    for _ in range(3000):
        messages.append(bytes(rng.choice(b"ab.\r\n") for _ in range(rng.randint(0, 40))))
    fast = smtp_wire.normalize_message_line_endings, smtp_wire._PeriodQuoting()
    original = smtp_wire._normalize, smtp_wire._PERIOD
    for m in messages:
        assert wire(m, *fast) == wire(m, *original), m


def test_a_message_with_dot_lines_and_bare_newlines_arrives_as_written():
    body = b"Subject: dots\r\n\r\n.first\r\nmiddle\n..second\rlast"
    message = Outgoing(1, "reader@example.com", body, "bounces+t@example.org")
    with MailServer() as server:
        (outcomes,) = asyncio.run(push_and_close(channel_for(server), [message]))
        assert [o.kind for o in outcomes] == ["sent"]
        (received,) = server.accepted
    assert received.data == b"Subject: dots\r\n\r\n.first\r\nmiddle\r\n..second\r\nlast\r\n"
