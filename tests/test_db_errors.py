"""A database that can't be used gives one Chinese line, exit 1 and no traceback, for every
command: real faults only (a port where nothing listens, a lock held by another connection,
a full or read-only disk made with a small tmpfs)."""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PG_ADMIN_URL, REPO, SAMPLE_ISSUE, SAMPLE_READERS, Dispatch, Result
from smtp_servers import free_port
from sqlalchemy.engine import make_url

from dispatch.db.session import make_engine, migrate

PASSWORD = "hunter2-Zq9"

# Commands of every kind: the ones that only read, the ones that write, and the
# database's own.
COMMANDS = [
    ("db", "info"),
    ("db", "upgrade"),
    ("issues", "list"),
    ("issues", "ingest", str(SAMPLE_ISSUE)),
    ("recipients", "list"),
    ("recipients", "import", str(SAMPLE_READERS)),
    ("status", "1"),
    ("send", "1", "--dry-run"),
]


def install(home: Path, url: str, **database: object) -> Dispatch:
    """`dispatch` with `url` in its config file and extra [database] keys."""
    d = Dispatch(home, url)
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in database.items())
    d.config.write_text(
        f'[database]\nurl = "{url}"\n{extra}'
        f'[tagging]\nrules = "{REPO / "rules" / "industries.toml"}"\n'
        f'[paths]\ntemplates = "{REPO / "templates"}"\n',
        encoding="utf-8",
    )
    return d


def one_line(r: Result, *words: str) -> str:
    """The refusal: exit 1 and one line on stderr holding `words`, no traceback."""
    assert r.exit_code == 1, (r.exit_code, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert PASSWORD not in r.stdout + r.stderr
    return lines[0]


def created(url: str) -> None:
    """A migrated database at `url`, with no connection left open to it."""
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 2 MB tmpfs: a disk that really fills up or is really read-only (root only)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
        capture_output=True, text=True, check=False,
    )
    if r.returncode:
        pytest.fail(f"these tests mount a small tmpfs, as root (scripts/test runs as root): {r.stderr}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path) -> None:
    """Write a file until the disk says it is full."""
    with open(folder / "filler", "wb", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == 28  # ENOSPC
    # Nothing is left: the next page anybody asks for is refused.
    with pytest.raises(OSError):
        (folder / "one-more").write_bytes(b"\0" * 4096)


# -- PostgreSQL -------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_postgresql_not_answering(tmp_path, command):
    port = free_port()
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/dispatch"
    d = install(tmp_path, "sqlite:///unused.db")
    r = d(*command, env={"DISPATCH_DATABASE_URL": url})
    one_line(r, "连不上", "连接被拒绝", f"postgresql://postgres:***@127.0.0.1:{port}/dispatch",
             "PostgreSQL 正在运行")


def test_verbose_adds_the_traceback_and_still_hides_the_password(tmp_path):
    port = free_port()
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/dispatch"
    d = install(tmp_path, "sqlite:///unused.db")
    r = d("-v", "issues", "list", env={"DISPATCH_DATABASE_URL": url})
    assert r.exit_code == 1
    assert "Traceback" in r.stderr and "OperationalError" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("错误：连不上 PostgreSQL")
    assert PASSWORD not in r.stdout + r.stderr


def test_postgresql_database_that_does_not_exist(tmp_path):
    name = f"dispatch_missing_{secrets.token_hex(4)}"
    url = make_url(PG_ADMIN_URL).set(database=name, password=PASSWORD).render_as_string(False)
    d = install(tmp_path, "sqlite:///unused.db")
    one_line(d("recipients", "list", env={"DISPATCH_DATABASE_URL": url}),
             name, "不存在", f"createdb {name}", ":***@")


def test_password_from_the_environment_is_used_and_never_shown(tmp_path, pg_database):
    # The test server trusts loopback, so any password logs in: what matters is where it shows.
    url = make_url(pg_database).set(password=PASSWORD).render_as_string(False)
    d = install(tmp_path, "sqlite:///unused.db")
    out = d.ok("db", "info", env={"DISPATCH_DATABASE_URL": url})
    assert ":***@" in out and PASSWORD not in out


# -- SQLite -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [("issues", "ingest", str(SAMPLE_ISSUE)), ("recipients", "import", str(SAMPLE_READERS))],
    ids=" ".join,
)
def test_sqlite_locked_by_another_process(tmp_path, command):
    db = tmp_path / "var" / "dispatch.db"
    created(f"sqlite:///{db}")
    d = install(tmp_path, f"sqlite:///{db}", busy_timeout_seconds=0.2)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        one_line(d(*command), str(db), "被另一个进程锁住", "0.2 秒", "busy_timeout_seconds",
                 "什么也没写入")
    finally:
        other.execute("ROLLBACK")
        other.close()
    # Nothing half-done: the same command now goes through from the start.
    d.ok(*command)


def test_busy_timeout_is_a_number(tmp_path):
    d = install(tmp_path, "sqlite:///x.db", busy_timeout_seconds="soon")
    one_line(d("issues", "list"), "busy_timeout_seconds", "数字")


@pytest.mark.parametrize("held_open", [True, False], ids=["another-process-has-it-open", "alone"])
def test_sqlite_on_a_full_disk(tmp_path, small_disk, held_open):
    # With the file open elsewhere its -wal/-shm exist and the write itself hits the full
    # disk (SQLITE_FULL); alone, SQLite can't even make its -shm (an I/O error on a disk
    # with nothing left). Both are the same fault for the operator.
    db = small_disk / "dispatch.db"
    created(f"sqlite:///{db}")
    other = sqlite3.connect(db) if held_open else None
    if other:
        other.execute("SELECT count(*) FROM readers").fetchall()
    try:
        fill(small_disk)
        d = install(tmp_path, f"sqlite:///{db}")
        one_line(d("recipients", "import", str(SAMPLE_READERS)),
                 "磁盘满了", str(db), "腾出空间", "什么也没写入")
    finally:
        if other:
            other.close()
    (small_disk / "filler").unlink()
    assert json.loads(d.ok("recipients", "list", "--json")) == []
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize("exists", [True, False], ids=["existing-database", "new-database"])
def test_sqlite_in_a_read_only_folder(tmp_path, small_disk, exists):
    db = small_disk / "dispatch.db"
    if exists:
        created(f"sqlite:///{db}")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    d = install(tmp_path, f"sqlite:///{db}")
    one_line(d("issues", "list"), str(db), "只能读不能写", f"文件夹 {small_disk}")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_sqlite_folder_that_cannot_be_made(tmp_path, command):
    (tmp_path / "var").write_text("a file where the folder should be", encoding="utf-8")
    db = tmp_path / "var" / "dispatch.db"
    d = install(tmp_path, f"sqlite:///{db}")
    one_line(d(*command), str(db), f"文件夹 {db.parent} 不存在", "[database] url")
