"""The mailbox readers' replies and bounces arrive in, read over IMAP (stdlib imaplib,
blocking: `dispatch run` calls `poll` in a thread).

One poll: log in, make sure `[imap] processed_mailbox` exists, select `[imap] mailbox`,
and for every message in it (all of them: handled ones are moved out), in order:
classify it, store it in its own transaction, then move it to the processed mailbox
(MOVE where the server has it, else COPY, flag \\Deleted and expunge that message).
Nothing is read twice and nothing is deleted; a message stored but not moved (the
connection dropped in between) is moved by the next poll, which finds it stored already.

Messages that are not what they should be:
- over dispatch.limits.EML_BYTES: only their header is fetched and classified (a reply
  with a big attachment still reaches staff, without the attachment);
- not mail at all (no header): moved to the processed mailbox without a row, counted as
  unreadable;
- one that trips over a fault of ours (a bug): left where it is and skipped by later
  polls of this process, logged once.

A fault of the server or of the database (login refused, server down, TLS not
verified, database locked) ends the poll with one WARNING line; the next poll tries again.
Logs never hold addresses or words of the messages: counts only.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from dispatch.db.session import transaction
from dispatch.errors import Refused
from dispatch.feedback.classify import Classified, classify
from dispatch.feedback.store import Stored, store
from dispatch.limits import EML_BYTES
from dispatch.mailtls import check_security, tls_context

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from dispatch.config import Config

log = logging.getLogger(__name__)

# Of a message over EML_BYTES, this much of its header is read.
HEADER_BYTES = 1024 * 1024
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


class MailboxFault(Exception):
    """The server could not be used this time (unreachable, refused the login, TLS …).
    str(): one line for the log; `words`: the same for staff, in Chinese. Neither holds
    the password or anything of the mail."""

    def __init__(self, line: str, words: str):
        super().__init__(line)
        self.words = words


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str
    username: str
    password: str = field(repr=False)
    mailbox: str = "INBOX"
    processed_mailbox: str = "Processed"
    timeout_seconds: float = 30.0
    tls_ca_file: str | None = None
    tls_verify: bool = True

    @classmethod
    def from_config(cls, config: Config) -> ImapSettings:
        """The [imap] settings, checked: Refused (Chinese) when they can't work."""
        imap = config.imap
        if not imap.username:
            raise Refused("[imap] username 为空：请填写收信邮箱的登录名，密码放在环境变量 "
                          "$DISPATCH_IMAP_PASSWORD")
        if imap.timeout_seconds <= 0:
            raise Refused(f"[imap] timeout_seconds = {imap.timeout_seconds}：必须大于 0")
        if imap.poll_seconds < 1:
            raise Refused(f"[imap] poll_seconds = {imap.poll_seconds}：至少为 1")
        if not imap.mailbox.strip() or not imap.processed_mailbox.strip():
            raise Refused("[imap] mailbox 和 processed_mailbox 不能为空")
        if imap.mailbox.strip().lower() == imap.processed_mailbox.strip().lower():
            raise Refused(f"[imap] processed_mailbox = \"{imap.processed_mailbox}\"：不能与 "
                          "mailbox 相同（处理过的邮件要移出收件的邮箱）")
        check_security("imap", imap.host, security=imap.security, tls_verify=imap.tls_verify,
                       sends_password=True)
        return cls(
            host=imap.host, port=imap.port, security=imap.security, username=imap.username,
            password=config.secrets.imap_password, mailbox=imap.mailbox,
            processed_mailbox=imap.processed_mailbox, timeout_seconds=imap.timeout_seconds,
            tls_ca_file=str(config.path(imap.tls_ca_file)) if imap.tls_ca_file else None,
            tls_verify=imap.tls_verify,
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class PollResult:
    """What one poll did, in counts (all that is logged)."""

    found: int = 0  # messages in the mailbox
    replies: int = 0
    auto_replies: int = 0
    bounces: int = 0
    hard_bounces: int = 0
    suspended: int = 0  # readers whose email this poll suspended
    unsubscribed: int = 0
    unmatched: int = 0  # stored, but tied to no delivery or reader
    duplicates: int = 0  # stored before: nothing new
    oversized: int = 0  # over the size cap: classified by their header alone
    unreadable: int = 0  # not mail: moved without a row
    failed: int = 0  # left in the mailbox (a fault of ours, logged)
    moved: int = 0

    def count(self, stored: Stored) -> None:
        if stored.outcome == "duplicate":
            self.duplicates += 1
            return
        if stored.outcome == "unsubscribed":
            self.unsubscribed += 1
            return
        if stored.outcome == "reply":
            self.replies += 1
        elif stored.outcome == "auto_reply":
            self.auto_replies += 1
        else:
            self.bounces += 1
            self.hard_bounces += stored.hard
            self.suspended += stored.suspended
        self.unmatched += not stored.matched

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.as_dict().items() if v or k == "found")


def mailbox_name(name: str) -> str:
    """A mailbox name as IMAP writes it: modified UTF-7 (RFC 3501 5.1.3), quoted."""
    out: list[str] = []
    wide: list[str] = []

    def flush() -> None:
        if wide:
            data = "".join(wide).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-")
            wide.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            wide.append(ch)
    flush()
    encoded = "".join(out)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ok(response: tuple[str, Sequence[object]], what: str, where: str) -> Sequence[object]:
    """The response's data; MailboxFault when the server said NO or BAD."""
    status, data = response
    if status != "OK":
        detail = " ".join(d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d)
                          for d in data if d is not None)
        raise MailboxFault(f"{where}: {what} failed: {detail[:200]}",
                           f"收信服务器 {where} 拒绝了 {what} 命令（{detail[:200]}）")
    return data


class Mailbox:
    """One logged-in IMAP connection (a context manager that logs out)."""

    def __init__(self, settings: ImapSettings):
        self.settings = settings
        self.conn = self._connect()
        self.capabilities: set[str] = set()

    def _connect(self) -> imaplib.IMAP4:
        s = self.settings
        try:
            context = (tls_context(ca_file=s.tls_ca_file, verify=s.tls_verify)
                       if s.security != "none" else None)
            if s.security == "tls":
                return imaplib.IMAP4_SSL(s.host, s.port, ssl_context=context,
                                         timeout=s.timeout_seconds)
            conn = imaplib.IMAP4(s.host, s.port, timeout=s.timeout_seconds)
            if s.security == "starttls":
                try:
                    conn.starttls(ssl_context=context)
                except BaseException:
                    conn.shutdown()
                    raise
            return conn
        except ssl.SSLCertVerificationError as exc:
            raise MailboxFault(
                f"the certificate of {s.where} could not be verified ({exc.verify_message}); "
                "see [imap] tls_ca_file",
                f"收信服务器 {s.where} 的证书验证不通过：请检查 [imap] tls_ca_file（私有 CA 的证书）",
            ) from None
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxFault(f"cannot connect to {s.where} ({_describe(exc)})",
                               f"连不上收信服务器 {s.where}（{_cause_words(exc)}）") from None

    def _ok(self, response: tuple[str, Sequence[object]], what: str) -> Sequence[object]:
        return _ok(response, what, self.settings.where)

    def __enter__(self) -> Mailbox:
        try:
            self._login()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.conn.logout()

    def _login(self) -> None:
        s = self.settings
        try:
            if s.password.isascii() and s.username.isascii():
                self.conn.login(s.username, s.password)
            else:  # LOGIN's strings are ASCII; AUTHENTICATE PLAIN takes UTF-8
                credentials = f"\0{s.username}\0{s.password}".encode()
                self.conn.authenticate("PLAIN", lambda _: credentials)
        except imaplib.IMAP4.error:
            raise MailboxFault(
                f"{s.where} refused the login of [imap] username (password from "
                "$DISPATCH_IMAP_PASSWORD)",
                f"收信服务器 {s.where} 拒绝登录：请检查 [imap] username 和环境变量 "
                "$DISPATCH_IMAP_PASSWORD",
            ) from None
        data = self._ok(self.conn.capability(), "CAPABILITY")
        words = b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace")
        self.capabilities = {w.upper() for w in words.split()}

    def ensure(self, name: str) -> None:
        """Make the mailbox `name` unless it exists."""
        quoted = mailbox_name(name)
        data = self._ok(self.conn.list('""', quoted), "LIST")
        if any(isinstance(d, bytes | tuple) for d in data):
            return
        status, _ = self.conn.create(quoted)
        if status == "OK":
            self.conn.subscribe(quoted)
            log.info("inbox: made the mailbox for handled messages")
            return
        # Made meanwhile by another poller, or refused: LIST says which.
        if not any(isinstance(d, bytes | tuple) for d in self._ok(self.conn.list('""', quoted), "LIST")):
            raise MailboxFault(
                f"cannot make the mailbox [imap] processed_mailbox on {self.settings.where}",
                f"无法在收信服务器 {self.settings.where} 上建立邮箱“{name}”"
                "（[imap] processed_mailbox）",
            )

    def select(self, name: str) -> None:
        status, _ = self.conn.select(mailbox_name(name))
        if status != "OK":
            raise MailboxFault(f"[imap] mailbox does not exist on {self.settings.where}",
                               f"收信服务器 {self.settings.where} 上没有邮箱“{name}”（[imap] mailbox）")

    def uid_validity(self) -> int:
        _, data = self.conn.response("UIDVALIDITY")
        for d in data or ():
            if isinstance(d, bytes) and d.strip().isdigit():
                return int(d)
        return 0

    def sizes(self) -> dict[int, int]:
        """UID → size of every message in the selected mailbox not flagged deleted."""
        data = self._ok(self.conn.uid("SEARCH", "UNDELETED"), "SEARCH")
        uids = [int(u) for d in data if isinstance(d, bytes) for u in d.split()]
        if not uids:
            return {}
        found: dict[int, int] = {}
        for chunk in _chunks(uids, 500):
            for item in self._ok(self.conn.uid("FETCH", _uid_set(chunk), "(RFC822.SIZE)"), "FETCH"):
                line = item[0] if isinstance(item, tuple) else item
                if not isinstance(line, bytes):
                    continue
                uid, size = _UID.search(line), _SIZE.search(line)
                if uid and size:
                    found[int(uid.group(1))] = int(size.group(1))
        return {uid: found[uid] for uid in uids if uid in found}

    def fetch(self, uid: int, *, header_only: bool = False) -> bytes | None:
        """The message's bytes (not marking it seen); None if it is gone."""
        part = f"BODY.PEEK[HEADER]<0.{HEADER_BYTES}>" if header_only else "BODY.PEEK[]"
        for item in self._ok(self.conn.uid("FETCH", str(uid), f"({part})"), "FETCH"):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def move(self, uid: int, target: str) -> None:
        quoted, uid_text = mailbox_name(target), str(uid)
        if "MOVE" in self.capabilities:
            self._ok(self.conn.uid("MOVE", uid_text, quoted), "MOVE")
            return
        self._ok(self.conn.uid("COPY", uid_text, quoted), "COPY")
        self._ok(self.conn.uid("STORE", uid_text, "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
        if "UIDPLUS" in self.capabilities:
            self._ok(self.conn.uid("EXPUNGE", uid_text), "UID EXPUNGE")
        else:
            # Without UIDPLUS, EXPUNGE also removes what others flagged \Deleted in this
            # mailbox: the mailbox is dispatch's alone.
            self._ok(self.conn.expunge(), "EXPUNGE")


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _uid_set(uids: list[int]) -> str:
    return ",".join(str(u) for u in uids)


def _cause_words(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "连接超时"
    if isinstance(exc, ConnectionRefusedError):
        return "连接被拒绝"
    if isinstance(exc, socket.gaierror):
        return "主机名解析不出来"
    if isinstance(exc, ssl.SSLError):
        return "TLS 握手失败"
    if isinstance(exc, imaplib.IMAP4.error):
        return "服务器的回应不对"
    return "网络错误"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


@dataclass
class Poller:
    """Polls one mailbox; remembers the messages it could not handle (a fault of ours), so
    each is logged once and not tried again by this process."""

    settings: ImapSettings
    sessions: sessionmaker[Session]
    bounce_limit: int
    skipped: set[tuple[int, int]] = field(default_factory=set)  # (UIDVALIDITY, UID)

    def poll(self, should_stop: Callable[[], bool] = lambda: False) -> PollResult:
        """One poll (blocking). Raises MailboxFault, or the database's error, when the
        poll could not go on; what it did until then stands."""
        result = PollResult()
        try:
            with Mailbox(self.settings) as box:
                box.ensure(self.settings.processed_mailbox)
                box.select(self.settings.mailbox)
                validity = box.uid_validity()
                sizes = box.sizes()
                result.found = len(sizes)
                for uid, size in sizes.items():
                    if should_stop():
                        break
                    if (validity, uid) in self.skipped:
                        result.failed += 1
                        continue
                    if self._one(box, uid, size, result):
                        box.move(uid, self.settings.processed_mailbox)
                        result.moved += 1
                    else:
                        self.skipped.add((validity, uid))
                        result.failed += 1
        except (OSError, imaplib.IMAP4.error, imaplib.IMAP4.abort) as exc:
            raise MailboxFault(
                f"{self.settings.where}: {_describe(exc)}",
                f"与收信服务器 {self.settings.where} 的连接出错（{_cause_words(exc)}），下次收取时重试",
            ) from None
        return result

    def _one(self, box: Mailbox, uid: int, size: int, result: PollResult) -> bool:
        """Classify and store one message; False: leave it where it is."""
        oversized = size > EML_BYTES
        raw = box.fetch(uid, header_only=oversized)
        if raw is None:  # taken by another poller meanwhile
            return False
        try:
            classified = classify(raw)
        except Refused:
            result.unreadable += 1
            return True
        except Exception as exc:
            log.error("inbox: message UID %s could not be classified (%s); left in the mailbox",
                      uid, type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
            return False
        result.oversized += oversized
        try:
            stored = self._store(classified, raw)
        except Exception as exc:
            if isinstance(exc, OperationalError | InterfaceError | OSError):
                raise  # the database: the poll ends, the message waits for the next
            log.error("inbox: message UID %s could not be stored (%s); left in the mailbox",
                      uid, type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
            return False
        result.count(stored)
        return True

    def _store(self, classified: Classified, raw: bytes) -> Stored:
        for attempt in (1, 2):
            try:
                with transaction(self.sessions) as session:
                    return store(session, classified, raw, bounce_limit=self.bounce_limit)
            except IntegrityError:
                # Another poller stored the same message a moment ago: the second try
                # finds it and stores nothing.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def poller(config: Config, sessions: sessionmaker[Session]) -> Poller:
    return Poller(ImapSettings.from_config(config), sessions, config.feedback.bounce_limit)
