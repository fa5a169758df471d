"""The WeChat Work callback: what readers send the bulletin's app, and their card presses.

    GET  /wecom/callback?msg_signature&timestamp&nonce&echostr
                            URL verification (接收消息 → 设置 API 接收): the decrypted
                            echostr as text/plain, nothing else
    POST /wecom/callback?msg_signature&timestamp&nonce
                            a message or event, AES-encrypted in ``<xml><Encrypt>``:
                            stored once (dispatch.feedback.wecom_inbound), answered 200
                            with an empty body (no passive reply: replies go through
                            message/send, after the answer)

Present only when ``[wecom] enabled`` and the callback's settings are all given (``[wecom]
corp_id``, $DISPATCH_WECOM_TOKEN, $DISPATCH_WECOM_AES_KEY); otherwise the app's 404.

Refused, with nothing stored: a body over MAX_BODY_BYTES (413); XML with a DOCTYPE or an
entity, or no ``Encrypt`` (400); a bad signature, another corp id (the outer and inner
ToUserName, and the corp id inside the ciphertext: wechatpy's InvalidCorpIdException), a
timestamp more than WINDOW_SECONDS from now, a ciphertext that does not decrypt (403).
Accepted and ignored (200, nothing stored): a message for another AgentID.
The signature check and decryption are wechatpy's ``WeChatCrypto``; the outer XML is read
with defusedxml and handed over as ``{"Encrypt": …}``, so wechatpy's own xmltodict
parsing never sees the body.

WeChat Work retries a callback it had no answer to within 5 s: the work is a few small
queries in the thread pool; a replay is recognised by its key and stores nothing new.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import IntegrityError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dispatch.db.session import transaction
from dispatch.errors import Refused
from dispatch.feedback import wecom_inbound
from dispatch.feedback.wecom_inbound import (
    CardUpdate,
    NotAMessage,
    Place,
    Reply,
    Stored,
    safe_xml,
    text_of,
)
from dispatch.runtime import Runtime
from dispatch.web.forms import read_capped

if TYPE_CHECKING:
    from wechatpy.enterprise.crypto import WeChatCrypto

log = logging.getLogger(__name__)

PATH = "/wecom/callback"
# A message is a few hundred bytes of XML, base64'd; WeChat Work's text is ≤ 2048 bytes.
MAX_BODY_BYTES = 64 * 1024
WINDOW_SECONDS = 300
AES_KEY_CHARS = 43

class Replier(Protocol):
    """How the callback answers a reader, after its empty answer to WeChat Work:
    dispatch.deliver.wecom_api.WecomApi, or anything with its shape."""

    async def send_text(self, touser: str, content: str) -> object: ...

    async def update_card_button(self, touser: str, response_code: str, text: str) -> object: ...


def configured(runtime: Runtime) -> bool:
    wecom, secrets = runtime.config.wecom, runtime.config.secrets
    return bool(wecom.enabled and wecom.corp_id and secrets.wecom_token and secrets.wecom_aes_key)


def make_crypto(token: str, aes_key: str, corp_id: str) -> WeChatCrypto:
    """wechatpy's crypto; Refused, naming the variable, for a key that is no EncodingAESKey
    (wechatpy would fail with a bare assertion). The key never appears in the message."""
    import base64
    import binascii

    from wechatpy.enterprise.crypto import WeChatCrypto

    try:
        valid = len(aes_key) == AES_KEY_CHARS and len(base64.b64decode(aes_key + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise Refused(
            "环境变量 DISPATCH_WECOM_AES_KEY 不是有效的 EncodingAESKey：应为企业微信管理后台"
            f"“接收消息 → 设置 API 接收”页面上的 {AES_KEY_CHARS} 个字符，请复制后重新设置"
        )
    return WeChatCrypto(token, aes_key, corp_id)


def routes(runtime: Runtime, replier: Replier | None = None,
           clock: Callable[[], float] = time.time) -> list[Route]:
    """The callback's routes, or none when it is not configured (the app's 404)."""
    if not configured(runtime):
        return []
    config = runtime.config
    crypto = make_crypto(config.secrets.wecom_token, config.secrets.wecom_aes_key,
                         config.wecom.corp_id)
    return WecomCallback(runtime, crypto, replier, clock).routes()


def _empty(status: int, background: BackgroundTask | None = None) -> Response:
    return Response(b"", status_code=status, background=background,
                    headers={"Cache-Control": "no-store"})


class WecomCallback:
    def __init__(self, runtime: Runtime, crypto: WeChatCrypto, replier: Replier | None,
                 clock: Callable[[], float] = time.time):
        self.runtime = runtime
        self.crypto = crypto
        self.corp_id = runtime.config.wecom.corp_id
        self.agent_id = str(runtime.config.wecom.agent_id)
        self.replier = replier
        self.clock = clock
        self.place = Place(runtime.config.web.base_url, runtime.config.smtp.reply_domain)

    def routes(self) -> list[Route]:
        return [
            Route(PATH, self.verify, methods=["GET"]),
            Route(PATH, self.receive, methods=["POST"]),
        ]

    # -- GET: URL verification -------------------------------------------------------------

    async def verify(self, request: Request) -> Response:
        params = request.query_params
        echostr = params.get("echostr", "").replace(" ", "+")  # an unescaped "+" read as a space
        if not echostr or not self._fresh(params.get("timestamp", "")):
            return _empty(403)
        try:
            plain = await run_in_threadpool(
                self.crypto.check_signature, params.get("msg_signature", ""),
                params.get("timestamp", ""), params.get("nonce", ""), echostr,
            )
        except Exception as exc:  # bad signature, corp id, base64 or padding
            log.warning("wecom callback: verification refused (%s)", type(exc).__name__)
            return _empty(403)
        log.info("wecom callback: URL verified")
        # As is: no quotes, no BOM, no newline (WeChat Work compares it byte for byte).
        return PlainTextResponse(str(plain), headers={"Cache-Control": "no-store"})

    # -- POST: a message or an event ---------------------------------------------------

    async def receive(self, request: Request) -> Response:
        body = await read_capped(request, MAX_BODY_BYTES)
        if body is None:
            return _empty(413)
        status, stored = await run_in_threadpool(self._handle, dict(request.query_params), body)
        replies = stored.replies if stored is not None else ()
        task = BackgroundTask(self._send, replies) if replies else None
        return _empty(status, task)

    def _fresh(self, timestamp: str) -> bool:
        try:
            return abs(self.clock() - int(timestamp)) <= WINDOW_SECONDS
        except ValueError:
            return False

    def _handle(self, params: Mapping[str, str], body: bytes) -> tuple[int, Stored | None]:
        """Blocking (thread pool): check, decrypt, parse, store."""
        try:
            outer = safe_xml(body)
        except NotAMessage as exc:  # not XML, a DOCTYPE, an entity
            log.warning("wecom callback: body refused (%s)", exc)
            return 400, None
        encrypt = text_of(outer, "Encrypt")
        if outer.tag != "xml" or not encrypt:
            log.warning("wecom callback: body refused (no Encrypt)")
            return 400, None
        to_user = text_of(outer, "ToUserName")
        if to_user and to_user != self.corp_id:
            log.warning("wecom callback: refused (another corp id)")
            return 403, None
        timestamp = params.get("timestamp", "")
        if not self._fresh(timestamp):
            log.warning("wecom callback: refused (timestamp outside ±%ss)", WINDOW_SECONDS)
            return 403, None
        try:
            xml = self.crypto.decrypt_message(
                {"Encrypt": encrypt}, params.get("msg_signature", ""), timestamp,
                params.get("nonce", ""),
            )
        except Exception as exc:  # signature, corp id, base64, padding, length, UTF-8
            log.warning("wecom callback: refused (%s)", type(exc).__name__)
            return 403, None
        try:
            inbound = wecom_inbound.parse(str(xml).encode("utf-8"))
        except NotAMessage as exc:
            log.warning("wecom callback: decrypted body refused (%s)", exc)
            return 400, None
        if inbound.to_user and inbound.to_user != self.corp_id:
            log.warning("wecom callback: refused (another corp id inside)")
            return 403, None
        if inbound.agent_id and inbound.agent_id != self.agent_id:
            # Genuine (signed with our token and key), but for another app of the corp
            # sharing the callback settings: not ours to store; 200 so it is not retried.
            log.warning("wecom callback: ignored (for agent %s, not ours)", inbound.agent_id)
            return 200, Stored("ignored")
        try:
            with transaction(self.runtime.sessions) as session:
                stored = wecom_inbound.store(session, inbound, self.place)
        except IntegrityError:
            # The same request, retried while the first copy was being stored: the first
            # copy's key won, this one stores nothing.
            return 200, Stored("duplicate")
        return 200, stored

    async def _send(self, replies: Sequence[Reply | CardUpdate]) -> None:
        """After the answer: the replies by message/send; a failure is logged, never raised."""
        if self.replier is None:
            log.warning("wecom callback: no sender configured; %d reply(ies) not sent", len(replies))
            return
        for reply in replies:
            try:
                if isinstance(reply, CardUpdate):
                    await self.replier.update_card_button(reply.touser, reply.response_code,
                                                          reply.text)
                else:
                    await self.replier.send_text(reply.touser, reply.content)
            except Exception as exc:
                errcode: Any = getattr(exc, "errcode", None)
                log.warning("wecom callback: reply not sent (%s, errcode %s)",
                            type(exc).__name__, errcode)
