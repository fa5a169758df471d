"""The one wrapper around wechatpy's WeChat Work client (`wechatpy.enterprise.WeChatClient`).

What it adds to wechatpy 1.8, whose traps it works around:

- The access token lives in the database (`wecom_tokens`, keyed "<corp_id>:<agent_id>",
  never by the secret), shared by every worker and process: fetched when none is there
  or when the one there ends within `REFRESH_MARGIN`, and replaced at most once per call
  when the server refuses it (40014 invalid, 42001 expired): one refresh, one retry,
  never a loop. wechatpy's `auto_retry` recurses without bound on 40001/40014/42001, so
  the client is built with `auto_retry=False`, and its own token handling (a cache key
  holding `secret[:10]`, a fetch from the hard-coded public host without a timeout) is
  never used: every call passes the token itself, and `gettoken` goes to the configured
  `api_base_url` with the timeout.
- Errors are one family, `WecomError` (`.errcode`, `.errmsg`): an errcode the server
  answered (45009 included, which wechatpy raises as APILimitedException), `errcode=None`
  for HTTP 5xx, `WecomTimeout` (also a TimeoutError) and `WecomUnreachable` (also a
  ConnectionError) for what `requests` raises. Their text is ours, scrubbed: requests'
  messages quote the URL, whose query holds `corpsecret=` and `access_token=`; neither
  reaches an exception's text, a log or the database (urllib3's DEBUG lines, which quote
  it too, are scrubbed by a filter on its logger).
- wechatpy and requests are synchronous: every call runs in a thread
  (`asyncio.to_thread`), the database's too. One asyncio.Lock per instance makes
  concurrent senders of a process refresh once; across processes the database row is
  the meeting point (a process that finds a token newer than the one refused takes it
  instead of fetching again). Two processes that find no token at the same instant may
  both fetch: harmless, the server answers the same token while it is valid.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.memorystorage import MemoryStorage

from dispatch import clock
from dispatch.db.models import WecomToken
from dispatch.db.session import transaction

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from dispatch.config import Config

log = logging.getLogger(__name__)

# A token is replaced this long before the end the server gave it (7200 s normally).
REFRESH_MARGIN = timedelta(minutes=5)
# The server refused the token: refresh once and try again (not 40001: a wrong secret).
TOKEN_REFUSED = frozenset({40014, 42001})  # invalid access_token, access_token expired
MAX_ERRMSG = 300

_SECRET_PARAMS = re.compile(r"(corpsecret|access_token|secret)=[^&\s'\"<>)]*", re.IGNORECASE)


def scrub(text: str, *secrets: str) -> str:
    """`text` without the query values that are secrets, nor any of `secrets`."""
    text = _SECRET_PARAMS.sub(r"\1=***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class _ScrubQueries(logging.Filter):
    """urllib3 logs each request line (with its query) at DEBUG: scrub it there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg, record.args = scrub(record.getMessage()), None
        else:
            record.msg = scrub(str(record.msg))
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_ScrubQueries())


class WecomError(Exception):
    """A call that did not succeed. `str()` never holds the secret or a token."""

    def __init__(self, errcode: int | None, errmsg: str, result: Mapping[str, Any] | None = None):
        self.errcode = errcode
        self.errmsg = errmsg[:MAX_ERRMSG]
        self.result: dict[str, Any] = dict(result or {})  # the server's answer, if any
        super().__init__(f"{errcode} {self.errmsg}" if errcode is not None else self.errmsg)


class WecomTimeout(WecomError, TimeoutError):
    """No answer within the timeout: the server may have taken the call."""


class WecomUnreachable(WecomError, ConnectionError):
    """No connection to the API host (refused, DNS, TLS, dropped)."""


class _Client(WeChatClient):  # type: ignore[misc]  # wechatpy ships no types
    """wechatpy's client with its token machinery switched off (see the module docstring)."""

    def __init__(self, corp_id: str, secret: str, app: str, timeout: float) -> None:
        self._app = app
        super().__init__(corp_id, secret, session=MemoryStorage(), timeout=timeout, auto_retry=False)

    @property
    def access_token_key(self) -> str:  # wechatpy's holds secret[:10]
        return f"{getattr(self, '_app', '')}_access_token"

    def fetch_access_token(self) -> dict[str, Any]:  # also what its access_token calls
        raise RuntimeError("WecomApi fetches the token itself (configured host, timeout)")


class WecomApi:
    """WeChat Work's server API for one corp and agent, with the token cached in the
    database. See the module docstring."""

    def __init__(
        self,
        corp_id: str,
        agent_id: int,
        secret: str,
        sessions: sessionmaker[Session],
        *,
        api_base_url: str = "https://qyapi.weixin.qq.com",
        timeout_seconds: float = 10.0,
        refresh_margin: timedelta = REFRESH_MARGIN,
        now: Callable[[], datetime] = clock.utcnow,
    ) -> None:
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.app = f"{corp_id}:{agent_id}"
        self.base_url = api_base_url.rstrip("/")
        self.timeout = float(timeout_seconds)
        self.refresh_margin = refresh_margin
        self._secret = secret
        self._sessions = sessions
        self._now = now
        self._client = _Client(corp_id, secret, self.app, self.timeout)
        self._lock = asyncio.Lock()
        # The last token this process used (never logged), and until when it serves.
        self._known: str = ""
        self._known_until = datetime.min
        self._fetches = 0  # gettoken attempts; with the last one's failure, if it failed
        self._failure: WecomError | None = None

    @classmethod
    def from_config(cls, config: Config, sessions: sessionmaker[Session]) -> WecomApi:
        w = config.wecom
        return cls(
            w.corp_id, w.agent_id, config.secrets.wecom_secret, sessions,
            api_base_url=w.api_base_url, timeout_seconds=w.timeout_seconds,
        )

    def __repr__(self) -> str:  # never the secret
        return f"WecomApi({self.app} at {self.base_url})"

    # -- the token ------------------------------------------------------------------

    async def access_token(self, *, refresh: bool = False) -> str:
        """A token valid for at least the refresh margin: the database's, else a new one
        (`refresh=True`: a new one whatever the database holds)."""
        if not refresh and self._known and self._now() < self._known_until:
            return self._known  # no database round trip per message
        seen = self._fetches
        async with self._lock:
            self._share_failure(seen)
            if not refresh:
                cached = await asyncio.to_thread(self._cached)
                if cached:
                    return self._keep(*cached)
            return await self._fetch()

    async def _replace(self, refused: str) -> str:
        """A token other than `refused`: one another sender or process fetched since,
        else a new one."""
        seen = self._fetches
        async with self._lock:
            self._share_failure(seen)
            cached = await asyncio.to_thread(self._cached)
            if cached and cached[0] != refused:
                return self._keep(*cached)
            return await self._fetch()

    def _share_failure(self, seen: int) -> None:
        """A fetch failed while this caller waited for the lock: fail alike rather than ask
        again (fifty messages behind a wrong secret make one gettoken, not fifty)."""
        failure = self._failure
        if self._fetches != seen and failure is not None:
            raise type(failure)(failure.errcode, failure.errmsg, failure.result)

    async def _fetch(self) -> str:
        self._fetches += 1
        try:
            answer = await asyncio.to_thread(self._get_token)
        except WecomError as exc:
            self._failure = exc
            raise
        self._failure = None
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise WecomError(None, "gettoken: no access_token in the answer")
        expires_in = answer.get("expires_in", 7200)
        expires_in = expires_in if isinstance(expires_in, int) and expires_in > 0 else 7200
        expires_at = await asyncio.to_thread(self._store, token, expires_in)
        self._keep(token, expires_at)
        log.info("wecom: new access token for %s (valid %d s)", self.app, expires_in)
        return token

    def _keep(self, token: str, expires_at: datetime) -> str:
        self._known, self._known_until = token, expires_at - self.refresh_margin
        return token

    def _cached(self) -> tuple[str, datetime] | None:
        """The database's token and its end, unless it ends within the margin."""
        with self._sessions() as session:
            row = session.get(WecomToken, self.app)
            if row is None or row.expires_at - self.refresh_margin <= self._now():
                return None
            return row.access_token, row.expires_at

    def _store(self, token: str, expires_in: int) -> datetime:
        now = self._now()
        with transaction(self._sessions) as session:
            row = session.get(WecomToken, self.app)
            if row is None:
                row = WecomToken(app=self.app)
                session.add(row)
            row.access_token = token
            row.fetched_at = now
            row.expires_at = now + timedelta(seconds=expires_in)
            return row.expires_at

    def _get_token(self) -> dict[str, Any]:
        # A list, not a dict: wechatpy adds `access_token` (fetching one from its
        # hard-coded host) only to dict params.
        params = [("corpid", self.corp_id), ("corpsecret", self._secret)]
        return self._call("gettoken", lambda: self._client.get(self._url("gettoken"), params=params))

    # -- calls ------------------------------------------------------------------------

    async def send(self, body: Mapping[str, object]) -> dict[str, object]:
        """POST message/send; the answer (errcode 0: invaliduser, unlicenseduser, msgid …).
        Raises WecomError for any other errcode (81013's answer in `.result`)."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return await self._post("message/send", data)

    async def send_text(self, touser: str, content: str) -> dict[str, object]:
        """A plain text message from the agent (a reply to a reader)."""
        return await self.send({
            "touser": touser, "msgtype": "text", "agentid": self.agent_id,
            "text": {"content": content}, "safe": 0,
        })

    async def update_card_button(self, touser: str, response_code: str, text: str) -> dict[str, object]:
        """After a press on a template_card's button: the member's card shows `text` in
        place of the buttons (update_template_card; the code comes with the press's
        callback event, is good for one use and for 72 hours)."""
        body = {"userids": [touser], "agentid": self.agent_id, "response_code": response_code,
                "button": {"replace_name": text}}
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return await self._post("message/update_template_card", data)

    async def close(self) -> None:
        await asyncio.to_thread(self._client._http.close)

    async def _post(self, endpoint: str, data: bytes) -> dict[str, object]:
        token = await self.access_token()
        try:
            return await asyncio.to_thread(self._post_with, endpoint, data, token)
        except WecomError as exc:
            if exc.errcode not in TOKEN_REFUSED:
                raise
            log.info("wecom: %s refused the access token (%s); refreshing once", endpoint, exc.errcode)
        token = await self._replace(refused=token)
        return await asyncio.to_thread(self._post_with, endpoint, data, token)

    def _post_with(self, endpoint: str, data: bytes, token: str) -> dict[str, object]:
        return self._call(endpoint, lambda: self._client.post(
            self._url(endpoint), params={"access_token": token}, data=data,
            headers={"Content-Type": "application/json; charset=utf-8"},
        ))

    def _url(self, endpoint: str) -> str:
        return f"{self.base_url}/cgi-bin/{endpoint}"

    def _call(self, what: str, call: Callable[[], Any]) -> dict[str, Any]:
        """Run one wechatpy call, turning everything it raises into a WecomError whose
        text holds neither the secret nor a token."""
        hide = (self._secret, self._known)
        try:
            answer = call()
        except WeChatClientException as exc:  # APILimitedException (45009) is one
            response = getattr(exc, "response", None)
            if exc.errcode is None:
                status = getattr(response, "status_code", "?")
                raise WecomError(None, f"{what}: HTTP {status}") from None
            result = _json_of(response)
            errmsg = scrub(str(exc.errmsg or ""), *hide)
            raise WecomError(int(exc.errcode), f"{what}: {errmsg}", result) from None
        except requests.Timeout as exc:  # before ConnectionError: ConnectTimeout is both
            raise WecomTimeout(None, f"{what}: no answer in {self.timeout:g} s ({_reason(exc, hide)})") from None
        except requests.ConnectionError as exc:
            raise WecomUnreachable(None, f"{what}: cannot reach {self.base_url} ({_reason(exc, hide)})") from None
        except requests.RequestException as exc:
            raise WecomError(None, f"{what}: {_reason(exc, hide)}") from None
        if not isinstance(answer, dict):  # wechatpy hands back a response it can't decode
            raise WecomError(None, f"{what}: the answer is not JSON")
        return answer


def _json_of(response: object) -> dict[str, Any]:
    try:
        data = json.loads(getattr(response, "content", b"") or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _reason(exc: BaseException, hide: tuple[str, ...]) -> str:
    """The innermost cause's type and words, scrubbed (urllib3 quotes the URL)."""
    inner: BaseException = exc
    for _ in range(10):  # a chain is short; never follow a cycle
        nested = inner.__cause__ or (None if inner.__suppress_context__ else inner.__context__)
        if nested is None:
            break
        inner = nested
    text = " ".join(str(inner).split())[:200]
    return scrub(f"{type(inner).__name__}: {text}" if text else type(inner).__name__, *hide)
