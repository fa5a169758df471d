"""A local mail catcher: an SMTP server on loopback that keeps each message as an .eml file.

For trying dispatch out and for demos: point [smtp] at it (the embedded defaults do)
and open what readers would have received. Not a relay: nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from dispatch.errors import Refused, os_reason
from dispatch.net import is_loopback

log = logging.getLogger(__name__)


class SaveToFolder:
    """aiosmtpd handler: each message to FOLDER/<time>-<n>.eml, envelope in headers."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._n = itertools.count(1)
        self.received = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        n = next(self._n)
        name = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{n:06d}.eml"
        head = (
            f"X-Catcher-Mail-From: {envelope.mail_from}\r\n"
            f"X-Catcher-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        # aiosmtpd fills it in before calling handle_DATA (None only before DATA).
        assert envelope.original_content is not None
        tmp = name.with_suffix(".part")
        try:
            tmp.write_bytes(head + envelope.original_content)
            tmp.rename(name)  # a reader of the folder never sees half a message
        except OSError as exc:
            # Our own fault (disk full, folder gone or not writable): temporary, so the
            # sender keeps the message and tries again instead of failing the reader.
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            log.warning("mail catcher: could not store a message in %s: %s", self.folder, exc)
            return "451 4.3.0 Local error storing the message; try again later"
        self.received += 1
        return f"250 2.0.0 Ok: queued as C{n:06d}"


def start(host: str, port: int, folder: Path) -> tuple[Controller, SaveToFolder]:
    try:
        handler = SaveToFolder(folder)
    except OSError as exc:
        raise Refused(f"邮件收集器：建不了存信的文件夹 {folder}（{os_reason(exc)}）") from exc
    controller = Controller(handler, hostname=host, port=port, data_size_limit=50 * 2**20)
    try:
        controller.start()
    except OSError as exc:
        raise Refused(
            f"邮件收集器：在 {host}:{port} 上监听不了（{os_reason(exc)}）；"
            "是不是已经有一个在运行？"
        ) from exc
    return controller, handler


def exposure_warning(host: str) -> str | None:
    """A warning when `host` reaches beyond this machine: anyone there could fill the disk."""
    if is_loopback(host):
        return None
    return (
        f"注意：邮件收集器在 {host} 上监听，不只是本机：同一网络里谁都能往里投信、塞满磁盘；"
        "只在本机试用请用 --listen 127.0.0.1:端口"
    )


def serve_forever(host: str, port: int, folder: Path) -> None:
    controller, handler = start(host, port, folder)
    log.info("mail catcher on %s:%d, saving to %s", host, port, folder)
    try:
        asyncio.run(_wait_forever())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
        log.info("mail catcher stopped after %d messages", handler.received)


async def _wait_forever() -> None:
    await asyncio.Event().wait()
