"""What the reader-page tests build a site from: a runtime on a test database whose
[web] base_url is where the test's server listens, and readers and deliveries added
straight to the tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from conftest import REPO
from sqlalchemy.orm import Session

from dispatch.config import Config
from dispatch.db.models import Delivery, Reader, ReaderIndustry
from dispatch.runtime import Runtime
from dispatch.track.tokens import new_token


def runtime_at(db_url: str, base_url: str | None = None) -> Runtime:
    """A runtime on `db_url` with the checkout's templates and rules; links to `base_url`."""
    config = Config(base_dir=REPO)
    config.database.url = db_url
    if base_url is not None:
        config.web.base_url = base_url
    return Runtime(config)


def add_reader(session: Session, name: str, email: str | None = None, *,
               industries: Iterable[str] = (), follows_all: bool = False) -> Reader:
    """A reader by email (a made-up address unless one is given)."""
    reader = Reader(
        name=name, email=email or f"{new_token()[:10]}@example.cn", follows_all=follows_all,
        industry_rows=[ReaderIndustry(industry=c) for c in industries],
    )
    session.add(reader)
    session.flush()
    return reader


def add_delivery(session: Session, issue_id: int, reader: Reader, **fields: Any) -> str:
    """An email delivery of the issue to the reader (more columns in `fields`); its token."""
    token = new_token()
    session.add(Delivery(issue_id=issue_id, reader_id=reader.id, channel="email", token=token,
                         **fields))
    session.flush()
    return token
