"""Files a staff member uploaded, kept on the server between a form's two steps (check it,
then confirm it): under the instance's var/uploads/ (never the working folder), for an
hour at most.

A file is named by a random id, never by what the browser called it. The browser gets
the id, the name it gave, and a signature over both and its session (dispatch.track.
signing): another session, a changed name or an hour later, and the file is not found.
Files older than an hour are deleted whenever a file is put or taken; a confirmed one at
once. What the lists hold is personal data: the folder and files are the owner's only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from dispatch.config import Config
from dispatch.instance import VAR
from dispatch.track import signing
from dispatch.web.desk import Clock, uploaded_name

log = logging.getLogger(__name__)

PURPOSE = "held-upload"
MAX_AGE = 3600  # seconds: long enough to read a preview, short enough not to keep lists
FOLDER = "uploads"
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


def folder_of(config: Config) -> Path:
    """<instance>/var/uploads: beside the database and the catcher's mail."""
    return config.path(VAR) / FOLDER


@dataclass(frozen=True)
class Held:
    id: str
    name: str  # as uploaded (desk.uploaded_name): errors name it, its extension is the format
    token: str  # signs id, name and the session
    path: Path


class Holds:
    def __init__(self, folder: Path, key: bytes, clock: Clock):
        self.folder = folder
        self.key = key
        self.clock = clock

    def put(self, session: str, filename: str, data: bytes) -> Held:
        """Keep ``data`` for the session (its cookie) and say how to find it again."""
        self.sweep()
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = uploaded_name(filename, "名单")
        held_id = secrets.token_urlsafe(24)
        path = self._path(held_id, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        now = self.clock()
        os.utime(path, (now, now))  # its age by the clock the signatures use
        token = signing.sign(self.key, PURPOSE, _subject(held_id, name, session), now)
        return Held(held_id, name, token, path)

    def take(self, session: str, held_id: str, name: str, token: str) -> Held | None:
        """The file the session was given, if its signature holds, it is under an hour
        old and still there; else None."""
        self.sweep()
        if not _ID.fullmatch(held_id) or not signing.verify(
            self.key, PURPOSE, _subject(held_id, name, session), token,
            max_age=MAX_AGE, now=self.clock(),
        ):
            return None
        path = self._path(held_id, name)
        return Held(held_id, name, token, path) if path.is_file() else None

    def drop(self, held: Held) -> None:
        with contextlib.suppress(FileNotFoundError):
            held.path.unlink()

    def sweep(self) -> None:
        """Delete what is over an hour old."""
        oldest = self.clock() - MAX_AGE
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file() and entry.stat().st_mtime < oldest:
                    os.unlink(entry.path)
                    log.info("held upload expired and deleted")

    def _path(self, held_id: str, name: str) -> Path:
        # The format is the extension's (dispatch.readers.table): keep it, safely.
        suffix = Path(name).suffix.lower()
        return self.folder / (held_id + (suffix if _SUFFIX.fullmatch(suffix) else ""))


def _subject(held_id: str, name: str, session: str) -> str:
    return f"{held_id}\n{name}\n{session}"
