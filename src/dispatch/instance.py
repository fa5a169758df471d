"""An instance folder: making one from the packaged defaults, and checking a config's paths.

An instance is a folder holding config.toml, the templates and rules staff edit, the
reader lists, and var/ (the SQLite database, the catcher's mail). Every relative path in
its config is resolved from that folder, so the service runs from anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dispatch import defaults
from dispatch.config import Config
from dispatch.errors import Refused, os_reason

VAR = "var"


@dataclass(frozen=True)
class Made:
    folder: Path
    files: list[PurePosixPath]  # relative to folder, in the order written
    overwritten: list[PurePosixPath]


def init(folder: Path, *, force: bool = False) -> Made:
    """Copy the packaged defaults into folder (made if missing) and make var/.

    Refuses, writing nothing, when a file it would write exists, unless force: then the
    packaged copies replace those files (other files in the folder are left alone).
    """
    folder = Path(folder).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise Refused(f"{folder}：已存在，但不是文件夹")
    items = list(defaults.instance_files())
    existing = [rel for rel, _ in items if (folder / rel).exists()]
    if existing and not force:
        shown = "、".join(str(rel) for rel in existing[:5])
        more = f" 等 {len(existing)} 个文件" if len(existing) > 5 else ""
        raise Refused(
            f"{folder}：{shown}{more}已存在，什么也没有写。"
            "要用自带的默认文件覆盖它们，请加 --force"
        )
    try:
        for rel, resource in items:
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            # Fresh files with the user's umask: staff edit them, even if the package
            # was installed read-only.
            target.write_bytes(resource.read_bytes())
        (folder / VAR).mkdir(exist_ok=True)
    except OSError as exc:
        raise Refused(f"{exc.filename or folder}：无法写入（{os_reason(exc)}）") from None
    return Made(folder, [rel for rel, _ in items], existing)


def check(config: Config) -> None:
    """Refuse at start a file or folder the config names that is not there.

    Read-only things (templates, rules, reader lists, a CA file) must exist. The SQLite
    database's folder must exist when a config file is in use (`dispatch init` makes
    var/); without one, the per-user folder is dispatch's own and is made on first use.
    """
    where = str(config.source) if config.source else "默认设置"
    wanted: list[tuple[str, str, str]] = [  # (key, value, "file" | "folder")
        ("[tagging] rules", config.tagging.rules, "file"),
        ("[paths] templates", config.paths.templates, "folder"),
        ("[paths] recipients", config.paths.recipients, "folder"),
    ]
    if config.smtp.tls_ca_file:
        wanted.append(("[smtp] tls_ca_file", config.smtp.tls_ca_file, "file"))
    if config.imap.tls_ca_file:
        wanted.append(("[imap] tls_ca_file", config.imap.tls_ca_file, "file"))
    for key, value, kind in wanted:
        path = config.path(value)
        ok = path.is_file() if kind == "file" else path.is_dir()
        if not ok:
            what = "文件" if kind == "file" else "文件夹"
            raise Refused(f"{where}：{key} = \"{value}\"：{what} {path} 不存在")
    database = _sqlite_file(config.database_url)
    if database is not None and config.source is not None and not database.parent.is_dir():
        raise Refused(
            f"{where}：[database] url = \"{config.database.url}\"：数据库所在的文件夹 "
            f"{database.parent} 不存在（dispatch init 会建好 var/）"
        )


def _sqlite_file(url: str) -> Path | None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # not a URL: opening the database says so
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)
