"""Shared fixtures: real databases (SQLite files and the machine's PostgreSQL) and a
way to run the `dispatch` command as a user would, in-process."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from smtp_servers import MailServer
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from dispatch.db.models import Base
from dispatch.db.session import make_engine, migrate, session_factory

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ISSUE = REPO / "samples" / "issue-sample.txt"
SAMPLE_READERS = REPO / "recipients" / "sample.csv"
PG_ADMIN_URL = os.environ.get(
    "DISPATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


# Markers, so a quick local run can leave out what a laptop lacks:
#   scripts/test -m "not pg and not browser and not root and not slow"
# `pg` and `root` are set here from the fixtures a test uses; the others by the test files.
PG_FIXTURES = {"pg_database", "pg_sessions"}
ROOT_FIXTURES = {"small_disk"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pg = callspec is not None and callspec.params.get("db_url") == "postgresql"
        if on_pg or PG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pg)
        if ROOT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"dispatch_t_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is needed (scripts/services starts it): {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    migrate(make_engine(url))
    yield url
    with admin.connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _truncate_pg(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, sqlite_url) -> str:
    """An empty, migrated database of each kind."""
    if request.param == "sqlite":
        return sqlite_url
    url = request.getfixturevalue("pg_database")
    _truncate_pg(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'dispatch.db'}"


@pytest.fixture
def sessions(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def sqlite_sessions(sqlite_url):
    """Sessions on a fresh SQLite file, for tests where the database's kind is no matter."""
    engine = make_engine(sqlite_url)
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def pg_sessions(pg_database):
    """Sessions on an empty PostgreSQL database, for behaviour only it has."""
    _truncate_pg(pg_database)
    engine = make_engine(pg_database)
    yield session_factory(engine)
    engine.dispose()


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


class Dispatch:
    """Runs `dispatch …` against one installation (config + database) in a folder."""

    def __init__(self, home: Path, db_url: str):
        self.home = home
        self.db_url = db_url
        self.config = home / "config.toml"
        self.config.write_text(
            f'[database]\nurl = "{db_url}"\n'
            f'[tagging]\nrules = "{REPO / "rules" / "industries.toml"}"\n'
            f'[paths]\ntemplates = "{REPO / "templates"}"\n',
            encoding="utf-8",
        )
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        from dispatch.cli import app

        r = self.runner.invoke(
            app, ["--config", str(self.config), *map(str, args)], env=env, catch_exceptions=False
        )
        return Result(r.exit_code, r.stdout, r.stderr)

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        r = self(*args, env=env)
        assert r.exit_code == 0, f"dispatch {' '.join(args)} → {r.exit_code}\n{r.stdout}\n{r.stderr}"
        return r.stdout


@pytest.fixture
def mail() -> Iterator[MailServer]:
    """A real SMTP server on loopback that accepts everything (tests/smtp_servers.py)."""
    with MailServer() as server:
        yield server


@pytest.fixture
def dispatch(tmp_path, db_url) -> Dispatch:
    """The `dispatch` command on a fresh installation, once per database kind."""
    return Dispatch(tmp_path, db_url)


@pytest.fixture
def dispatch_sqlite(tmp_path, sqlite_url) -> Dispatch:
    """The `dispatch` command on SQLite only, for tests where the database doesn't matter."""
    return Dispatch(tmp_path, sqlite_url)
