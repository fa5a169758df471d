"""Hostile requests to every reader URL, over real HTTP to a real uvicorn: garbage and
huge tokens, paths and bodies, invalid UTF-8, wrong methods, replays. Each gets an
answer a browser can show (the Chinese 404/405 page, the GIF, uvicorn's 400 for what
isn't HTTP), never a 500, never a traceback, and changes nothing it shouldn't."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from conftest import _truncate_pg
from served import Answer, listening_socket, raw, request, serve
from sqlalchemy import func, select
from test_tracking import make_site

from dispatch.db.models import Delivery, Event, Reader, ReaderChange
from dispatch.runtime import Runtime
from dispatch.track.recorder import Recorder
from dispatch.track.tokens import new_token
from dispatch.web.app import PIXEL_GIF, create_app

MB = 1024 * 1024
GARBAGE_TOKENS = [
    "x", "a" * 31, "a" * 33, "a" * 10_000, new_token(), new_token().upper(), "%00", "%ff%fe",
    "%C3%A4" * 16, "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "..", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "'%20OR%201=1--", "1;DROP%20TABLE%20deliveries", "%20", "~", "-1",
]


@dataclass
class Hostile:
    base_url: str
    runtime: Runtime
    recorder: Recorder
    token: str
    others: list[str]

    def get(self, path: str) -> Answer:
        return request(self.base_url, "GET", path)

    def send(self, data: bytes) -> Answer:
        return raw(self.base_url, data)

    def reader_of(self, token: str) -> tuple[str, int]:
        """The reader's status and how many changes were recorded for them."""
        with self.runtime.sessions() as s:
            reader_id = s.scalar(select(Delivery.reader_id).where(Delivery.token == token))
            status = s.scalar(select(Reader.status).where(Reader.id == reader_id))
            changes = s.scalar(select(func.count()).where(ReaderChange.reader_id == reader_id))
            return status, changes


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def hostile(request, tmp_path_factory) -> Iterator[Hostile]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'dispatch.db'}"
    else:
        url = request.getfixturevalue("pg_database")
        _truncate_pg(url)
    sock = listening_socket()
    runtime, made = make_site(url)
    runtime.config.web.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    recorder = Recorder(runtime.engine, 10.0).start()
    try:
        with serve(create_app(runtime, on_event=recorder.record), sock) as base_url:
            yield Hostile(base_url, runtime, recorder, made["token"], made["others"])
    finally:
        recorder.close()
        runtime.engine.dispose()


@pytest.fixture(autouse=True)
def no_errors_logged(caplog):
    """Whatever came in, the server logged no error (an exception in the app would be)."""
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def assert_error_page(answer: Answer, status: int, what: str) -> None:
    assert answer.status == status, f"{what}: {answer.status} {answer.text[:200]}"
    assert answer.headers["content-type"].startswith("text/html"), what
    text = answer.text
    assert 'lang="zh-CN"' in text and ("页面不存在" in text or "不支持的访问方式" in text), what
    assert "Traceback" not in text and "<script" not in text.lower(), what


def assert_harmless(answer: Answer, what: str) -> None:
    """Not a server error: a page, a redirect, the GIF, or uvicorn refusing non-HTTP."""
    assert 0 < answer.status < 500, f"{what}: {answer.status} {answer.text[:200]}"
    assert b"Traceback" not in answer.body, what


def test_garbage_tokens_in_every_reader_url(hostile):
    valid = hostile.token
    for bad in GARBAGE_TOKENS:
        for path in (f"/w/{bad}", f"/w/{bad}/a/1", f"/w/{valid}/a/{bad}", f"/c/{bad}/1",
                     f"/c/{valid}/{bad}", f"/u/{bad}"):
            assert_error_page(hostile.get(path), 404, path)
        assert_error_page(
            request(hostile.base_url, "POST", f"/u/{bad}", b"List-Unsubscribe=One-Click",
                    {"Content-Type": "application/x-www-form-urlencoded"}),
            404, f"POST /u/{bad}",
        )
        pixel = hostile.get(f"/o/{bad}.gif")
        assert (pixel.status, pixel.body) == (200, PIXEL_GIF), bad


@pytest.mark.parametrize("path", [
    "/w/../../etc/passwd", "/w/%2e%2e/%2e%2e/etc/passwd", "/w/{t}/../../../etc/passwd",
    "/w/{t}/a/../../../../etc/passwd", "/c/{t}/..%2f..%2fetc%2fpasswd", "/u/..%2f{t}",
    "/w/{t}/a/99999999999999999999999999999999", "/c/{t}/99999999999999999999999999999999",
    "/w/{t}/a/0", "/c/{t}/0", "/w//{t}", "//w/{t}", "/w/{t}%00", "/w/{t}%0d%0aX-Evil:%201",
])
def test_traversal_and_odd_paths_are_404(hostile, path):
    assert_error_page(hostile.get(path.format(t=hostile.token)), 404, path)


def test_pixel_paths_of_any_shape_get_the_gif(hostile):
    for path in ("/o/../../etc/passwd", "/o/%2e%2e%2f%2e%2e%2fetc%2fpasswd.gif",
                 f"/o/{hostile.token}.gif/../x", "/o/" + "%ff" * 3000 + ".gif", "/o//" * 200):
        answer = hostile.get(path)
        assert (answer.status, answer.body) == (200, PIXEL_GIF), path


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_methods_get_405(hostile, method):
    t = hostile.token
    for path in (f"/w/{t}", f"/w/{t}/a/1", f"/c/{t}/1", f"/o/{t}.gif", "/healthz"):
        answer = request(hostile.base_url, method, path, b"x" * 100)
        assert_error_page(answer, 405, f"{method} {path}")
        assert "GET" in answer.headers["allow"]


def test_huge_query_strings_are_ignored(hostile):
    query = "?q=" + "A" * 60_000 + "&List-Unsubscribe=One-Click"
    assert hostile.get(f"/w/{hostile.token}{query}").status == 200
    assert hostile.get(f"/c/{hostile.token}/1{query}").status == 302
    assert hostile.get(f"/o/{hostile.token}.gif{query}").body == PIXEL_GIF
    assert hostile.get(f"/u/{hostile.token}{query}").status == 200  # the page asks, changes nothing
    assert hostile.reader_of(hostile.token) == ("active", 0)


def test_a_long_link_is_read_whole_however_its_bytes_arrive(hostile):
    """A 60 KB link, its bytes sent in 4 KiB pieces (as a slow network delivers them):
    read whole, as when it arrives at once (h11's own 16 KiB limit refused it in pieces)."""
    host, port = hostile.base_url.removeprefix("http://").split(":")
    head = (f"GET /w/{hostile.token}?q={'A' * 60_000} HTTP/1.1\r\nHost: {host}\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(head), 4096):
            sock.sendall(head[i:i + 4096])
            time.sleep(0.002)  # shaping the traffic into pieces, not waiting for anything
        assert sock.recv(12) == b"HTTP/1.1 200"


@pytest.mark.parametrize("body, content_type", [
    (b"\xff\xfe\xfd" * 1000, "application/x-www-form-urlencoded"),
    (b"List-Unsubscribe=One-Click\xff\xfe", "text/plain; charset=utf-8"),
    (b"List-Unsubscribe=One-Click" + b"&x=" + b"y" * (10 * MB), "application/x-www-form-urlencoded"),
    (b"--b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Clic", "multipart/form-data"),
    (b"%%%%=%%%%&&&&====", "application/x-www-form-urlencoded"),
    (b'{"List-Unsubscribe": "One-Click"}', "application/json"),
    (b"", "\x7f\x00garbage"),
    (bytes(range(256)) * 100, "application/octet-stream"),
])
def test_garbage_bodies_to_unsubscribe_ask_and_change_nothing(hostile, body, content_type):
    token = hostile.others[0]
    head = (f"POST /u/{token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n").encode() + b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    answer = hostile.send(head + body)
    assert_harmless(answer, repr(body[:40]))
    if answer.status == 200:
        assert "确认退订" in answer.text
    assert hostile.reader_of(token) == ("active", 0)


@pytest.mark.parametrize("path", ["/w/{t}", "/c/{t}/1", "/o/{t}.gif", "/u/{t}", "/healthz", "/nowhere"])
def test_ten_megabyte_bodies_anywhere(hostile, path):
    target = path.format(t=hostile.token)
    data = (f"POST {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Content-Length: {10 * MB}\r\n\r\n").encode() + b"\x00\xff" * (5 * MB)
    assert_harmless(hostile.send(data), target)
    assert hostile.reader_of(hostile.token) == ("active", 0)


@pytest.mark.parametrize("data", [
    b"GET /w/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /o/\xc3\x28.gif HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /w/TOKEN HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x00b\r\nConnection: close\r\n\r\n",
    b"GET /o/TOKEN.gif HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\xfe\xfd\r\nConnection: close\r\n\r\n",
    b"GET /o/TOKEN.gif HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"A" * 60_000 + b"\r\nConnection: close\r\n\r\n",
    b"GET /w/TOKEN HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: <script>, 999.1.1.1, ::zz\r\nConnection: close\r\n\r\n",
    b"POST /u/TOKEN HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n",
    b"POST /u/TOKEN HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\nConnection: close\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /c/TOKEN/1 HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
])
def test_what_is_not_http_gets_no_500(hostile, data):
    assert_harmless_or_closed(hostile.send(data.replace(b"TOKEN", hostile.token.encode())), data[:40])


def assert_harmless_or_closed(answer: Answer, what: bytes) -> None:
    if answer.status:  # uvicorn may also just close a connection that isn't HTTP
        assert_harmless(answer, repr(what))


def test_replayed_one_click_unsubscribes_once(hostile):
    token = hostile.others[1]
    post = lambda _: request(  # noqa: E731
        hostile.base_url, "POST", f"/u/{token}", b"List-Unsubscribe=One-Click",
        {"Content-Type": "application/x-www-form-urlencoded"},
    ).status
    with ThreadPoolExecutor(max_workers=10) as pool:
        assert list(pool.map(post, range(30))) == [200] * 30
    assert hostile.reader_of(token) == ("unsubscribed", 1)


def test_replayed_opens_and_clicks_are_each_recorded_and_harmless(hostile):
    token = hostile.others[2]
    for _ in range(50):
        assert hostile.get(f"/o/{token}.gif").body == PIXEL_GIF
        assert hostile.get(f"/c/{token}/1").status == 302
    assert hostile.recorder.flush()
    with hostile.runtime.sessions() as s:
        kinds = s.execute(
            select(Event.kind, func.count()).join(Delivery, Delivery.id == Event.delivery_id)
            .where(Delivery.token == token).group_by(Event.kind)
        ).all()
    assert dict(kinds) == {"open": 50, "click": 50}
