"""Readers' mail: replies, auto-replies, bounces and unsubscribe requests read from a real
Dovecot over IMAP (tests/imap_server.py), each stored where it belongs and moved to the
processed mailbox; `dispatch inbox classify | poll`; the inbox part of `dispatch run`.

Deliveries are made the way staff make them (import readers, ingest and finalize the
sample issue, `dispatch send --wait` to a real SMTP server), so the tokens are real; the
messages coming back are built here the way common clients and servers write them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import quopri
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from cli_language import english_words
from conftest import SAMPLE_ISSUE, Dispatch
from imap_server import ImapServer
from smtp_servers import MailServer, free_port, make_certificates
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_replies import FIXTURES as REPLY_FIXTURES
from test_replies import NAMES as REPLY_NAMES
from test_replies import expected as expected_text
from typer.testing import CliRunner

from dispatch.cli import app
from dispatch.cli.zh import cells
from dispatch.db.models import Delivery, Feedback, Reader, ReaderChange
from dispatch.db.session import make_engine, session_factory
from dispatch.errors import Refused
from dispatch.feedback.classify import classify
from dispatch.feedback.imap import mailbox_name
from dispatch.health import Part
from dispatch.limits import EML_BYTES

DOMAIN = "bulletin.test"
MAILBOX = f"inbox@{DOMAIN}"
READERS = {  # email → name; every one takes the whole issue by email
    "a1@example.gov.cn": "甲一",
    "b2@example.gov.cn": "乙二",
    "c3@qq.com": "丙三",
    "d4@example.com": "丁四",
    "e5@163.com": "戊五",
    "f6@example.com": "己六",
}
READERS_CSV = "姓名,邮箱,关注产业\n" + "".join(f"{n},{e},全部\n" for e, n in READERS.items())
SUBJECT = "许昌竞争情报快递"


# -- messages as clients and servers write them --------------------------------------------

_ids = iter(range(1, 1_000_000))


def _message_id(host: str = "mail.example.com") -> str:
    return f"<{next(_ids)}.{random.getrandbits(48):x}@{host}>"


def _b64_word(text: str, charset: str = "utf-8") -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")


def fb(token: str) -> str:
    return f"feedback+{token}@{DOMAIN}"


def bo(token: str) -> str:
    return f"bounces+{token}@{DOMAIN}"


def mid(token: str) -> str:
    return f"<{token}@{DOMAIN}>"


def outlook_reply(sender: str, token: str, words: str = "很有用，请多发新材料方面的信息。") -> bytes:
    """Outlook in Chinese: gb2312 (holding a gbk-only character), 答复:, and the
    X-Auto-Response-Suppress Outlook puts on mail people write."""
    body = (f"{words}镕\r\n\r\n-----邮件原件-----\r\n发件人: 许昌竞争情报快递\r\n主题: {SUBJECT}\r\n\r\n"
            "原文……\r\n")
    head = _crlf(
        f"From: {_b64_word('甲一', 'gb2312')} <{sender}>\n"
        f"To: {_b64_word(SUBJECT, 'gb2312')} <{fb(token)}>\n"
        f"Subject: {_b64_word('答复: ' + SUBJECT, 'gb2312')}\n"
        f"Date: Tue, 1 Dec 2026 10:00:00 +0800\nMessage-ID: {_message_id('outlook.example')}\n"
        f"In-Reply-To: {mid(token)}\nReferences: {mid(token)}\n"
        "X-Auto-Response-Suppress: All\nX-Mailer: Microsoft Outlook 16.0\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=\"gb2312\"\nContent-Transfer-Encoding: base64\n\n"
    )
    return head + base64.encodebytes(body.encode("gb18030")).replace(b"\n", b"\r\n")


def qq_reply(sender: str, token: str, words: str = "收到，谢谢！") -> bytes:
    """QQ Mail: 回复：, multipart/alternative, UTF-8 in base64."""
    plain = f"{words}\r\n\r\n------------------ 原始邮件 ------------------\r\n发件人: {SUBJECT}\r\n"
    html = f"<div>{words}</div><div><br></div><blockquote>原始邮件</blockquote>"
    return _crlf(
        f"From: {_b64_word('乙二')} <{sender}>\nTo: {_b64_word('快递')} <{fb(token)}>\n"
        f"Subject: {_b64_word('回复：' + SUBJECT)}\nDate: Tue, 1 Dec 2026 10:01:00 +0800\n"
        f"Message-ID: {_message_id('qq.com')}\nIn-Reply-To: {mid(token)}\nMIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="----=_NextPart_QQ"\n\n'
        "------=_NextPart_QQ\nContent-Type: text/plain; charset=\"utf-8\"\n"
        "Content-Transfer-Encoding: base64\n\n"
        f"{base64.encodebytes(plain.encode()).decode()}\n"
        "------=_NextPart_QQ\nContent-Type: text/html; charset=\"utf-8\"\n"
        "Content-Transfer-Encoding: base64\n\n"
        f"{base64.encodebytes(html.encode()).decode()}\n------=_NextPart_QQ--\n"
    )


def gmail_reply(sender: str, token: str, words: str = "第二篇文章的数据来源是哪里？") -> bytes:
    """Gmail / Apple Mail: Re:, quoted-printable UTF-8, the original quoted with >."""
    body = f"{words}\n\n2026年12月1日 09:00，许昌竞争情报快递 <{fb(token)}> 写道：\n> 原文\n"
    return _crlf(
        f"From: {sender}\nTo: {fb(token)}\nSubject: Re: {_b64_word(SUBJECT)}\n"
        f"Date: Tue, 1 Dec 2026 10:02:00 +0800\nMessage-ID: {_message_id('mail.gmail.com')}\n"
        f"In-Reply-To: {mid(token)}\nReferences: {mid(token)}\nMIME-Version: 1.0\n"
        'Content-Type: text/plain; charset="UTF-8"\nContent-Transfer-Encoding: quoted-printable\n\n'
        + quopri.encodestring(body.encode()).decode()
    )


def colleague_forward(colleague: str, token: str) -> bytes:
    """A colleague the reader forwarded the bulletin to answers it: still to feedback+TOKEN."""
    return _crlf(
        f"From: {colleague}\nTo: {fb(token)}\nSubject: {_b64_word('回复：转发：' + SUBJECT)}\n"
        f"Message-ID: {_message_id('corp.example')}\nMIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        f"{base64.encodebytes('我是同事，也想订阅。'.encode()).decode()}"
    )


def answer_by_references(other: str, token: str) -> bytes:
    """Sent from another address to the plain mailbox (Reply-To lost by a forward), but
    answering our message: In-Reply-To holds its Message-ID."""
    return _crlf(
        f"From: {other}\nTo: {MAILBOX}\nSubject: Re: forwarded\nMessage-ID: {_message_id()}\n"
        f"In-Reply-To: {mid(token)}\nReferences: <x1@other.example> {mid(token)}\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    ) + "这一期很好。\r\n".encode()


def dsn(token: str, address: str, status: str = "5.1.1",
        diagnostic: str = "550 5.1.1 <{a}>: Recipient address rejected: User unknown",
        action: str = "failed") -> bytes:
    """RFC 3464, as Postfix writes it: notification, delivery-status, the original's headers."""
    diagnostic = diagnostic.format(a=address)
    return _crlf(
        "Return-Path: <>\nFrom: MAILER-DAEMON@mx.example.com (Mail Delivery System)\n"
        f"To: {bo(token)}\nSubject: Undelivered Mail Returned to Sender\n"
        f"Message-ID: {_message_id('mx.example.com')}\nAuto-Submitted: auto-replied\n"
        'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status;\n'
        '\tboundary="B1"\n\n'
        "--B1\nContent-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n"
        "This is the mail system at host mx.example.com.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients.\n\n"
        f"<{address}>: host mx.example.com said: {diagnostic}\n\n"
        "--B1\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.com\nArrival-Date: Tue, 1 Dec 2026 09:00:00 +0800\n\n"
        f"Final-Recipient: rfc822; {address}\nOriginal-Recipient: rfc822;{address}\n"
        f"Action: {action}\nStatus: {status}\nRemote-MTA: dns; mx.example.com\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n\n"
        "--B1\nContent-Description: Undelivered Message Headers\n"
        "Content-Type: text/rfc822-headers\n\n"
        f"From: bulletin@{DOMAIN}\nTo: {address}\nMessage-ID: {mid(token)}\nSubject: x\n\n"
        "--B1--\n"
    )


def postfix_text_bounce(token: str, address: str) -> bytes:
    """A relay's plain-text bounce (no delivery-status part), sent to the mailbox's own
    address: the token is only in the returned original."""
    return _crlf(
        "From: MAILER-DAEMON@relay.example.org (Mail Delivery System)\n"
        f"To: {MAILBOX}\nSubject: Undelivered Mail Returned to Sender\n"
        f"Message-ID: {_message_id('relay.example.org')}\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="B2"\n\n'
        "--B2\nContent-Description: Notification\nContent-Type: text/plain\n\n"
        "This is the Postfix program at host relay.example.org.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients.\n\n"
        "\t\t\tThe Postfix program\n\n"
        f"<{address}>: host mx.example.com[192.0.2.1] said: 550 5.1.1 User unknown\n\n"
        "--B2\nContent-Description: Undelivered Message\nContent-Type: message/rfc822\n\n"
        f"From: bulletin@{DOMAIN}\nTo: {address}\nReply-To: {fb(token)}\n"
        f"Message-ID: {mid(token)}\nSubject: x\n\nthe bulletin\n\n--B2--\n"
    )


def qq_bounce(token: str, address: str, reason: str = "收件人邮箱地址不存在",
              code: str = "550 Mailbox not found or access denied") -> bytes:
    """QQ Mail / Tencent Exmail: [Qmail] 来自qq.com的退信, a Chinese page, no DSN."""
    text = (f"很抱歉您发送的邮件被退回，以下是该邮件的相关信息：\n被退回的邮件\n主    题：{SUBJECT}\n"
            f"收件人：{address}\n退信原因\n{reason}\n{code}\n")
    html = "<html><body>" + "".join(f"<p>{line}</p>" for line in text.splitlines()) + "</body></html>"
    return _crlf(
        "Return-Path: <>\nFrom: \"PostMaster\" <PostMaster@qq.com>\n"
        f"To: {bo(token)}\nSubject: {_b64_word('[Qmail] 来自qq.com的退信', 'gb2312')}\n"
        f"Message-ID: {_message_id('qq.com')}\nMIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="Q"\n\n'
        "--Q\nContent-Type: text/plain; charset=gb2312\nContent-Transfer-Encoding: base64\n\n"
        f"{base64.encodebytes(text.encode('gb18030')).decode()}\n"
        "--Q\nContent-Type: text/html; charset=gb2312\nContent-Transfer-Encoding: base64\n\n"
        f"{base64.encodebytes(html.encode('gb18030')).decode()}\n--Q--\n"
    )


def vacation(sender: str, token: str) -> bytes:
    """Gmail's vacation responder: the subject the user chose, Auto-Submitted: auto-replied."""
    return _crlf(
        f"From: {sender}\nTo: {fb(token)}\nSubject: {_b64_word('出差中')}\n"
        f"Message-ID: {_message_id('mail.gmail.com')}\nIn-Reply-To: {mid(token)}\n"
        "Auto-Submitted: auto-replied\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n\n"
        f"{base64.encodebytes('我这周在外地，下周回复。'.encode()).decode()}"
    )


def qq_auto_reply(sender: str, token: str) -> bytes:
    """QQ Mail's 自动回复: nothing in the headers says so, only the subject."""
    return _crlf(
        f"From: {sender}\nTo: {fb(token)}\nSubject: {_b64_word('自动回复: ' + SUBJECT)}\n"
        f"Message-ID: {_message_id('qq.com')}\nContent-Type: text/plain; charset=gb2312\n"
        "Content-Transfer-Encoding: base64\n\n"
        f"{base64.encodebytes('您好，我最近休假，邮件已收到。'.encode('gb18030')).decode()}"
    )


def unsubscribe_mail(sender: str, token: str) -> bytes:
    """What a mail client's 退订 button sends to the List-Unsubscribe mailto."""
    return _crlf(
        f"From: {sender}\nTo: unsubscribe+{token}@{DOMAIN}\nSubject: unsubscribe\n"
        f"Message-ID: {_message_id()}\nContent-Type: text/plain\n\n"
        "This message was automatically generated by the mail client.\n"
    )


def stranger() -> bytes:
    return _crlf(
        f"From: someone@elsewhere.example\nTo: {MAILBOX}\nSubject: {_b64_word('合作咨询')}\n"
        f"Message-ID: {_message_id('elsewhere.example')}\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n\n"
        f"{base64.encodebytes('你们的快递怎么订阅？'.encode()).decode()}"
    )


NOT_MAIL = b"\xff\xfe\x00garbage without any header\r\n\r\nmore \xc3\x28 bytes\r\n"


# -- an installation that sent real mail, reading a real mailbox ---------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def imap(certificates) -> Iterator[ImapServer]:
    with ImapServer(certificates) as server:
        yield server


@dataclass
class Site:
    dispatch: Dispatch
    imap: ImapServer
    user: str
    password: str
    processed_mailbox: str  # what dispatch is given (the server's may differ)
    tokens: dict[str, list[str]] = field(default_factory=dict)  # email → one per issue
    issues: list[int] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"DISPATCH_IMAP_PASSWORD": self.password}

    def token(self, email: str, issue: int = 0) -> str:
        return self.tokens[email][issue]

    def append(self, *messages: bytes) -> None:
        self.imap.append(self.user, *messages)

    def poll(self) -> dict[str, int]:
        return json.loads(self.dispatch.ok("inbox", "poll", "--json", env=self.env))

    def inbox(self) -> list[bytes]:
        return self.imap.messages(self.user, "INBOX")

    def processed(self) -> list[bytes]:
        return self.imap.messages(self.user, mailbox_name(self.processed_mailbox).strip('"'))

    def session(self) -> Session:
        engine = make_engine(self.dispatch.db_url)
        return session_factory(engine)()

    def feedback(self) -> list[Feedback]:
        with self.session() as s:
            return list(s.scalars(select(Feedback).order_by(Feedback.id)))

    def reader(self, email: str) -> Reader:
        with self.session() as s:
            return s.scalars(select(Reader).where(Reader.email == email)).one()

    def delivery(self, token: str) -> Delivery:
        with self.session() as s:
            return s.scalars(select(Delivery).where(Delivery.token == token)).one()

    def changes(self, email: str) -> list[tuple[str, str, str | None, str | None]]:
        reader_id = self.reader(email).id
        with self.session() as s:
            rows = s.scalars(select(ReaderChange).where(ReaderChange.reader_id == reader_id)
                             .order_by(ReaderChange.id))
            return [(c.source, c.field, c.old, c.new) for c in rows]


def install(dispatch: Dispatch, tmp_path: Path, mail: MailServer, imap: ImapServer, *,
            issues: int = 1, security: str = "none", bounce_limit: int = 3,
            password: str | None = None, processed: str = "Processed") -> Site:
    user = imap.add_user()
    port = imap.tls_port if security == "tls" else imap.port
    with dispatch.config.open("a", encoding="utf-8") as f:
        f.write(f'[smtp]\nhost = "{mail.host}"\nport = {mail.port}\nrate_per_minute = 0\n'
                f'reply_domain = "{DOMAIN}"\n'
                "[delivery]\nidle_seconds = 0.1\n"
                f'[imap]\nhost = "{imap.host}"\nport = {port}\nsecurity = "{security}"\n'
                f'username = "{user}"\ntls_ca_file = "{imap.certificates.ca_file}"\n'
                f"poll_seconds = 1\ntimeout_seconds = 10\n"
                f'processed_mailbox = "{processed}"\n'
                f"[feedback]\nbounce_limit = {bounce_limit}\n")
    readers = tmp_path / "readers.csv"
    readers.write_text(READERS_CSV, encoding="utf-8")
    dispatch.ok("recipients", "import", str(readers))
    site = Site(dispatch, imap, user, password or imap.passwords[user], processed)
    for n in range(issues):
        args = ["issues", "ingest", str(SAMPLE_ISSUE), "--json"] + (["--again"] if n else [])
        issue = json.loads(dispatch.ok(*args))["id"]
        dispatch.ok("issues", "finalize", str(issue))
        before = len(mail.accepted)
        dispatch.ok("send", str(issue), "--wait")
        assert len(mail.accepted) - before == len(READERS)
        for m in mail.accepted[before:]:
            token = message_from_bytes(m.data, policy=policy.default)["Message-ID"].strip("<>")
            site.tokens.setdefault(m.rcpt_tos[0], []).append(token.split("@")[0])
        site.issues.append(issue)
    return site


# -- the whole round -----------------------------------------------------------------------


def test_each_message_is_filed_where_it_belongs_and_moved(dispatch, tmp_path, mail, imap):
    s = install(dispatch, tmp_path, mail, imap)
    a1, b2, c3, d4, e5, f6 = READERS
    messages = [
        outlook_reply(a1, s.token(a1)),
        qq_reply(b2, s.token(b2)),
        gmail_reply(c3, s.token(c3)),
        colleague_forward("colleague@corp.example", s.token(d4)),
        answer_by_references("friend@other.example", s.token(e5)),
        dsn(s.token(f6), f6),
        vacation(a1, s.token(a1)),
        qq_auto_reply(b2, s.token(b2)),
        unsubscribe_mail(c3, s.token(c3)),
        stranger(),
        NOT_MAIL,
    ]
    s.append(*messages)

    counts = s.poll()
    assert counts["found"] == counts["moved"] == len(messages)
    assert counts["replies"] == 6 and counts["auto_replies"] == 2 and counts["bounces"] == 1
    assert counts["hard_bounces"] == 1 and counts["unsubscribed"] == 1
    assert counts["unmatched"] == 1 and counts["unreadable"] == 1 and counts["failed"] == 0
    assert s.inbox() == [] and len(s.processed()) == len(messages)

    rows = s.feedback()
    by = {(r.kind, r.sender): r for r in rows}
    assert len(rows) == 9  # all but the unsubscribe request and the non-mail

    def tied(row: Feedback, email: str) -> None:
        delivery = s.delivery(s.token(email))
        assert (row.delivery_id, row.reader_id, row.issue_id) == (
            delivery.id, delivery.reader_id, s.issues[0])
        assert row.channel == "email" and row.article_id is None

    outlook = by["reply", a1]
    tied(outlook, a1)
    assert outlook.text.startswith("很有用，请多发新材料方面的信息。镕")  # gb2312 label, gbk char
    assert outlook.subject == "答复: " + SUBJECT and outlook.raw == messages[0]
    assert outlook.source_key.startswith("imap:<") and outlook.source_key.endswith("@outlook.example>")
    tied(by["reply", b2], b2)
    assert by["reply", b2].text.startswith("收到，谢谢！")
    tied(by["reply", c3], c3)
    assert by["reply", c3].text.startswith("第二篇文章的数据来源是哪里？")
    tied(by["reply", "colleague@corp.example"], d4)  # forwarded: still the reader's delivery
    tied(by["reply", "friend@other.example"], e5)  # found through In-Reply-To
    tied(by["auto_reply", a1], a1)
    assert by["auto_reply", a1].text == "我这周在外地，下周回复。"
    tied(by["auto_reply", b2], b2)
    bounce = by["bounce", "mailer-daemon@mx.example.com"]
    tied(bounce, f6)
    assert "550 5.1.1" in bounce.text and "User unknown" in bounce.text
    nobody = by["reply", "someone@elsewhere.example"]
    assert (nobody.delivery_id, nobody.reader_id, nobody.issue_id) == (None, None, None)
    assert nobody.text == "你们的快递怎么订阅？" and nobody.subject == "合作咨询"

    # The hard bounce marks its delivery (still sent) and counts against the reader.
    delivery = s.delivery(s.token(f6))
    assert delivery.bounced_at is not None and delivery.state == "sent"
    assert s.reader(f6).email_bounces == 1 and s.reader(f6).email_suspended_at is None
    # The unsubscribe request: the reader is unsubscribed, by mail.
    assert s.reader(c3).status == "unsubscribed"
    assert s.changes(c3) == [("mail", "status", "active", "unsubscribed")]

    # Nothing is read twice: the next poll finds nothing, and the same message coming in
    # again (a second copy of the reply) stores nothing new.
    again = s.poll()
    assert again["found"] == 0 and len(s.feedback()) == 9
    s.append(messages[0])
    again = s.poll()
    assert again["found"] == again["duplicates"] == again["moved"] == 1
    assert len(s.feedback()) == 9 and s.inbox() == []
    assert len(s.processed()) == len(messages) + 1


def _set(message: Message, name: str, value: str) -> None:
    if name in message:
        message.replace_header(name, value)
    else:
        message[name] = value


def _split(raw: bytes) -> tuple[bytes, bytes]:
    """The header block (with the blank line that ends it) and the body."""
    head, body = raw.split(b"\r\n\r\n", 1)
    return head + b"\r\n\r\n", body


def as_reply_to(raw: bytes, sender: str, token: str) -> bytes:
    """A client's reply (tests/fixtures/replies) re-addressed to answer our delivery
    `token` from `sender`: only the addressing headers change; the body (its parts,
    charset labels and transfer encodings) is kept byte for byte. Only the header block
    goes through the generator: compat32's decodes an 8-bit multipart body it is given."""
    head, body = _split(raw)
    message = BytesParser(policy=policy.compat32).parsebytes(head, headersonly=True)
    name, _ = parseaddr(message["From"])
    _set(message, "From", f"{name} <{sender}>" if name else sender)
    _set(message, "To", fb(token))
    _set(message, "In-Reply-To", mid(token))
    _set(message, "References", mid(token))
    # No refolding (max_line_length 0): the client's other header lines stay as written.
    return message.as_bytes(policy=policy.compat32.clone(linesep="\r\n", max_line_length=0)) + body


def test_every_clients_reply_comes_through_the_mailbox_as_the_reader_wrote_it(
    dispatch_sqlite, tmp_path, mail, imap
):
    """The reply splitter's fixtures (Gmail, Apple Mail, Outlook, QQ Mail, Foxmail, NetEase,
    Coremail, Alibaba Mail, Thunderbird …), each answering its own real delivery, read
    from Dovecot in one poll: each a reply tied to its delivery, holding what the reader
    wrote (the fixture's expected text) and the message as it came."""
    readers = list(READERS)
    issues = -(-len(REPLY_NAMES) // len(readers))  # one delivery for each fixture
    s = install(dispatch_sqlite, tmp_path, mail, imap, issues=issues)
    sent: dict[str, tuple[str, int, bytes]] = {}  # fixture → reader, issue index, message
    for n, name in enumerate(REPLY_NAMES):
        email, issue = readers[n % len(readers)], n // len(readers)
        original = (REPLY_FIXTURES / f"{name}.eml").read_bytes()
        raw = as_reply_to(original, email, s.token(email, issue))
        assert _split(raw)[1] == _split(original)[1], f"{name}: the body was changed"
        sent[name] = (email, issue, raw)
    s.append(*(raw for _, _, raw in sent.values()))

    counts = s.poll()
    assert counts["found"] == counts["moved"] == counts["replies"] == len(sent), counts
    assert counts["unmatched"] == counts["failed"] == counts["unreadable"] == 0, counts
    assert s.inbox() == []
    assert sorted(s.processed()) == sorted(raw for _, _, raw in sent.values())

    rows = s.feedback()
    assert len(rows) == len(sent)
    by_raw = {bytes(row.raw): row for row in rows}
    wrong: list[str] = []
    for name, (email, issue, raw) in sent.items():
        row = by_raw.get(raw)
        if row is None:
            wrong.append(f"{name}: no Feedback row holds the message as appended")
            continue
        delivery = s.delivery(s.token(email, issue))
        got = (row.kind, row.channel, row.delivery_id, row.reader_id, row.issue_id, row.sender)
        want = ("reply", "email", delivery.id, delivery.reader_id, s.issues[issue], email)
        if got != want:
            wrong.append(f"{name}: (kind, channel, delivery, reader, issue, sender) "
                         f"{got} != {want}")
        if delivery.reader_id != s.reader(email).id:
            wrong.append(f"{name}: delivery {delivery.id} is not {email}'s")
        text = expected_text(f"{name}.expected.txt")
        if row.text != text:
            wrong.append(f"{name}: text {row.text!r} != expected {text!r}")
        headers = message_from_bytes(raw, policy=policy.default)
        if row.subject != headers["Subject"] or row.source_key != f"imap:{headers['Message-ID']}":
            wrong.append(f"{name}: subject {row.subject!r}, source_key {row.source_key!r}")
    assert not wrong, "\n".join(wrong)

    again = s.poll()
    assert again["found"] == 0 and len(s.feedback()) == len(sent)


def test_hard_bounces_suspend_email_at_the_limit_and_a_reply_resets_the_count(
    dispatch_sqlite, tmp_path, mail, imap
):
    s = install(dispatch_sqlite, tmp_path, mail, imap, issues=2, bounce_limit=2)
    a1, b2, c3, d4, *_ = READERS
    # b2: a DSN for the first issue, a second report about the same delivery, a relay's
    # plain-text bounce for the second issue (its token only in the returned original).
    s.append(dsn(s.token(b2, 0), b2), dsn(s.token(b2, 0), b2, diagnostic="550 5.1.1 no such user"))
    counts = s.poll()
    assert counts["bounces"] == 2 and counts["hard_bounces"] == 2 and counts["suspended"] == 0
    assert s.reader(b2).email_bounces == 1  # one delivery bounced, however often reported
    s.append(postfix_text_bounce(s.token(b2, 1), b2))
    counts = s.poll()
    assert counts["suspended"] == 1
    reader = s.reader(b2)
    assert reader.email_bounces == 2 and reader.email_suspended_at is not None
    assert reader.status == "active"  # only the email is suspended
    assert s.changes(b2) == [
        ("bounce", "email_suspended_at", None,
         reader.email_suspended_at.isoformat(timespec="seconds"))
    ]
    assert s.delivery(s.token(b2, 1)).bounced_at is not None

    # c3 (QQ Mail): QQ's own bounce counts once; then c3 writes back, so the mailbox
    # works again: the count starts over.
    s.append(qq_bounce(s.token(c3, 0), c3))
    s.poll()
    assert s.reader(c3).email_bounces == 1
    qq_row = [r for r in s.feedback() if r.sender == "postmaster@qq.com"][0]
    assert qq_row.kind == "bounce" and qq_row.subject == "[Qmail] 来自qq.com的退信"
    assert qq_row.delivery_id == s.delivery(s.token(c3, 0)).id
    s.append(gmail_reply(c3, s.token(c3, 1)))
    s.poll()
    assert s.reader(c3).email_bounces == 0

    # Soft bounces (mailbox full, a delay) are kept but neither mark nor count.
    s.append(
        dsn(s.token(d4, 0), d4, status="4.2.2", action="delayed",
            diagnostic="452 4.2.2 Mailbox full"),
        qq_bounce(s.token(a1, 0), a1, reason="收件人邮箱空间不足", code="552 Mailbox full"),
    )
    counts = s.poll()
    assert counts["bounces"] == 2 and counts["hard_bounces"] == 0
    assert s.delivery(s.token(d4, 0)).bounced_at is None and s.reader(d4).email_bounces == 0
    assert s.reader(a1).email_bounces == 0
    assert s.inbox() == []


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_with_the_private_ca(dispatch_sqlite, tmp_path, mail, imap, security):
    # A Chinese name for the processed mailbox, as staff may set it (modified UTF-7).
    s = install(dispatch_sqlite, tmp_path, mail, imap, security=security, processed="已处理")
    a1 = next(iter(READERS))
    s.append(qq_reply(a1, s.token(a1)))
    assert s.poll()["replies"] == 1
    assert s.inbox() == [] and len(s.processed()) == 1


def test_mailbox_names_are_written_in_modified_utf7():
    # RFC 3501 5.1.3's own example.
    assert mailbox_name("~peter/mail/台北/日本語") == '"~peter/mail/&U,BTFw-/&ZeVnLIqe-"'
    assert mailbox_name('A&B "q"') == '"A&-B \\"q\\""'


def test_a_message_over_the_size_cap_is_filed_by_its_header(dispatch_sqlite, tmp_path, mail, imap):
    s = install(dispatch_sqlite, tmp_path, mail, imap)
    a1 = next(iter(READERS))
    big = gmail_reply(a1, s.token(a1)).replace(
        b"Content-Type: text/plain", b"X-Big: yes\r\nContent-Type: text/plain"
    ) + b"x" * (EML_BYTES + 1024) + b"\r\n"
    s.append(big)
    counts = s.poll()
    assert counts["oversized"] == counts["replies"] == counts["moved"] == 1
    [row] = s.feedback()
    assert row.reader_id == s.reader(a1).id and row.kind == "reply"
    assert row.raw.startswith(b"From: ") and b"X-Big: yes" in row.raw and len(row.raw) < 10_000
    assert s.inbox() == [] and len(s.processed()) == 1


def test_without_move_it_copies_and_expunges_only_that_message(
    dispatch_sqlite, tmp_path, mail, certificates
):
    with ImapServer(certificates, capabilities="IMAP4rev1 UIDPLUS") as server:
        s = install(dispatch_sqlite, tmp_path, mail, server)
        a1, b2, *_ = READERS
        s.append(qq_reply(a1, s.token(a1)), gmail_reply(b2, s.token(b2)))
        counts = s.poll()
        assert counts["moved"] == 2 and s.inbox() == [] and len(s.processed()) == 2
        assert server.flags(s.user, "INBOX") == []  # expunged, not left flagged


def test_wrong_password_or_no_server_warns_and_moves_nothing(
    dispatch_sqlite, tmp_path, mail, imap, caplog
):
    from dispatch.config import load
    from dispatch.feedback.inbox import Inbox
    from dispatch.runtime import Runtime

    s = install(dispatch_sqlite, tmp_path, mail, imap, password="wrong")
    a1 = next(iter(READERS))
    s.append(qq_reply(a1, s.token(a1)))

    r = s.dispatch("inbox", "poll", env=s.env)
    assert r.exit_code == 1
    assert "拒绝登录" in r.stderr and "$DISPATCH_IMAP_PASSWORD" in r.stderr
    assert english_words(r.stderr) == [], r.stderr
    assert "wrong" not in r.stderr

    # `dispatch run`'s part: one WARNING a poll, no exception, /healthz's part down.
    runtime = Runtime(load(s.dispatch.config, env={"DISPATCH_IMAP_PASSWORD": "wrong"}))
    part = Part("inbox")
    inbox = Inbox(runtime, part)
    with caplog.at_level(logging.INFO, logger="dispatch"):
        asyncio.run(inbox.poll())
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "refused the login" in warnings[0].getMessage()
    assert "wrong" not in caplog.text and a1 not in caplog.text
    assert part.status()[0] is False
    assert len(s.inbox()) == 1 and s.processed() == [] and s.feedback() == []

    # The right password: the same part recovers on the next poll.
    inbox.poller.settings = dataclasses.replace(inbox.poller.settings,
                                                password=imap.passwords[s.user])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dispatch"):
        asyncio.run(inbox.poll())
    assert part.status() == (True, "ok") and s.inbox() == []
    assert "replies 1" in caplog.text and a1 not in caplog.text

    # Nothing listening.
    runtime.config.imap.port = free_port()
    down = Inbox(runtime, Part("inbox"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dispatch"):
        asyncio.run(down.poll())
    [warning] = caplog.records
    assert "cannot connect" in warning.getMessage()


def test_settings_that_would_leak_the_password_are_refused(dispatch_sqlite):
    for extra, words in [
        ('host = "imap.example.com"\nsecurity = "none"\nusername = "u"\n', "明文"),
        ('host = "imap.example.com"\nsecurity = "tls"\ntls_verify = false\nusername = "u"\n',
         "tls_verify"),
        ('username = ""\n', "username"),
        ('username = "u"\nprocessed_mailbox = "INBOX"\n', "processed_mailbox"),
    ]:
        dispatch_sqlite.config.write_text(
            dispatch_sqlite.config.read_text(encoding="utf-8").split("[imap]")[0]
            + "[imap]\n" + extra, encoding="utf-8")
        r = dispatch_sqlite("inbox", "poll")
        assert r.exit_code == 1 and words in r.stderr, r.stderr


# -- `dispatch inbox classify` -------------------------------------------------------------


def test_classify_shows_how_a_message_would_be_handled_without_storing(
    dispatch_sqlite, tmp_path, mail, imap
):
    s = install(dispatch_sqlite, tmp_path, mail, imap, bounce_limit=1)
    a1, b2, c3, *_ = READERS
    files = {
        "reply.eml": outlook_reply(a1, s.token(a1)),
        "bounce.eml": qq_bounce(s.token(b2), b2),
        "auto.eml": qq_auto_reply(c3, s.token(c3)),
        "unsubscribe.eml": unsubscribe_mail(c3, s.token(c3)),
        "stranger.eml": stranger(),
    }
    for name, raw in files.items():
        (tmp_path / name).write_bytes(raw)

    def data(name: str) -> dict[str, Any]:
        return json.loads(s.dispatch.ok("inbox", "classify", str(tmp_path / name), "--json"))

    reply = data("reply.eml")
    assert reply["kind"] == "human" and reply["recipient"] == a1
    assert reply["delivery"] == s.delivery(s.token(a1)).id and reply["reader_name"] == "甲一"
    assert reply["text"].startswith("很有用") and reply["unsubscribe"] is False
    bounce = data("bounce.eml")
    assert bounce["kind"] == "bounce" and bounce["hard"] is True and bounce["recipient"] == b2
    assert bounce["delivery"] == s.delivery(s.token(b2)).id and "550" in bounce["text"]
    assert bounce["would_suspend"] is True
    assert data("auto.eml")["kind"] == "auto_reply"
    assert data("unsubscribe.eml")["unsubscribe"] is True
    nobody = data("stranger.eml")
    assert nobody["delivery"] is None and nobody["reader"] is None

    summary = s.dispatch.ok("inbox", "classify", str(tmp_path / "reply.eml"))
    assert "读者回复" in summary and "甲一" in summary and "很有用" in summary
    assert english_words(summary) == [], summary
    summary = s.dispatch.ok("inbox", "classify", str(tmp_path / "bounce.eml"))
    assert "硬退信" in summary and "停发" in summary
    # Read only: nothing stored, nobody changed.
    assert s.feedback() == [] and s.reader(b2).email_bounces == 0
    assert s.reader(c3).status == "active"


def test_classify_refuses_what_is_not_mail_naming_the_file(dispatch_sqlite, tmp_path):
    garbage = tmp_path / "garbage.eml"
    garbage.write_bytes(NOT_MAIL)
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    huge = tmp_path / "huge.eml"
    with open(huge, "wb") as f:
        f.truncate(EML_BYTES + 1)
    for path, words in [(garbage, "不是邮件"), (empty, "不是邮件"), (huge, "文件过大"),
                        (tmp_path / "missing.eml", "不存在"), (tmp_path, "文件夹")]:
        r = dispatch_sqlite("inbox", "classify", str(path))
        line = "".join(r.stderr.split("\n"))
        assert r.exit_code == 1 and str(path) in line and words in line, r.stderr
        assert english_words(r.stderr) == [], r.stderr


# -- the classifier alone ------------------------------------------------------------------

TOKEN = "abcdefghijklmnopqrstuvwxyz234567"


def _plain(headers: str, body: str = "正文") -> bytes:
    return _crlf(headers + "Content-Type: text/plain; charset=utf-8\n"
                 "Content-Transfer-Encoding: 8bit\n\n") + body.encode()


@pytest.mark.parametrize("headers, kind", [
    ("Auto-Submitted: auto-replied\n", "auto_reply"),
    ("Auto-Submitted: auto-generated\n", "auto_reply"),
    ("Auto-Submitted: no\n", "human"),
    ("X-Autoreply: yes\n", "auto_reply"),
    ("X-Autorespond: vacation\n", "auto_reply"),
    ("Precedence: bulk\n", "auto_reply"),
    ("Precedence: auto_reply\n", "auto_reply"),
    ("Return-Path: <>\n", "auto_reply"),
    ("X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply\n", "human"),
    (f"Subject: {_b64_word('自动答复: ' + SUBJECT)}\n", "auto_reply"),
    ("Subject: Automatic reply: bulletin\n", "auto_reply"),
    ("Subject: Out of Office\n", "auto_reply"),
    (f"Subject: {_b64_word('【休假】您好')}\n", "auto_reply"),
    (f"Subject: {_b64_word('回复：退信的事')}\n", "human"),  # a person writing about bounces
    ("Subject: Re: Undeliverable mail\n", "human"),
])
def test_auto_reply_signs(headers, kind):
    c = classify(_plain(f"From: x@example.com\nTo: {fb(TOKEN)}\n" + headers))
    assert c.kind == kind and c.token == TOKEN


@pytest.mark.parametrize("build, hard", [
    (lambda: dsn(TOKEN, "x@example.com"), True),
    (lambda: dsn(TOKEN, "x@example.com", status="5.2.2", diagnostic="552 5.2.2 over quota"), False),
    (lambda: dsn(TOKEN, "x@example.com", status="4.4.1", action="delayed",
                 diagnostic="connect timed out"), False),
    (lambda: postfix_text_bounce(TOKEN, "x@example.com"), True),
    (lambda: qq_bounce(TOKEN, "x@qq.com"), True),
    (lambda: qq_bounce(TOKEN, "x@qq.com", reason="对方邮箱已满", code=""), False),
    (lambda: _plain("From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n"
                    f"To: {bo(TOKEN)}\nSubject: Delivery Status Notification (Failure)\n",
                    "Your message wasn't delivered to x@example.com because the address "
                    "couldn't be found. 550 5.1.1 The email account does not exist."), True),
    (lambda: _plain(f"From: postmaster@163.com\nTo: {bo(TOKEN)}\n"
                    f"Subject: {_b64_word('系统退信')}\n",
                    "收件人：x@163.com\n投递失败：用户不存在 550 User not found"), True),
])
def test_bounces_and_whether_they_are_hard(build, hard):
    c = classify(build())
    assert c.kind == "bounce" and c.hard is hard and c.token == TOKEN
    assert c.recipient in ("x@example.com", "x@qq.com", "x@163.com")


def test_a_success_notice_is_not_a_bounce():
    c = classify(dsn(TOKEN, "x@example.com", status="2.0.0", action="delivered",
                     diagnostic="250 ok"))
    assert c.kind == "auto_reply" and c.hard is None


def test_a_reply_quoting_bounce_words_is_a_reply():
    c = classify(_plain(f"From: x@example.com\nTo: {fb(TOKEN)}\nSubject: Re: hi\n",
                        "I got this: 550 5.1.1 user unknown\n> Delivery failed"))
    assert c.kind == "human"


@pytest.mark.parametrize("words, unsubscribe", [
    ("退订", True), ("TD", True), ("退订。", True), ("请问怎么退订？", False)])
def test_a_reply_that_says_only_unsubscribe(words, unsubscribe):
    c = classify(_plain(f"From: x@example.com\nTo: {fb(TOKEN)}\nSubject: Re: hi\n", words))
    assert c.kind == "human" and c.unsubscribe is unsubscribe


def test_an_auto_reply_or_bounce_never_unsubscribes_by_its_words():
    assert not classify(_plain(f"From: x@example.com\nTo: {fb(TOKEN)}\nAuto-Submitted: "
                               "auto-replied\n", "退订")).unsubscribe
    assert not classify(dsn(TOKEN, "x@example.com")).unsubscribe


HOSTILE = [
    b"",
    b"   \r\n\r\n",
    NOT_MAIL,
    bytes(range(256)) * 64,
    b"From: x@example.com\r\n\r\n" + b"\x00" * 1000,
    b"Subject: =?utf-8?B?????=\r\n\r\n",
    b"Subject: =?no-such-charset?Q?=E4=BD=A0?=\r\nFrom: <<<>>>\r\n\r\nx",
    b"From: x@example.com\r\nContent-Type: text/plain; charset=no-such-charset\r\n\r\n\xe4\xbd\xa0",
    b"From: x@example.com\r\nContent-Type: multipart/mixed; boundary=\"a\"\r\n\r\n"
    + b"--a\r\nContent-Type: multipart/mixed; boundary=\"a\"\r\n\r\n" * 3000,
    b"From: x@example.com\r\nContent-Type: multipart/report; report-type=delivery-status\r\n\r\nno parts",
    b"From: x@example.com\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n"
    b"Final-Recipient: rfc822;\r\nStatus: 9.9.9.9.9\r\n",
    b"From: MAILER-DAEMON@x\r\nSubject: " + b"\xe9\x80\x80\xe4\xbf\xa1" * 5000 + b"\r\n\r\n",
    b"To: " + b"feedback+" * 20000 + b"\r\n\r\n",
    b"Message-ID: <" + b"x" * 5000 + b">\r\nFrom: a@b\r\n\r\n",
]


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_gives_a_result_or_a_chinese_refusal(raw):
    try:
        c = classify(raw)
    except Refused as exc:
        assert english_words(str(exc)) == [], str(exc)
        return
    assert c.kind in ("human", "auto_reply", "bounce")
    assert c.message_id is None or len(c.message_id) <= 250


def test_random_bytes_never_crash():
    rng = random.Random(7)
    for _ in range(300):
        head = rng.choice([b"", b"From: a@b\r\n", b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n"])
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 400)))
        with contextlib.suppress(Refused):
            classify(head + b"\r\n" + body + b"\r\n--b\r\n" + body)


def test_a_message_over_the_cap_is_refused():
    with pytest.raises(Refused, match="文件过大"):
        classify(b"From: a@b\r\n\r\n" + b"x" * EML_BYTES)


# -- the inbox part of `dispatch run`, and the help ----------------------------------------


@pytest.mark.slow
def test_run_polls_the_inbox_and_reports_it_in_healthz(tmp_path, sqlite_url, mail, imap):
    from test_service import Service, child_env, http_get, wait_for

    dispatch = Dispatch(tmp_path, sqlite_url)
    s = install(dispatch, tmp_path, mail, imap)
    port = free_port()
    with dispatch.config.open("a", encoding="utf-8") as f:
        f.write(f'[web]\nlisten = "127.0.0.1:{port}"\nbase_url = "http://127.0.0.1:{port}"\n')
    text = dispatch.config.read_text(encoding="utf-8").replace("[imap]\n", "[imap]\nenabled = true\n")
    dispatch.config.write_text(text, encoding="utf-8")
    a1 = next(iter(READERS))
    s.append(gmail_reply(a1, s.token(a1)))
    run = Service("run", ["--config", str(dispatch.config), "run"], tmp_path, child_env(s.env))
    try:
        wait_for(lambda: len(s.feedback()) == 1, "the reply stored", watch=[run])
        wait_for(lambda: s.inbox() == [], "the inbox emptied", watch=[run])
        status, body = wait_for(
            lambda: (r := http_get(f"http://127.0.0.1:{port}/healthz"))[0] == 200 and r,
            "/healthz", watch=[run])
        assert "inbox: ok" in body
        s.append(qq_reply(a1, s.token(a1)))  # the next poll takes it
        wait_for(lambda: len(s.feedback()) == 2, "the second reply stored", watch=[run])
        assert run.stop() == 0, run.log()
        log = run.log()
        assert "inbox: found 1" in log and a1 not in log and "收到" not in log
    finally:
        run.close()


PROBE_COMMANDS = [["inbox"], ["inbox", "classify"], ["inbox", "poll"]]


@pytest.mark.parametrize("command", PROBE_COMMANDS, ids=" ".join)
def test_inbox_help_is_chinese_and_imports_nothing_heavy(command):
    from test_cli_startup import HEAVY, PROBE

    done = subprocess.run(
        [sys.executable, "-c", PROBE.replace("HEAVY", repr(json.dumps(HEAVY))), *command, "--help"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result["code"] == 0 and result["loaded"] == [], done.stderr
    assert english_words(done.stdout) == [], done.stdout
    narrow = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0 and max(cells(line) for line in narrow.stdout.splitlines()) <= 80
