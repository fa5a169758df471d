"""A local stand-in for WeChat Work's server API, for tests and demos (`dispatch wecom-sim`).

It speaks the two calls dispatch makes, as developer.work.weixin.qq.com describes them:

- ``GET /cgi-bin/gettoken?corpid=…&corpsecret=…``: 40013 for a wrong corp id, 40001 for a
  wrong secret; else ``access_token`` and ``expires_in`` (configurable, short for tests).
  While a token is valid the same one is answered again, as the real server does.
- ``POST /cgi-bin/message/send?access_token=…``: 41001 without a token, 40014 for an
  unknown one, 42001 for an expired one; 40056 for another agent; ``touser`` split on
  "|". Members not in the member list (when one is given) come back in ``invaliduser``,
  members without a license in ``unlicenseduser`` (lower-cased, as the real answer);
  when no one is left: 81013. ``enable_duplicate_check``: the same request JSON within
  ``duplicate_check_interval`` (default 1800 s) answers ok again and delivers nothing.
  The per-member limit of the documentation (频率限制: 每应用对同一个成员不得超过30次/分，
  1000次/小时，超过部分会被丢弃不下发): excess messages are dropped silently, the answer
  is still ok. Each answer carries a ``msgid``.
- ``POST /cgi-bin/message/update_template_card?access_token=…``: the button form (a
  card's clicked button gets new words); each ``response_code`` is good for one use.

For tests, from Python: `fail_next(errcode, times)` (the next message/send calls answer
that errcode), `fail_http(status, times)`, `delay(seconds, times)` (does the call, then
answers late: a timeout whose message was delivered), `expire_tokens()`; counters `token_requests`, `send_calls`,
`delivered` (member, body), `dropped`. Not project logic: a test peer and a demo aid.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dispatch.errors import Refused, os_reason
from dispatch.net import is_loopback

log = logging.getLogger(__name__)

PER_MINUTE = 30  # messages to one member from one agent, then silently dropped
PER_HOUR = 1000
DEFAULT_DUPLICATE_INTERVAL = 1800


@dataclass
class Delivered:
    member: str
    body: dict[str, Any]
    msgid: str


@dataclass
class WecomSim:
    corp_id: str = "wwsimcorp"
    secret: str = "sim-secret"
    agent_id: int = 1000002
    members: set[str] | None = None  # None: every userid exists
    unlicensed: set[str] = field(default_factory=set)
    expires_in: int = 7200
    folder: Path | None = None  # each delivered message as a JSON file
    clock: Callable[[], float] = time.monotonic
    # Seconds every answer waits (after the call is done): the round trip to the real
    # API, which loopback lacks; for benchmarks (a delay() asked for replaces it).
    latency: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()
        self.base_url = ""  # once started
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.app = Starlette(routes=[
            Route("/cgi-bin/gettoken", self._gettoken, methods=["GET"]),
            Route("/cgi-bin/message/send", self._send, methods=["POST"]),
            Route("/cgi-bin/message/update_template_card", self._update_card, methods=["POST"]),
        ])

    def reset(self) -> None:
        """Forget tokens, messages, counters and pending failures (one server, many tests)."""
        self._tokens: dict[str, float] = {}  # token → when it expires (clock)
        self._current = ""
        self._failures: deque[int] = deque()
        self._http_failures: deque[int] = deque()
        self._delays: dict[str, deque[float]] = defaultdict(deque)
        self._seen: dict[str, tuple[float, str]] = {}  # request JSON → (until, msgid)
        self._recent: dict[str, deque[float]] = defaultdict(deque)  # member → send times
        self._ids = itertools.count(1)
        self.token_requests = 0
        self.send_calls = 0
        self.delivered: list[Delivered] = []
        self.dropped: list[Delivered] = []
        # update_template_card: the response codes already used, and the updates made
        # (member, response_code, the button's new text).
        self._used_codes: set[str] = set()
        self.card_updates: list[tuple[str, str, str]] = []

    # -- test controls ------------------------------------------------------------------

    def fail_next(self, errcode: int, times: int = 1) -> None:
        """The next `times` message/send calls answer `errcode` (and deliver nothing)."""
        with self._lock:
            self._failures.extend([errcode] * times)

    def fail_http(self, status: int = 500, times: int = 1) -> None:
        with self._lock:
            self._http_failures.extend([status] * times)

    def delay(self, seconds: float, times: int = 1, endpoint: str = "message/send") -> None:
        """The next `times` calls of `endpoint` ("gettoken" or "message/send") answer after
        `seconds`."""
        with self._lock:
            self._delays[endpoint].extend([seconds] * times)

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, self.clock() - 1)

    def delivered_to(self, member: str) -> list[dict[str, Any]]:
        with self._lock:
            return [d.body for d in self.delivered if d.member == member.lower()]

    # -- serving ------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a thread; the base URL (http://host:port)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: uvicorn, given a socket, leaves Nagle on, and
        # its answers (head and body written apart) then wait ~40 ms for a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        self._sock = sock
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("wecom sim did not start")
            time.sleep(0.01)
        self.base_url = f"http://{host}:{sock.getsockname()[1]}"
        return self.base_url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._sock.close()
        self._server = self._thread = None

    # -- the API ------------------------------------------------------------------------

    async def _late(self, endpoint: str, answer: Response) -> Response:
        """The answer, after the delay asked for: the call is done (a message delivered)
        before the wait, as when a real answer is lost on the way back."""
        with self._lock:
            delays = self._delays[endpoint]
            seconds = delays.popleft() if delays else self.latency
        if seconds:
            await asyncio.sleep(seconds)
        return answer

    async def _gettoken(self, request: Request) -> Response:
        return await self._late("gettoken", self._answer_gettoken(request))

    async def _send(self, request: Request) -> Response:
        raw = await request.body()
        return await self._late("message/send", self._answer_send(request, raw))

    async def _update_card(self, request: Request) -> Response:
        raw = await request.body()
        return await self._late("message/update_template_card", self._answer_update(request, raw))

    def _token_error(self, request: Request, now: float) -> Response | None:
        token = request.query_params.get("access_token")
        if not token:
            return _error(41001, "access_token missing")
        if token not in self._tokens:
            return _error(40014, "invalid access_token")
        if self._tokens[token] <= now:
            return _error(42001, "access_token expired")
        return None

    def _answer_update(self, request: Request, raw: bytes) -> Response:
        """update_template_card, the button form: {userids, agentid, response_code,
        button: {replace_name}}. A response code (from the card's callback event) is good
        for one use, as the documentation says; any code not used yet is taken here."""
        with self._lock:
            refused = self._token_error(request, self.clock())
            if refused is not None:
                return refused
            try:
                body = json.loads(raw)
            except ValueError:
                return _error(47001, "data format error")
            if not isinstance(body, dict) or body.get("agentid") != self.agent_id:
                return _error(40056, "invalid agentid")
            code = body.get("response_code")
            button = body.get("button")
            if not isinstance(code, str) or not code or code in self._used_codes:
                return _error(40029, "invalid response_code")
            if not isinstance(button, dict) or not isinstance(button.get("replace_name"), str):
                return _error(40058, "invalid button")
            self._used_codes.add(code)
            for member in body.get("userids") or []:
                self.card_updates.append((str(member), code, button["replace_name"]))
            return JSONResponse({"errcode": 0, "errmsg": "ok", "invaliduser": []})

    def _answer_gettoken(self, request: Request) -> Response:
        q = request.query_params
        with self._lock:
            self.token_requests += 1
            if q.get("corpid") != self.corp_id:
                return _error(40013, "invalid corpid")
            if q.get("corpsecret") != self.secret:
                return _error(40001, "invalid credential")
            now = self.clock()
            if self._tokens.get(self._current, 0.0) <= now:
                self._current = secrets.token_urlsafe(48)
                self._tokens[self._current] = now + self.expires_in
            remaining = round(self._tokens[self._current] - now)  # int() would cut 7199.99…
            return JSONResponse({"errcode": 0, "errmsg": "ok", "access_token": self._current,
                                 "expires_in": remaining})

    def _answer_send(self, request: Request, raw: bytes) -> Response:
        with self._lock:
            self.send_calls += 1
            if self._http_failures:
                return Response("server error", status_code=self._http_failures.popleft())
            now = self.clock()
            refused = self._token_error(request, now)
            if refused is not None:
                return refused
            if self._failures:
                return _error(self._failures.popleft(), "failure on demand")
            try:
                body = json.loads(raw)
            except ValueError:
                return _error(47001, "data format error")
            if not isinstance(body, dict) or not isinstance(body.get("touser"), str):
                return _error(40035, "invalid touser")
            if body.get("agentid") != self.agent_id:
                return _error(40056, "invalid agentid")
            if body.get("msgtype") not in body:
                return _error(40008, "invalid message type")
            return JSONResponse(self._deliver(body, now))

    def _deliver(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        key = json.dumps(body, sort_keys=True, ensure_ascii=False)
        if body.get("enable_duplicate_check") == 1:
            until, msgid = self._seen.get(key, (0.0, ""))
            if until > now:
                return {"errcode": 0, "errmsg": "ok", "invaliduser": "", "unlicenseduser": "",
                        "msgid": msgid}
        wanted = [u.lower() for u in body["touser"].split("|") if u]
        known = None if self.members is None else {m.lower() for m in self.members}
        invalid = [u for u in wanted if known is not None and u not in known]
        unlicensed = [u for u in wanted if u in {m.lower() for m in self.unlicensed} and u not in invalid]
        reach = [u for u in dict.fromkeys(wanted) if u not in invalid and u not in unlicensed]
        answer = {"errcode": 0, "errmsg": "ok", "invaliduser": "|".join(invalid),
                  "unlicenseduser": "|".join(unlicensed)}
        if not reach:
            return answer | {"errcode": 81013, "errmsg": "user & party & tag all invalid"}
        msgid = f"sim{next(self._ids):08d}"
        if body.get("enable_duplicate_check") == 1:
            interval = body.get("duplicate_check_interval", DEFAULT_DUPLICATE_INTERVAL)
            self._seen[key] = (now + float(interval), msgid)
        for member in reach:
            one = Delivered(member, {**body, "touser": member}, msgid)
            if self._over_limit(member, now):
                self.dropped.append(one)  # the real server answers ok and drops it
                continue
            self.delivered.append(one)
            self._save(one)
        return answer | {"msgid": msgid}

    def _over_limit(self, member: str, now: float) -> bool:
        times = self._recent[member]
        while times and times[0] <= now - 3600:
            times.popleft()
        last_minute = sum(1 for t in times if t > now - 60)
        if last_minute >= PER_MINUTE or len(times) >= PER_HOUR:
            return True
        times.append(now)
        return False

    def _save(self, one: Delivered) -> None:
        if self.folder is None:
            return
        name = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{len(self.delivered):06d}.json"
        try:
            name.write_text(json.dumps({**one.body, "msgid": one.msgid}, ensure_ascii=False, indent=2),
                            encoding="utf-8")
        except OSError as exc:  # a demo aid: say so and go on
            log.warning("wecom sim: could not store a message in %s: %s", self.folder, exc)


def _error(errcode: int, errmsg: str) -> JSONResponse:
    return JSONResponse({"errcode": errcode, "errmsg": errmsg})


def listen(host: str, port: int) -> socket.socket:
    """A socket bound for `serve_forever`, or a refusal saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see start()
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise Refused(
            f"企业微信模拟器：在 {host}:{port} 上监听不了（{os_reason(exc)}）；是不是已经有一个在运行？"
        ) from exc
    return sock


def exposure_warning(host: str) -> str | None:
    if is_loopback(host):
        return None
    return (f"注意：企业微信模拟器在 {host} 上监听，不只是本机：同一网络里谁都能调用它；"
            "只在本机试用请用 --listen 127.0.0.1:端口")


def serve_forever(sim: WecomSim, sock: socket.socket) -> None:
    """`dispatch wecom-sim`: serve until interrupted."""
    host, port = sock.getsockname()[:2]
    log.info("wecom sim on %s:%d (corp %s, agent %d)", host, port, sim.corp_id, sim.agent_id)
    server = uvicorn.Server(uvicorn.Config(sim.app, log_level="warning", lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        log.info("wecom sim stopped after %d delivered, %d dropped", len(sim.delivered), len(sim.dropped))
