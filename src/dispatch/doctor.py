"""`dispatch doctor`: checks every configured part and says, in Chinese, what is wrong
and where to fix it.

One check per part, in this order: 配置, 数据库, 邮件发送 (SMTP), 收信 (IMAP, when
enabled), 企业微信 and its callback (when enabled), 网页. Each returns one `Finding`; each
runs under a deadline and never raises: a fault in one (or a bug) is that part's finding
and the others still run.

The checks change nothing a user would notice: the database is not migrated (a schema
behind is reported, with `dispatch db upgrade` as the fix), no mail is sent (SMTP says
QUIT after AUTH; without a username, MAIL FROM and RSET find whether the server wants
AUTH), and the mailbox is only listed. The one thing written is a fresh WeChat Work access
token, into the token cache every process shares.

Secrets are never in a finding, not even in part: servers' replies are reduced to their
codes, exceptions to their kind.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import email.utils
import imaplib
import logging
import os
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar
from urllib.parse import urlsplit

from dispatch.errors import Refused, os_reason
from dispatch.net import is_loopback

if TYPE_CHECKING:
    import aiosmtplib

    from dispatch.config import Config

log = logging.getLogger(__name__)

Status = Literal["ok", "warning", "problem"]
T = TypeVar("T")

# How long one network step may take (connect, a reply), whatever the config allows the
# services; and how long a whole check may take before it is given up.
NET_SECONDS = 10.0
CHECK_SECONDS = 25.0

CONFIG = "配置"
DATABASE = "数据库"
SMTP = "邮件发送"
IMAP = "收信"
WECOM = "企业微信"
WECOM_CALLBACK = "企业微信回调"
WEB = "网页"

SECURITY_WORDS = {"none": "不加密", "starttls": "STARTTLS 加密", "tls": "TLS 加密"}
AES_KEY_CHARS = 43  # WeChat Work's EncodingAESKey: 32 bytes in base64 without its "="
CALLBACK_PATH = "/wecom/callback"
WECOM_ERRCODES_URL = "https://developer.work.weixin.qq.com/document/path/90313"


@dataclass(frozen=True)
class Finding:
    """What one check found: the part (Chinese), how it stands, one line saying what was
    found and, for a problem (or a warning), one line saying where to fix it."""

    part: str
    status: Status
    message: str
    fix: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"part": self.part, "status": self.status, "message": self.message, "fix": self.fix}


def ok(part: str, message: str) -> Finding:
    return Finding(part, "ok", message)


def warning(part: str, message: str, fix: str) -> Finding:
    return Finding(part, "warning", message, fix)


def problem(part: str, message: str, fix: str) -> Finding:
    return Finding(part, "problem", message, fix)


def _advice(part: str, line: str, fallback: str) -> Finding:
    """A problem from a line of the project's own (a refusal, a database fault) written as
    "what：请 what to do": split there, so the fix stands on its own line."""
    what, sep, todo = line.partition("：请")
    if sep:
        return problem(part, what, todo)
    return problem(part, line, fallback)


# -- running them ----------------------------------------------------------------------


def examine(config_path: str | None) -> list[Finding]:
    """Load the configuration as every command does, then run every check (blocking)."""
    from dispatch.config import load

    try:
        config = load(config_path)
    except Refused as exc:
        return [problem(CONFIG, f"配置读不进来：{exc}", "改正上面指出的那一项，再运行 dispatch doctor")]
    return asyncio.run(diagnose(config))


async def diagnose(config: Config) -> list[Finding]:
    """Every check that applies to `config`, in order."""
    findings = [
        await _guarded(CONFIG, _in_thread(lambda: check_config(config))),
        await _guarded(DATABASE, _in_thread(lambda: check_database(config))),
        await _guarded(SMTP, check_smtp(config)),
    ]
    database_ready = findings[1].status != "problem"
    if config.imap.enabled:
        findings.append(await _guarded(IMAP, _in_thread(lambda: check_imap(config))))
    if config.wecom.enabled:
        findings.append(await _guarded(WECOM, check_wecom(config, database_ready=database_ready)))
        findings.append(await _guarded(WECOM_CALLBACK, _in_thread(lambda: check_callback(config))))
    findings.append(await _guarded(WEB, _in_thread(lambda: check_web(config))))
    return findings


async def _guarded(part: str, check: Awaitable[Finding]) -> Finding:
    """The check's finding; a problem when it overran its deadline or raised (a bug)."""
    try:
        return await asyncio.wait_for(check, CHECK_SECONDS)
    except TimeoutError:
        return problem(part, f"检查超过 {CHECK_SECONDS:g} 秒没有结果",
                       "检查网络，以及配置里这一部分的主机和端口")
    except Exception:
        log.debug("doctor: the check of %s failed", part, exc_info=True)
        return problem(part, "检查时程序出了意外的错误", "用 dispatch -v doctor 看详情，并报告给维护人员")


async def _in_thread(work: Callable[[], T]) -> T:
    """`work` in a daemon thread: a check stuck in a blocking call (a database that does
    not answer) is abandoned at its deadline, and does not hold the command's exit."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():  # given up meanwhile
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = work(), None
        except BaseException as exc:  # handed to the awaiting check
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="dispatch-doctor", daemon=True).start()
    return await done


# -- 配置 --------------------------------------------------------------------------------


def check_config(config: Config) -> Finding:
    """The file in use, and the files and folders it names."""
    from dispatch.instance import check

    try:
        check(config)
    except Refused as exc:
        return problem(CONFIG, str(exc), "改正配置里的这一项，或建好它指向的文件或文件夹")
    if config.source is None:
        return ok(CONFIG, f"没有配置文件，用内置默认值（数据放在 {config.base_dir}）")
    return ok(CONFIG, f"配置文件 {config.source}；模板、产业规则和读者名单的路径都在")


# -- 数据库 ------------------------------------------------------------------------------


def check_database(config: Config) -> Finding:
    """Connects, the schema is the newest, an SQLite file can be written. Never migrates."""
    from sqlalchemy.engine import make_url

    from dispatch.db.errors import describe, masked
    from dispatch.db.session import current_revision, head_revision, make_engine

    url = config.database_url
    shown = masked(url)
    target = "请改正 [database] url 或环境变量 $DISPATCH_DATABASE_URL"
    try:
        parsed = make_url(url)
    except Exception:
        return problem(DATABASE, f"数据库网址 {shown} 写得不对", target.removeprefix("请"))
    file = (Path(parsed.database) if parsed.get_backend_name() == "sqlite"
            and parsed.database not in (None, "", ":memory:") else None)
    if file is not None and not file.exists():
        return problem(DATABASE, f"SQLite 数据库文件 {file} 还不存在",
                       "运行 dispatch db upgrade（会建好它和其中的表），或改正 [database] url")
    busy = min(config.database.busy_timeout_seconds, NET_SECONDS)
    try:
        engine = make_engine(url, busy_timeout=busy)
    except Exception:  # an unknown dialect or driver
        return problem(DATABASE, f"数据库网址 {shown} 用不了（不支持的数据库或驱动）",
                       target.removeprefix("请"))
    try:
        current = current_revision(engine)
    except Exception as exc:
        line = describe(exc, url, busy_timeout=busy)
        if line is None:
            log.debug("doctor: the database could not be read", exc_info=True)
            line = f"读不了数据库 {shown}：{target}"
        return _advice(DATABASE, line, target.removeprefix("请"))
    finally:
        engine.dispose()
    head = head_revision()
    if current is None:
        return problem(DATABASE, f"{shown} 里还没有建表", "运行 dispatch db upgrade")
    if current != head:
        return problem(
            DATABASE, f"{shown} 的结构版本是 {current}，本程序的最新版本是 {head}",
            "运行 dispatch db upgrade（若这个库是更新版本的 dispatch 建的，请改为升级 dispatch）",
        )
    if file is not None and not (os.access(file, os.W_OK) and os.access(file.parent, os.W_OK)):
        return problem(
            DATABASE, f"SQLite 数据库 {file} 只能读不能写",
            f"让运行 dispatch 的用户能写这个文件和它所在的文件夹 {file.parent}"
            "（SQLite 要在旁边建 -wal、-shm 文件）",
        )
    return ok(DATABASE, f"{shown}：连接正常，结构是最新版本 {head}")


# -- 邮件发送 -----------------------------------------------------------------------------


async def check_smtp(config: Config) -> Finding:
    """Connect with the configured security, EHLO, AUTH when a username is set; QUIT."""
    import aiosmtplib

    from dispatch.mailtls import check_security, tls_context

    s = config.smtp
    where = f"{s.host}:{s.port}"
    try:
        check_security("smtp", s.host, security=s.security, tls_verify=s.tls_verify,
                       sends_password=bool(s.username))
    except Refused as exc:
        return _advice(SMTP, str(exc), "改正配置的 [smtp] 一节")
    password = config.secrets.smtp_password
    if s.username and not password:
        return problem(SMTP, "设置了 [smtp] username，但没有密码",
                       "在环境变量 $DISPATCH_SMTP_PASSWORD 中设置发信邮箱的密码")
    try:
        context = (tls_context(ca_file=str(config.path(s.tls_ca_file)) if s.tls_ca_file else None,
                               verify=s.tls_verify) if s.security != "none" else None)
    except (OSError, ssl.SSLError) as exc:
        reason = os_reason(exc) if not isinstance(exc, ssl.SSLError) else "不是有效的 PEM 证书"
        return problem(SMTP, f"[smtp] tls_ca_file 读不了（{reason}）",
                       "把 [smtp] tls_ca_file 设为私有 CA 证书（PEM 文件）的路径")
    smtp = aiosmtplib.SMTP(
        hostname=s.host, port=s.port, timeout=min(s.timeout_seconds, NET_SECONDS),
        use_tls=s.security == "tls", start_tls=False, tls_context=context,
    )
    security = SECURITY_WORDS[s.security]
    try:
        await smtp.connect()
        if s.security == "starttls":
            await smtp.starttls()
        await smtp.ehlo()
        if s.username:
            await smtp.login(s.username, password)
            found = ok(SMTP, f"{where}：连接成功（{security}），用户“{s.username}”登录成功；没有发送邮件")
        else:
            found = await _without_auth(smtp, config, where, security)
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.quit()
        return found
    except (aiosmtplib.SMTPException, OSError) as exc:
        return _smtp_fault(exc, config, where)
    finally:
        smtp.close()


async def _without_auth(
    smtp: aiosmtplib.SMTP, config: Config, where: str, security: str
) -> Finding:
    """Whether the server takes mail without AUTH: MAIL FROM, then RSET (nothing sent)."""
    import aiosmtplib

    sender = email.utils.parseaddr(config.smtp.from_)[1]
    try:
        await smtp.mail(sender)
    except aiosmtplib.SMTPSenderRefused as exc:
        if exc.code == 530 or (smtp.supports_extension("auth") and exc.code in (550, 554)
                               and "auth" in exc.message.lower()):
            return problem(SMTP, f"邮件服务器 {where} 要求登录，但 [smtp] username 没有设置",
                           "在 [smtp] username 填写发信邮箱的登录名，密码放在环境变量 "
                           "$DISPATCH_SMTP_PASSWORD")
        if exc.code >= 500:
            return warning(SMTP, f"邮件服务器 {where} 不接受发件人地址“{sender}”（{exc.code}）",
                           "改正 [smtp] from，用这台服务器允许的发件地址")
    with contextlib.suppress(aiosmtplib.SMTPException):
        await smtp.rset()
    return ok(SMTP, f"{where}：连接成功（{security}），不需要登录；没有发送邮件")


def _smtp_fault(exc: BaseException, config: Config, where: str) -> Finding:
    import aiosmtplib

    s = config.smtp
    check_port = ("检查 [smtp] host、[smtp] port 和 [smtp] security（465 端口一般用 "
                  "security = \"tls\"，587 端口用 security = \"starttls\"），"
                  "并确认邮件服务器在运行、本机能连到它")
    certificate = _cause(exc, ssl.SSLCertVerificationError)
    if certificate is not None:
        return problem(
            SMTP, f"邮件服务器 {where} 的证书不受信任（{certificate_words(certificate)}）",
            "若它的证书是私有 CA 签发的，把该 CA 的证书（PEM 文件）设为 [smtp] tls_ca_file；"
            "名字不符时把 [smtp] host 改成证书上的名字",
        )
    if _cause(exc, ssl.SSLError) is not None:
        return problem(SMTP, f"与邮件服务器 {where} 的 TLS 握手失败（[smtp] security 为“{s.security}”）",
                       check_port)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        words = "用户名或密码不对" if exc.code == 535 else "登录被拒绝"
        return problem(SMTP, f"邮件服务器 {where} 拒绝登录（{exc.code}：{words}）",
                       "检查 [smtp] username 和环境变量 $DISPATCH_SMTP_PASSWORD")
    if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts are TimeoutErrors too
        return problem(SMTP, f"邮件服务器 {where} 超过 {min(s.timeout_seconds, NET_SECONDS):g} 秒没有回应",
                       check_port)
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        return problem(SMTP, f"邮件服务器 {where} 拒绝了连接（{exc.code}）",
                       "这台服务器现在不接受本机连接：确认 [smtp] host 是你们的发信服务器，或稍后重试")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        gai = _cause(exc, socket.gaierror)
        system = _cause(exc, OSError, unless=aiosmtplib.SMTPException)
        if gai is not None:
            reason = f"主机名“{s.host}”解析不出来"
        elif system is not None and system.errno is not None:
            reason = os_reason(system)
        else:
            reason = "对方断开了连接"
        return problem(SMTP, f"连不上邮件服务器 {where}（{reason}）", check_port)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return problem(SMTP, f"邮件服务器 {where} 的回应出乎意料（{exc.code}）", check_port)
    text = str(exc)
    if "STARTTLS" in text:
        return problem(SMTP, f"邮件服务器 {where} 不支持 STARTTLS",
                       "把 [smtp] security 改为 security = \"tls\"（465 端口），或改正 [smtp] port")
    if "AUTH" in text:
        return problem(SMTP, f"邮件服务器 {where} 不提供登录（AUTH）",
                       "确认 [smtp] security 设对了（很多服务器只在加密后才提供登录），"
                       "或清空 [smtp] username")
    if isinstance(exc, OSError) and exc.errno is not None:
        return problem(SMTP, f"与邮件服务器 {where} 的连接出错（{os_reason(exc)}）", check_port)
    return problem(SMTP, f"与邮件服务器 {where} 的对话出错", check_port)


_CERTIFICATE_WORDS = {
    10: "证书已过期",
    9: "证书还没到生效时间",
    18: "证书是自签名的",
    19: "证书链里有自签名的证书",
    20: "签发证书的 CA 不在信任之列",
    21: "签发证书的 CA 不在信任之列",
    62: "证书上的名字与主机名不符",
}


def certificate_words(exc: ssl.SSLCertVerificationError) -> str:
    """Why a certificate was not trusted, in Chinese (OpenSSL's words are English)."""
    return _CERTIFICATE_WORDS.get(exc.verify_code, "证书验证不通过")


E = TypeVar("E", bound=BaseException)


def _cause(
    exc: BaseException, kind: type[E], *, unless: type[BaseException] | None = None
) -> E | None:
    """`exc` or the first exception in its chain of causes that is a `kind` (and not an
    `unless`: aiosmtplib's errors are OSErrors without a number, wrapping the real one)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind) and not (unless and isinstance(current, unless)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


# -- 收信 --------------------------------------------------------------------------------


def check_imap(config: Config) -> Finding:
    """Log in; the mailbox exists; the processed mailbox exists or will be made."""
    from dispatch.feedback.imap import ImapSettings, Mailbox, MailboxFault, mailbox_name

    try:
        settings = ImapSettings.from_config(config)
    except Refused as exc:
        return _advice(IMAP, str(exc), "改正配置的 [imap] 一节")
    if not settings.password:
        return problem(IMAP, "设置了 [imap] username，但没有密码",
                       "在环境变量 $DISPATCH_IMAP_PASSWORD 中设置收信邮箱的密码")
    settings = dataclasses.replace(
        settings, timeout_seconds=min(settings.timeout_seconds, NET_SECONDS))
    where = settings.where
    check_port = ("检查 [imap] host、[imap] port 和 [imap] security（993 端口一般用 "
                  "security = \"tls\"，143 端口用 security = \"starttls\"）")

    def exists(box: Mailbox, name: str) -> bool:
        status, data = box.conn.list('""', mailbox_name(name))
        return status == "OK" and any(isinstance(d, bytes | tuple) for d in data)

    try:
        with Mailbox(settings) as box:
            inbox = exists(box, settings.mailbox)
            processed = exists(box, settings.processed_mailbox)
    except MailboxFault as exc:
        return _advice(IMAP, exc.words, check_port)
    except (OSError, imaplib.IMAP4.error):
        return problem(IMAP, f"与收信服务器 {where} 的连接中途出错", check_port)
    if not inbox:
        return problem(IMAP, f"收信服务器 {where} 上没有邮箱“{settings.mailbox}”",
                       "改正 [imap] mailbox（读者回信到达的那个邮箱，一般是 INBOX）")
    then = "也在" if processed else "还没有，第一次收取时会建好"
    return ok(IMAP, f"{where}：用户“{settings.username}”登录成功；邮箱“{settings.mailbox}”在，"
                    f"放处理过的邮件的“{settings.processed_mailbox}”{then}")


# -- 企业微信 ------------------------------------------------------------------------------


async def check_wecom(config: Config, *, database_ready: bool) -> Finding:
    """The app's settings are there, and a fresh access token can be had with them."""
    w = config.wecom
    missing = [name for name, value in (
        ("[wecom] corp_id", w.corp_id), ("[wecom] agent_id", w.agent_id),
        ("$DISPATCH_WECOM_SECRET", config.secrets.wecom_secret),
    ) if not value]
    if missing:
        return problem(WECOM, "没有设置 " + "、".join(missing),
                       "在配置的 [wecom] 一节填写企业 ID（corp_id）和应用的 agent_id，"
                       "应用的密钥放在环境变量 $DISPATCH_WECOM_SECRET")
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    from dispatch.db.models import WecomToken
    from dispatch.deliver.wecom_api import WecomApi, WecomError, WecomTimeout, WecomUnreachable
    from dispatch.runtime import Runtime

    base = w.api_base_url
    network = f"检查 [wecom] api_base_url（{base}）和本机能否访问它（防火墙、代理）"
    runtime = Runtime(config)
    try:
        if database_ready:
            # The database check found the schema current: opening it migrates nothing.
            sessions = runtime.sessions
        else:
            # The token is kept in the database, which has a problem of its own (above):
            # the secret is still worth checking, with a token kept nowhere.
            scratch = create_engine("sqlite://")
            WecomToken.metadata.create_all(scratch, tables=[WecomToken.__table__])  # type: ignore[list-item]
            sessions = sessionmaker(scratch)
        api = WecomApi.from_config(config, sessions)
        try:
            await api.access_token(refresh=True)
        finally:
            await api.close()
    except WecomTimeout:
        return problem(WECOM, f"企业微信接口 {base} 超过 {w.timeout_seconds:g} 秒没有回应", network)
    except WecomUnreachable:
        return problem(WECOM, f"连不上企业微信接口 {base}", network)
    except WecomError as exc:
        return wecom_error(exc.errcode)
    finally:
        if "engine" in runtime.__dict__:  # opened: close it
            runtime.engine.dispose()
    return ok(WECOM, f"企业“{w.corp_id}”的应用 {w.agent_id}：取到了新的访问令牌（{base}）")


def wecom_error(errcode: int | None) -> Finding:
    """A WeChat Work error code as a finding (its errmsg is English, and not shown)."""
    from dispatch.deliver.wecom_codes import meaning

    if errcode == 40013:
        return problem(WECOM, "企业 ID 不对（企业微信错误码 40013）",
                       "改正 [wecom] corp_id（企业微信管理后台“我的企业”页最下方的企业 ID）")
    if errcode in (40001, 40091):
        return problem(WECOM, f"应用的密钥不对（企业微信错误码 {errcode}）",
                       "改正环境变量 $DISPATCH_WECOM_SECRET（管理后台应用详情页里的密钥，"
                       "要与 [wecom] agent_id 是同一个应用）")
    if errcode == 60020:
        return problem(WECOM, "本机的 IP 不在应用的“企业可信IP”名单里（企业微信错误码 60020）",
                       "在企业微信管理后台的应用详情页，把本机访问外网用的 IP 加进“企业可信IP”")
    if errcode == -1:
        return problem(WECOM, "企业微信系统繁忙（错误码 -1）", "稍后再运行 dispatch doctor")
    if errcode is None:
        return problem(WECOM, "企业微信接口的回应不对",
                       "检查 [wecom] api_base_url 是否是企业微信的接口地址")
    return problem(WECOM, f"企业微信拒绝了取令牌（错误码 {errcode}：{meaning(errcode).zh}）",
                   f"按错误码查企业微信的说明：{WECOM_ERRCODES_URL}")


def aes_key_ok(key: str) -> bool:
    """Whether `key` is an EncodingAESKey: 43 characters that decode to 32 bytes."""
    if len(key) != AES_KEY_CHARS:
        return False
    try:
        return len(base64.b64decode(key + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def check_callback(config: Config) -> Finding:
    """The callback's token and AES key are there and the key is well-formed."""
    secrets = config.secrets
    url = config.web.base_url.rstrip("/") + CALLBACK_PATH
    set_up = (f"在企业微信管理后台的应用“接收消息”里设置回调地址 {url}，把同样的“Token”和"
              "“EncodingAESKey”放进环境变量 $DISPATCH_WECOM_TOKEN 和 $DISPATCH_WECOM_AES_KEY")
    if secrets.wecom_aes_key and not aes_key_ok(secrets.wecom_aes_key):
        return problem(WECOM_CALLBACK,
                       "环境变量 $DISPATCH_WECOM_AES_KEY 不是有效的“EncodingAESKey”"
                       "（应为 43 个字符，能解码成 32 字节）",
                       "从企业微信管理后台应用的“接收消息”设置页原样复制“EncodingAESKey”")
    missing = [name for name, value in (
        ("$DISPATCH_WECOM_TOKEN", secrets.wecom_token),
        ("$DISPATCH_WECOM_AES_KEY", secrets.wecom_aes_key),
    ) if not value]
    if missing:
        what = "回调没有设置（缺 " + "、".join(missing) + "）"
        if config.wecom.message_type == "template_card":
            return problem(WECOM_CALLBACK,
                           what + "：[wecom] message_type = \"template_card\" 的消息卡片上，"
                           "“有用”“没用”按钮点了没有回应", set_up)
        return warning(WECOM_CALLBACK, what + "：读者在企业微信里的回复和退订收不到", set_up)
    return ok(WECOM_CALLBACK, f"回调地址 {url}；“Token”和“EncodingAESKey”都已设置")


# -- 网页 --------------------------------------------------------------------------------


def check_web(config: Config) -> Finding:
    """[web] base_url: absolute http(s), readable by readers, encrypted beyond loopback."""
    url = config.web.base_url
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        return problem(WEB, f"[web] base_url（现为“{url}”）不是以 http:// 或 https:// 开头的完整网址",
                       "把 [web] base_url 写成读者能打开的完整网址，如 https://bulletin.example.gov.cn")
    if is_loopback(host):
        smtp_host = config.smtp.host
        wecom_base = urlsplit(config.wecom.api_base_url).hostname or ""
        if not is_loopback(smtp_host) or (config.wecom.enabled and not is_loopback(wecom_base)):
            via = f"邮件发往“{smtp_host}”" if not is_loopback(smtp_host) else "企业微信消息发往真实的企业微信"
            return warning(WEB, f"[web] base_url 指向本机（{url}），而{via}：读者打不开消息里的链接",
                           "把 [web] base_url 改成读者能访问的网址")
        return ok(WEB, f"{url}（本机地址，只适合试用）")
    if parts.scheme == "http":
        return warning(WEB, f"[web] base_url 用的是不加密的 http://（{url}）：读者的链接（各带本人的投递标记）"
                            "在网上不加密传送",
                       "改用 https:// 开头的网址（在前面的 nginx 上配置证书）")
    return ok(WEB, url)
