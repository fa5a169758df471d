"""Engines, sessions and migrations: one code path for SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import CursorResult, Result, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works; it only has to be the same in every process of one installation.
MIGRATION_LOCK_KEY = 72_461_201


def _lower(value: object) -> object:
    """lower() for SQLite, as PostgreSQL's (and Python's): every letter, not ASCII only."""
    return value.lower() if isinstance(value, str) else value


def make_engine(url: str, *, busy_timeout: float = 30.0) -> Engine:
    """`busy_timeout`: how long an SQLite writer waits for another's lock before giving up."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # A folder that can't be made is SQLite's to report (unable to open), which
            # dispatch.db.errors turns into the operator's line.
            with suppress(OSError):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets the web app read while a worker writes; the rest keep SQLite honest.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cur.close()
            # SQLite's own lower() folds ASCII only; PostgreSQL's folds every letter. The
            # searches (lower(column) LIKE lower(text)) must find ＡＢＣ咨询 or JOSÉ alike.
            dbapi_conn.create_function("lower", 1, _lower, deterministic=True)

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


# Every command opens the database and asks whether the schema is current. Alembic
# answers that in ~0.3 s of imports; these two read the same facts directly (the version
# table; the migration files' own `revision`/`down_revision` lines), and Alembic is
# imported only when there is something to upgrade. tests/test_models.py checks both
# against Alembic's answer.
_REVISION_LINE = re.compile(r'^(down_revision|revision)\b[^=]*=\s*(?:"([^"]*)"|None)', re.M)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return str(version) if version is not None else None


@functools.cache
def head_revision() -> str | None:
    """The newest revision: the one no other migration names as its down_revision."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for file in (MIGRATIONS / "versions").glob("*.py"):
        for key, value in _REVISION_LINE.findall(file.read_text(encoding="utf-8")):
            (revisions if key == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def migrate(engine: Engine) -> bool:
    """Bring the schema to the newest revision; True if anything ran.

    Several processes may start at once on PostgreSQL: an advisory lock makes
    the others wait and then find nothing to do.
    """
    if current_revision(engine) == head_revision():
        return False
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            try:
                if current_revision(engine) == head_revision():
                    return False
                _upgrade(engine)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
                conn.commit()
        return True
    _upgrade(engine)
    return True


def _upgrade(engine: Engine) -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def is_postgres(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (else SQLite): where the two need different SQL."""
    return session.get_bind().dialect.name == "postgresql"


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE run through Session.execute matched."""
    # Session.execute is typed to return a Result; for an UPDATE or DELETE it is a
    # CursorResult, the class that has rowcount.
    return cast(CursorResult[Any], result).rowcount


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: all of it is committed, or none of it."""
    with factory() as session, session.begin():
        yield session
