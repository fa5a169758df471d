"""Database faults the operator must fix, each as one Chinese line: what, where, what to do.

The CLI prints that line instead of a traceback (`-v` adds the traceback). The line never
carries a password: PostgreSQL is named by its URL with the password masked, SQLite by its
file. Only faults of the database itself are described (unreachable, missing, locked, full,
read-only, unreadable); anything else, a bug included, keeps its traceback.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

# psycopg reports a failed connection without an SQLSTATE: its words are all there is.
_PG_UNREACHABLE = (
    ("connection refused", "连接被拒绝"),
    ("failed to resolve host", "主机名解析不出来"),
    ("could not translate host name", "主机名解析不出来"),
    ("name or service not known", "主机名解析不出来"),
    ("timeout expired", "连接超时"),
    ("timed out", "连接超时"),
    ("no route to host", "到不了这台主机"),
    ("network is unreachable", "网络不通"),
    ("no such file or directory", "本机套接字不存在"),
)
_PG_GONE_SQLSTATES = {"57P01", "57P02", "57P03", "08000", "08003", "08006"}
_PG_DISK_FULL = "53100"
_PG_NO_DATABASE = "3D000"
_PG_AUTH = {"28P01", "28000"}


def describe(exc: BaseException, url: str, *, busy_timeout: float) -> str | None:
    """The line for a database fault behind `exc`, or None if `exc` is not one."""
    for cause in _chain(exc):
        if isinstance(cause, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
            cause, sqlite3.IntegrityError | sqlite3.ProgrammingError
        ):
            return _sqlite(cause, url, busy_timeout)
        if _is_psycopg_operational(cause):
            return _postgres(cause, url)
    return None


def will_pass(exc: BaseException) -> bool:
    """True when the fault behind `exc` goes away by itself: a PostgreSQL server not
    answering yet (or restarting), an SQLite file another process holds locked. Not a
    missing database, a refused login or a bad URL: waiting won't mend those."""
    for cause in _chain(exc):
        if isinstance(cause, sqlite3.OperationalError):
            name = getattr(cause, "sqlite_errorname", "") or ""
            return name.removeprefix("SQLITE_").split("_")[0] in ("BUSY", "LOCKED")
        if _is_psycopg_operational(cause):
            sqlstate = getattr(cause, "sqlstate", None)
            if sqlstate is not None:
                return sqlstate in _PG_GONE_SQLSTATES
            text = str(cause).lower()
            return any(words in text for words, _ in _PG_UNREACHABLE)
    return False


def masked(url: str) -> str:
    """The URL as it may be shown: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as nothing rather than leaked
        return "（无法解析的数据库网址）"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, what caused it, and the members of exception groups, depth first."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            todo.extend(reversed(e.exceptions))
        if e.__cause__ is not None:
            todo.append(e.__cause__)
        elif e.__context__ is not None and not e.__suppress_context__:
            todo.append(e.__context__)


def _is_psycopg_operational(e: BaseException) -> bool:
    # psycopg is an optional dependency: recognise its errors without importing it.
    return any(
        c.__module__.startswith("psycopg") and c.__name__ == "OperationalError"
        for c in type(e).__mro__
    )


def _sqlite(e: sqlite3.Error, url: str, busy_timeout: float) -> str:
    name = getattr(e, "sqlite_errorname", "") or ""
    kind = name.removeprefix("SQLITE_").split("_")[0]
    file = Path(make_url(url).database or "")
    folder = file.parent
    where = f"SQLite 数据库 {file}"
    if kind in ("BUSY", "LOCKED"):
        return (
            f"{where} 被另一个进程锁住，等了 {busy_timeout:g} 秒仍未放开：请等它结束后重试"
            f"（`fuser {file}` 看是谁），或调大 [database] busy_timeout_seconds；这次什么也没写入"
        )
    if kind == "FULL" or (kind == "IOERR" and _disk_full(folder)):
        return f"磁盘满了，{where} 写不进去：请在 {folder} 所在的磁盘腾出空间后重试；这次什么也没写入"
    if kind == "READONLY" or (kind == "CANTOPEN" and folder.is_dir() and not _writable(folder)):
        return (
            f"{where} 只能读不能写：请让运行 dispatch 的用户能写这个文件和它所在的文件夹 {folder}"
            "（SQLite 要在旁边建 -wal、-shm 文件）"
        )
    if kind == "CANTOPEN":
        if not folder.is_dir():
            return f"打不开 {where}：文件夹 {folder} 不存在，也建不了：请先建好它，或改正 [database] url"
        return f"打不开 {where}：请检查这个文件和文件夹 {folder} 的权限，或改正 [database] url"
    if kind == "IOERR":
        return f"读写 {where} 时磁盘出错（{name}）：请检查磁盘和文件系统后重试"
    if kind in ("NOTADB", "CORRUPT"):
        return f"{file} 不是 SQLite 数据库，或者已经损坏：请改正 [database] url，或从备份恢复"
    return f"{where} 出错（{name or _first_line(e, url)}）：请用 `dispatch -v …` 看详情"


def _postgres(e: BaseException, url: str) -> str:
    where = f"PostgreSQL 数据库 {masked(url)}"
    sqlstate = getattr(e, "sqlstate", None)
    text = str(e).lower()
    if sqlstate == _PG_NO_DATABASE or ("database" in text and "does not exist" in text):
        name = make_url(url).database or ""
        return f"{where} 不存在：请先建好它（createdb {name}），或改正网址里的库名"
    if sqlstate in _PG_AUTH or "authentication failed" in text or "no password supplied" in text:
        return f"{where} 拒绝了登录：请检查 $DISPATCH_DATABASE_URL 里的用户名和密码"
    if sqlstate == _PG_DISK_FULL:
        return f"{where} 所在服务器的磁盘满了：请在数据库服务器上腾出空间后重试；这次什么也没写入"
    if sqlstate is None or sqlstate in _PG_GONE_SQLSTATES:
        for words, reason in _PG_UNREACHABLE:
            if words in text:
                return (
                    f"连不上 {where}（{reason}）：请确认 PostgreSQL 正在运行，"
                    "网址里的主机和端口写对了（$DISPATCH_DATABASE_URL 或 [database] url）"
                )
        return f"与 {where} 的连接断了：请确认 PostgreSQL 正在运行后重试（`dispatch -v …` 看详情）"
    return f"{where} 出错（{sqlstate}：{_first_line(e, url)}）：请用 `dispatch -v …` 看详情"


def _disk_full(folder: Path) -> bool:
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def _writable(folder: Path) -> bool:
    # access() answers for root too on a read-only mount (EROFS), unlike the mode bits.
    return os.access(folder, os.W_OK)


def _first_line(e: BaseException, url: str) -> str:
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    password = _password(url)
    return line.replace(password, "***") if password else line


def _password(url: str) -> str | None:
    try:
        return make_url(url).password
    except Exception:
        return None

