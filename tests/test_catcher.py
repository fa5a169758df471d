"""`dispatch catcher`, the local mail catcher, run as a real process: its own faults are
temporary (451) and leave no file behind, and it says so when it listens beyond loopback.

The fault is real: the catcher runs under a file-size limit (RLIMIT_FSIZE), so writing a
message larger than the limit fails in the kernel with EFBIG, part-way through the file,
as a full disk does; smaller messages still fit. Works for any user, root included.
"""

from __future__ import annotations

import asyncio
import resource
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import pytest
from smtp_servers import free_port
from sqlalchemy import select
from test_send_cli import _install

from dispatch.catcher import exposure_warning
from dispatch.config import load
from dispatch.db.models import Delivery
from dispatch.deliver.worker import Worker
from dispatch.runtime import Runtime

DEADLINE = 60.0  # generous: a loaded 2-core machine


class Catcher:
    def __init__(self, home: Path, folder: Path, listen: str, *, max_file_bytes: int | None = None):
        self.host, _, port = listen.rpartition(":")
        self.port = int(port)
        self.folder = folder
        (home / "catcher.toml").write_text("", encoding="utf-8")
        (home / "var").mkdir(exist_ok=True)  # the default database's folder must exist
        cmd = [sys.executable, "-m", "dispatch", "--config", str(home / "catcher.toml"),
               "catcher", "--dir", str(folder), "--listen", listen]
        self.proc = subprocess.Popen(
            cmd, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=_limit_file_size(max_file_bytes) if max_file_bytes else None,
        )
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"catcher exited {self.proc.returncode}: {self.proc.communicate()}")
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as s:
                    s.noop()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> str:
        """Stop it; its stderr."""
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=DEADLINE)
        return err


def _limit_file_size(n: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))

    return apply


@pytest.fixture
def catchers(tmp_path) -> Iterator[Callable[..., Catcher]]:
    started: list[Catcher] = []

    def start(listen: str, **kw) -> Catcher:
        c = Catcher(tmp_path, tmp_path / "mail", listen, **kw)
        started.append(c)
        return c

    yield start
    for c in started:
        if c.proc.poll() is None:
            c.stop()


def message(size: int) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "bulletin@example.gov.cn"
    m["To"] = "reader@example.gov.cn"
    m["Subject"] = "test"
    m.set_content("x" * size)
    return m


def test_a_fault_of_its_own_is_temporary_and_leaves_no_file(catchers):
    port = free_port()
    c = catchers(f"127.0.0.1:{port}", max_file_bytes=16 * 1024)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.send_message(message(64 * 1024))
        assert e.value.smtp_code == 451
        # Neither the half-written .part nor an .eml stays behind.
        assert list(c.folder.iterdir()) == []
        # The catcher is still there: what fits is kept.
        s.send_message(message(1024))
    [kept] = list(c.folder.iterdir())
    assert kept.suffix == ".eml" and b"X-Catcher-Rcpt-To: reader@example.gov.cn" in kept.read_bytes()
    err = c.stop()
    assert "注意" not in err  # loopback: no warning


def test_warns_when_listening_beyond_loopback(catchers):
    port = free_port()
    err = catchers(f"0.0.0.0:{port}").stop()
    warning = [line for line in err.splitlines() if "注意" in line]
    assert len(warning) == 1 and "0.0.0.0" in warning[0] and "127.0.0.1" in warning[0]


@pytest.mark.parametrize(
    ("host", "warns"),
    [("127.0.0.1", False), ("::1", False), ("localhost", False),
     ("0.0.0.0", True), ("::", True), ("192.168.1.20", True), ("mail.example.gov.cn", True)],
)
def test_which_addresses_are_beyond_loopback(host, warns):
    assert (exposure_warning(host) is not None) is warns


def test_deliveries_to_a_faulty_catcher_are_retried_not_failed(dispatch_sqlite, tmp_path, catchers):
    port = free_port()
    catcher = catchers(f"127.0.0.1:{port}", max_file_bytes=4096)  # every digest is larger
    issue = _install(dispatch_sqlite, tmp_path, SimpleNamespace(host="127.0.0.1", port=port))
    dispatch_sqlite.ok("send", str(issue))  # plans only
    runtime = Runtime(load(dispatch_sqlite.config, env={}))

    def email_rows() -> list[tuple[str, str | None]]:
        with runtime.sessions() as s:
            return s.execute(
                select(Delivery.state, Delivery.last_error).where(Delivery.channel == "email")
            ).all()

    asyncio.run(_deliver(runtime, until=lambda: all(st != "queued" for st, _ in email_rows())))
    rows = email_rows()
    assert len(rows) == 5 and all(st == "retry" for st, _ in rows), rows
    assert all(err.startswith("451") for _, err in rows), rows
    assert list(catcher.folder.iterdir()) == []

    # Once the catcher has room again, the same deliveries go through.
    catcher.stop()
    healthy = catchers(f"127.0.0.1:{port}")
    asyncio.run(_deliver(runtime, until=lambda: all(st == "sent" for st, _ in email_rows())))
    assert len(list(healthy.folder.glob("*.eml"))) == 5


async def _deliver(runtime: Runtime, until: Callable[[], bool]) -> None:
    """Run worker batches until `until()` holds (rows wait out their retry backoff)."""
    worker = Worker(runtime)
    deadline = time.monotonic() + DEADLINE
    try:
        while not until():
            assert time.monotonic() < deadline, "deliveries did not settle"
            if (await worker.run_batch()).claimed == 0:
                await asyncio.sleep(0.1)
    finally:
        await worker.close()
