"""An issue sent the way staff send one, for the tests of what comes after (report,
feedback): the sample readers imported, the sample issue ingested, finalized and sent with
`dispatch send --wait` to a real SMTP server on loopback; then what readers did, added the
way the track and feedback stages record it (rows in events and feedback)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from conftest import SAMPLE_ISSUE, SAMPLE_READERS, Dispatch
from smtp_servers import MailServer
from sqlalchemy import select

from dispatch.clock import utcnow
from dispatch.db.models import Article, Delivery, Event, Feedback, Reader
from dispatch.db.session import make_engine, session_factory, transaction


def send_sample(dispatch: Dispatch, server: MailServer, *, ingest_again: bool = False) -> int:
    """The sample issue sent to the sample readers by email (WeChat Work rows stay queued:
    the channel is not configured). Returns the issue's id."""
    if not ingest_again:
        with dispatch.config.open("a", encoding="utf-8") as f:
            f.write(f'[smtp]\nhost = "{server.host}"\nport = {server.port}\nrate_per_minute = 0\n'
                    'reply_domain = "example.gov.cn"\n[delivery]\nidle_seconds = 0.1\n')
        dispatch.ok("recipients", "import", str(SAMPLE_READERS))
    args = ["issues", "ingest", str(SAMPLE_ISSUE), "--json"]
    issue = json.loads(dispatch.ok(*args, *(["--again"] if ingest_again else [])))["id"]
    dispatch.ok("issues", "finalize", str(issue))
    dispatch.ok("send", str(issue), "--wait")
    return int(issue)


@dataclass
class Recorder:
    """Adds events and feedback to one database, as the track and feedback stages do."""

    db_url: str

    def __post_init__(self) -> None:
        self.engine = make_engine(self.db_url)
        self.sessions = session_factory(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def delivery(self, issue: int, name: str, channel: str = "email") -> int:
        with self.sessions() as s:
            found = s.scalar(
                select(Delivery.id).join(Reader, Reader.id == Delivery.reader_id)
                .where(Delivery.issue_id == issue, Reader.name == name,
                       Delivery.channel == channel)
            )
        assert found is not None, (issue, name, channel)
        return found

    def article(self, issue: int, title_start: str) -> int:
        with self.sessions() as s:
            ids = [a.id for a in s.scalars(select(Article)) if a.title.startswith(title_start)
                   and a.section.issue_id == issue]
        assert len(ids) == 1, title_start
        return ids[0]

    def event(self, delivery: int, kind: str, *, machine: bool = False,
              article: int | None = None, at: datetime | None = None) -> None:
        with transaction(self.sessions) as s:
            d = s.get(Delivery, delivery)
            assert d is not None
            s.add(Event(issue_id=d.issue_id, delivery_id=delivery, kind=kind, machine=machine,
                        article_id=article, n=1 if kind == "click" else None,
                        at=at or utcnow(),
                        user_agent="GoogleImageProxy" if machine else "Mozilla/5.0 (Windows)"))

    def feedback(self, kind: str, *, delivery: int | None = None, issue: int | None = None,
                 article: int | None = None, text: str = "", channel: str = "web",
                 sender: str | None = None, subject: str | None = None,
                 ago: timedelta = timedelta(0)) -> int:
        with transaction(self.sessions) as s:
            reader = None
            if delivery is not None:
                d = s.get(Delivery, delivery)
                assert d is not None
                issue, reader = d.issue_id, d.reader_id
            row = Feedback(reader_id=reader, issue_id=issue, delivery_id=delivery,
                           article_id=article, channel=channel, kind=kind, text=text,
                           sender=sender, subject=subject, received_at=utcnow() - ago)
            s.add(row)
            s.flush()
            return row.id

    def set_delivery(self, delivery: int, **values: object) -> None:
        with transaction(self.sessions) as s:
            d = s.get(Delivery, delivery)
            assert d is not None
            for k, v in values.items():
                setattr(d, k, v)
