"""Tracking as readers (and their mail services' machines) meet it: the open pixel, events
written in batches by the recorder, machines counted apart, and the reader pages' views
built once. The app runs on a real uvicorn on loopback; the events land in a real
database (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import pytest
from conftest import SAMPLE_ISSUE
from served import Answer, listening_socket, request, serve
from site_rows import add_delivery, add_reader, runtime_at
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from dispatch import editorial
from dispatch.clock import utcnow
from dispatch.db.models import Delivery, Event, Reader, ReaderIndustry
from dispatch.db.session import make_engine, transaction
from dispatch.errors import Refused
from dispatch.ingest import parse_file
from dispatch.render.views import article_views, link_targets
from dispatch.report.figures import issue_figures
from dispatch.runtime import Runtime
from dispatch.track.recorder import Recorder
from dispatch.track.tokens import new_token
from dispatch.web.app import create_app

BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
APPLE_MAIL = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
APPLE_MPP = "Mozilla/5.0"
OUTLOOK_SCANNER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0"
)
READERS = 30  # besides the two named ones


@dataclass
class Tracked:
    base_url: str
    runtime: Runtime
    recorder: Recorder
    pages: object  # the app's ReaderPages: .views (builds, renders) and .lookup
    issue_id: int
    token: str  # a 生物医药 reader's, sent an hour ago
    fresh: str  # sent just now: a gateway's fetch would come now
    draft_token: str  # a delivery of a draft issue (only tests make those)
    draft_id: int
    others: list[str]  # more readers' tokens, sent an hour ago

    def get(self, path: str, agent: str = BROWSER) -> Answer:
        return request(self.base_url, "GET", path, headers={"User-Agent": agent})

    def events(self) -> list[Event]:
        with self.runtime.sessions() as s:
            return list(s.scalars(select(Event).order_by(Event.id)))

    def delivery_id(self, token: str) -> int:
        with self.runtime.sessions() as s:
            return s.scalar(select(Delivery.id).where(Delivery.token == token))

    def opens(self) -> tuple[int, int]:
        """(deliveries opened by a person, deliveries opened by machines only), as the
        report counts them."""
        with self.runtime.sessions() as s:
            total = issue_figures(s, self.issue_id).total
        return total.opened_human, total.opened_machine_only


def _sent(session: Session, issue_id: int, reader: Reader, ago: timedelta | None) -> str:
    return add_delivery(session, issue_id, reader, state="sent" if ago is not None else "queued",
                        sent_at=utcnow() - ago if ago is not None else None)


def make_site(db_url: str) -> tuple[Runtime, dict]:
    runtime = runtime_at(db_url)
    hour = timedelta(hours=1)
    with transaction(runtime.sessions) as s:
        issue = editorial.store_issue(s, parse_file(SAMPLE_ISSUE), "sample", runtime.rules)
        draft = editorial.store_issue(s, parse_file(SAMPLE_ISSUE), "draft", runtime.rules, again=True)
        editorial.finalize(s, issue.id, None)
        biomed = add_reader(s, "王五", industries=("biomed",))
        made = {
            "issue_id": issue.id,
            "draft_id": draft.id,
            "token": _sent(s, issue.id, biomed, hour),
            "fresh": _sent(s, issue.id, add_reader(s, "赵六", industries=("it",)), timedelta(0)),
            "draft_token": _sent(s, draft.id, biomed, hour),
            "others": [
                _sent(s, issue.id, add_reader(s, f"读者{i}", industries=("machinery",), follows_all=i % 3 == 0), hour)
                for i in range(READERS)
            ],
        }
    return runtime, made


@pytest.fixture
def tracked(db_url) -> Iterator[Tracked]:
    sock = listening_socket()
    runtime, made = make_site(db_url)
    runtime.config.web.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    recorder = Recorder(runtime.engine, runtime.config.tracking.machine_open_seconds).start()
    app = create_app(runtime, on_event=recorder.record)
    try:
        with serve(app, sock) as base_url:
            yield Tracked(base_url, runtime, recorder, app.state.pages, **made)
    finally:
        recorder.close()
        runtime.engine.dispose()


# -- the pixel ------------------------------------------------------------------------------


def gif_pixels(data: bytes) -> tuple[int, int, list[int | None]]:
    """Decode a GIF (one frame): width, height and each pixel's palette index, None where
    transparent. Enough of the format to prove the pixel is a real, transparent 1×1 image."""
    assert data[:6] in (b"GIF87a", b"GIF89a"), data[:6]
    width, height = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    flags, pos = data[10], 13
    if flags & 0x80:
        pos += 3 * 2 ** ((flags & 7) + 1)
    transparent = None
    while data[pos] == 0x21:  # extensions
        label, pos = data[pos + 1], pos + 2
        if label == 0xF9 and data[pos + 1] & 1:
            transparent = data[pos + 4]
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    assert data[pos] == 0x2C, "no image descriptor"
    w, h, iflags = (int.from_bytes(data[pos + 5:pos + 7], "little"),
                    int.from_bytes(data[pos + 7:pos + 9], "little"), data[pos + 9])
    assert (w, h) == (width, height) and not iflags & 0x80
    min_code, pos = data[pos + 10], pos + 11
    stream = b""
    while data[pos]:
        stream += data[pos + 1:pos + 1 + data[pos]]
        pos += data[pos] + 1
    assert data[pos + 1:] == b";", "no trailer"
    # LZW
    clear, end = 1 << min_code, (1 << min_code) + 1
    table: list[list[int]] = []
    size, bit, out, prev = min_code + 1, 0, [], None
    bits = int.from_bytes(stream, "little")
    while bit + size <= len(stream) * 8:
        code, bit = (bits >> bit) & ((1 << size) - 1), bit + size
        if code == clear:
            table = [[i] for i in range(clear)] + [[], []]
            size, prev = min_code + 1, None
            continue
        if code == end:
            break
        entry = table[code] if code < len(table) else table[prev] + [table[prev][0]]
        out += entry
        if prev is not None:
            table.append(table[prev] + [entry[0]])
            if len(table) == 1 << size and size < 12:
                size += 1
        prev = code
    return width, height, [None if p == transparent else p for p in out]


def test_pixel_is_one_transparent_gif_that_nothing_may_keep(tracked):
    answers = {
        "valid": tracked.get(f"/o/{tracked.token}.gif"),
        "upper case": tracked.get(f"/o/{tracked.token.upper()}.gif"),
        "unknown": tracked.get(f"/o/{new_token()}.gif"),
        "malformed": tracked.get("/o/not-a-token.gif"),
        "no .gif": tracked.get(f"/o/{tracked.token}"),
        "traversal": tracked.get("/o/../../etc/passwd"),
        "huge": tracked.get("/o/" + "a" * 10_000 + ".gif"),
        "empty": tracked.get("/o/"),
    }
    first = answers["valid"]
    assert first.status == 200 and len(first.body) == 43
    assert gif_pixels(first.body) == (1, 1, [None])
    assert first.headers["content-type"] == "image/gif"
    cache = {v.strip() for v in first.headers["cache-control"].split(",")}
    assert {"no-store", "no-cache", "private"} <= cache
    assert first.headers["pragma"] == "no-cache"
    same = {k: v for k, v in first.headers.items() if k != "date"}
    for name, answer in answers.items():
        assert (answer.status, answer.body) == (200, first.body), name
        assert {k: v for k, v in answer.headers.items() if k != "date"} == same, name
    head = request(tracked.base_url, "HEAD", f"/o/{new_token()}.gif")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-type"] == "image/gif" and "no-store" in head.headers["cache-control"]


# -- events -------------------------------------------------------------------------------


def test_a_lone_open_reaches_the_table_without_waiting_for_more(tracked):
    """A quiet morning's single open is written within the recorder's interval, not held
    in memory until a batch fills or the service stops (nobody calls flush here)."""
    assert tracked.get(f"/o/{tracked.token}.gif").status == 200
    deadline = time.monotonic() + 30
    while not tracked.events():
        assert time.monotonic() < deadline, "the open was not written without a flush"
        time.sleep(0.05)
    assert [e.kind for e in tracked.events()] == ["open"]


def test_every_kind_of_event_lands_with_its_article_and_link(tracked):
    with tracked.runtime.sessions() as s:
        article = link_targets(article_views(editorial.get_issue(s, tracked.issue_id)))[3]
    assert tracked.get(f"/o/{tracked.token}.gif").status == 200
    assert tracked.get(f"/w/{tracked.token}").status == 200
    assert tracked.get(f"/c/{tracked.token}/3").status == 302
    assert tracked.get(f"/w/{tracked.token}/a/{article}").status == 200
    assert tracked.get(f"/o/{new_token()}.gif").status == 200  # names nothing: not recorded
    assert request(tracked.base_url, "HEAD", f"/o/{tracked.token}.gif").status == 200  # no image shown
    assert tracked.recorder.flush()

    rows = tracked.events()
    assert [(e.kind, e.article_id, e.n) for e in rows] == [
        ("open", None, None), ("web_view", None, None), ("click", article, 3),
        ("article_view", article, None),
    ]
    delivery = tracked.delivery_id(tracked.token)
    for e in rows:
        assert (e.issue_id, e.delivery_id) == (tracked.issue_id, delivery)
        assert e.user_agent == BROWSER and e.client_ip == "127.0.0.1"
        assert e.machine is False
        assert abs((utcnow() - e.at).total_seconds()) < 600
    assert tracked.recorder.unknown == 1
    assert tracked.opens() == (1, 0)


def test_a_long_user_agent_is_kept_to_400_characters(tracked):
    tracked.get(f"/o/{tracked.token}.gif", agent=BROWSER + " x" * 2000)
    assert tracked.recorder.flush()
    (event,) = tracked.events()
    assert len(event.user_agent) == 400 and event.user_agent.startswith(BROWSER)


@pytest.mark.parametrize("agent", [GMAIL_PROXY, APPLE_MPP, OUTLOOK_SCANNER, "Barracuda Sentinel (EE)", ""])
def test_opens_by_proxies_and_scanners_are_machine(tracked, agent):
    tracked.get(f"/o/{tracked.token}.gif", agent=agent)
    assert tracked.recorder.flush()
    (event,) = tracked.events()
    assert event.machine is True
    assert tracked.opens() == (0, 1)


def test_an_open_right_after_sending_is_a_machine_whatever_its_agent(tracked):
    tracked.get(f"/o/{tracked.fresh}.gif", agent=APPLE_MAIL)
    tracked.get(f"/o/{tracked.token}.gif", agent=APPLE_MAIL)  # an hour later: the reader
    assert tracked.recorder.flush()
    assert tracked.opens() == (1, 1)


def test_a_click_makes_a_proxy_opened_delivery_a_human_open(tracked):
    tracked.get(f"/o/{tracked.token}.gif", agent=GMAIL_PROXY)
    tracked.get(f"/c/{tracked.token}/2", agent=OUTLOOK_SCANNER)  # a scanner's click: no
    assert tracked.recorder.flush()
    assert tracked.opens() == (0, 1)

    tracked.get(f"/c/{tracked.token}/2", agent=BROWSER)
    assert tracked.recorder.flush()
    assert tracked.opens() == (1, 0)


def test_a_burst_of_500_concurrent_opens_all_land(tracked):
    tokens = [tracked.token, *tracked.others]
    hits = [tokens[i % len(tokens)] for i in range(500)]
    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(lambda t: tracked.get(f"/o/{t}.gif").status, hits))
    assert statuses == [200] * 500
    assert tracked.recorder.flush()
    with tracked.runtime.sessions() as s:
        per_delivery = dict(s.execute(
            select(Delivery.token, func.count(Event.id))
            .join(Event, Event.delivery_id == Delivery.id).group_by(Delivery.token)
        ).all())
    assert sum(per_delivery.values()) == 500
    assert per_delivery == {t: hits.count(t) for t in tokens}
    assert tracked.recorder.dropped == 0


def test_a_database_outage_costs_no_request_and_loses_only_what_overflows(sqlite_url, caplog):
    """The events' database locked by someone else (as a long write would): every pixel
    still answers, the recorder keeps trying, drops what its queue can't hold with a
    warning that names no reader, and writes the rest once the lock is gone."""
    runtime, made = make_site(sqlite_url)
    impatient = make_engine(sqlite_url, busy_timeout=0.05)
    recorder = Recorder(impatient, 10.0, max_queue=20).start()
    app = create_app(runtime, on_event=recorder.record)
    path = sqlite_url.removeprefix("sqlite:///")
    locker = sqlite3.connect(path, isolation_level=None)
    caplog.set_level(logging.WARNING, logger="dispatch.track.recorder")
    try:
        with serve(app) as base_url:
            locker.execute("BEGIN IMMEDIATE")  # the one writer's lock, held
            statuses = [request(base_url, "GET", f"/o/{made['token']}.gif").status for _ in range(60)]
            assert statuses == [200] * 60
            assert not recorder.flush(timeout=0.5)  # can't be written while locked
            locker.execute("ROLLBACK")
            assert recorder.flush(timeout=60)
    finally:
        locker.close()
        recorder.close()
    with runtime.sessions() as s:
        written = s.scalar(select(func.count(Event.id)))
    assert recorder.dropped > 0 and written == recorder.written
    assert written + recorder.dropped == 60
    messages = [r.getMessage() for r in caplog.records]
    assert any("dropped" in m for m in messages)
    assert any("trying again" in m for m in messages)
    assert not any(made["token"] in m for m in messages)
    runtime.engine.dispose()
    impatient.dispose()


def test_close_writes_what_is_queued(tracked):
    for token in tracked.others[:5]:
        tracked.get(f"/o/{token}.gif")
    tracked.recorder.close()
    assert len(tracked.events()) == 5 and tracked.recorder.lost == 0


def test_an_event_of_a_delivery_deleted_meanwhile_is_left_out_not_the_batch(tracked):
    tracked.get(f"/w/{tracked.draft_token}")  # the draft's delivery, looked up and cached
    tracked.get(f"/w/{tracked.token}")
    assert tracked.recorder.flush()
    with transaction(tracked.runtime.sessions) as s:
        s.execute(delete(Event))
        s.execute(delete(Delivery).where(Delivery.token == tracked.draft_token))
    # The page of the vanished delivery's cached token and a reader's page, one batch.
    tracked.get(f"/o/{tracked.draft_token}.gif")
    tracked.get(f"/o/{tracked.token}.gif")
    assert tracked.recorder.flush()
    assert [(e.kind, e.delivery_id) for e in tracked.events()] == [
        ("open", tracked.delivery_id(tracked.token))
    ]
    assert tracked.recorder.unknown == 1


# -- views built once -----------------------------------------------------------------------


def test_an_issue_is_built_once_and_pages_rendered_once_per_kind_of_reader(tracked):
    views = tracked.pages.views
    for path in (f"/w/{new_token()}", f"/c/{new_token()}/1", f"/w/{new_token()}/a/1",
                 f"/o/{new_token()}.gif", "/w/not-a-token"):
        assert tracked.get(path).status in (404, 200)
    assert views.builds == 0 and views.renders == 0  # nothing built for nobody

    first = tracked.get(f"/w/{tracked.token}")
    assert first.status == 200 and (views.builds, views.renders) == (1, 1)
    again = tracked.get(f"/w/{tracked.token}")
    assert again.body == first.body and (views.builds, views.renders) == (1, 1)
    assert tracked.get(f"/c/{tracked.token}/2").status == 302
    # Another reader with other interests: the same issue, another page.
    other = tracked.get(f"/w/{tracked.others[1]}")
    assert other.status == 200 and (views.builds, views.renders) == (1, 2)
    assert tracked.others[1] in other.text and tracked.token not in other.text
    # Clicks of every other reader: no build, and the token looked up once each.
    for token in tracked.others:
        assert tracked.get(f"/c/{token}/1").status == 302
        assert tracked.get(f"/c/{token}/2").status == 302
    assert views.builds == 1


def test_a_readers_new_industries_show_at_once(tracked):
    before = tracked.get(f"/w/{tracked.token}").text
    assert "您关注：生物医药" in before
    with transaction(tracked.runtime.sessions) as s:  # as the preferences page or an import would
        reader_id = s.scalar(select(Delivery.reader_id).where(Delivery.token == tracked.token))
        s.execute(delete(ReaderIndustry).where(ReaderIndustry.reader_id == reader_id))
        s.add(ReaderIndustry(reader_id=reader_id, industry="it"))
    after = tracked.get(f"/w/{tracked.token}").text
    assert "您关注：新一代信息技术" in after and "生物医药。" not in after
    assert tracked.pages.views.builds == 1  # the issue itself did not change


def test_an_editors_change_shows_on_a_draft_and_a_sent_issue_cannot_change(tracked):
    def badges(token: str, article_id: int) -> str:
        html = tracked.get(f"/w/{token}/a/{article_id}").text
        return html[html.index('<p class="meta">'):html.index("</p>", html.index('<p class="meta">'))]

    with tracked.runtime.sessions() as s:
        draft_article = editorial.get_issue(s, tracked.draft_id).articles[2].id
        sent_article = editorial.get_issue(s, tracked.issue_id).articles[2].id
    assert "发制品" not in badges(tracked.draft_token, draft_article)
    with transaction(tracked.runtime.sessions) as s:
        editorial.set_tags(s, draft_article, ["hair"])
    assert "发制品" in badges(tracked.draft_token, draft_article)  # the editor's tag, at once

    tracked.get(f"/w/{tracked.token}/a/{sent_article}")
    with pytest.raises(Refused), transaction(tracked.runtime.sessions) as s:
        editorial.set_tags(s, sent_article, ["hair"])  # frozen: what is kept stays true


# -- under `dispatch run` ---------------------------------------------------------------------


@pytest.mark.slow
def test_dispatch_run_records_a_readers_open_and_click_and_writes_them_when_stopped(
    tmp_path, sqlite_url, mail
):
    """The links of a message really sent: its pixel and a link, followed as a reader's
    browser would, are events in the table once the service has stopped (SIGTERM)."""
    import re
    from email import message_from_bytes, policy

    from test_service import email_readers, healthy, http_get, site, wait_for

    with site(tmp_path, sqlite_url, mail) as s:
        s.env["DISPATCH_TRACKING__MACHINE_OPEN_SECONDS"] = "0"  # the test opens at once
        s.import_readers(email_readers(3))
        s.final_issue()
        run = s.start("run", "run")
        wait_for(lambda: healthy(s), "/healthz", watch=[run])
        wait_for(lambda: s.email_pending() == 0 and len(mail.accepted) == 3,
                 "every message sent", watch=[run])
        html = message_from_bytes(mail.accepted[0].data, policy=policy.default) \
            .get_body(("html",)).get_content()
        base = re.escape(s.base_url)
        pixel = re.search(base + r"/o/[a-z2-7]{32}\.gif", html).group()
        click = re.search(base + r"/c/[a-z2-7]{32}/\d+", html).group()
        assert request(s.base_url, "GET", pixel.removeprefix(s.base_url),
                       headers={"User-Agent": APPLE_MAIL}).body[:6] == b"GIF89a"
        assert request(s.base_url, "GET", click.removeprefix(s.base_url),
                       headers={"User-Agent": BROWSER}).status == 302
        assert http_get(s.base_url + "/healthz")[0] == 200
        assert run.stop() == 0, run.log()

    engine = make_engine(sqlite_url)
    try:
        with Session(engine) as session:
            rows = session.execute(select(Event.kind, Event.machine, Delivery.token)
                                   .join(Delivery, Delivery.id == Event.delivery_id)
                                   .order_by(Event.id)).all()
    finally:
        engine.dispose()
    token = pixel.rsplit("/", 1)[1].removesuffix(".gif")
    assert [tuple(r) for r in rows] == [("open", False, token), ("click", False, token)]
