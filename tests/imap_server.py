"""A real IMAP server for tests: Dovecot in the foreground on free loopback ports.

    with ImapServer(certificates) as server:
        user = server.add_user()          # a fresh mailbox per test (password: .passwords)
        server.append(user, raw_bytes)    # put a message in its INBOX (IMAP APPEND)
        server.messages(user, "Processed")
        server.port      # plain IMAP, STARTTLS offered (security "none" / "starttls")
        server.tls_port  # implicit TLS (security "tls")

Dovecot (Debian's dovecot-imapd; scripts/system-deps installs it) runs with a config
made here: users in a passwd-file, Maildir under a folder of its own, TLS with the test
CA's certificate. Its folder is made with mode 755 outside pytest's tmp_path (which is
private to its owner): Dovecot's auth and mail processes run as other users. As root,
logins run as dovenull, Dovecot's own processes as dovecot and mail as nobody, as Debian
sets them up; as anyone else, everything runs as that user. `capabilities` replaces what
the server advertises (e.g. without MOVE, to exercise COPY + EXPUNGE).
"""

from __future__ import annotations

import imaplib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from smtp_servers import LOOPBACK, Certificates, free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
START_SECONDS = 30.0
USERS = 100

_CONFIG = """\
base_dir = {folder}/run
state_dir = {folder}/state
instance_name = dispatch-test-{name}
log_path = {folder}/dovecot.log
protocols = imap
listen = {host}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 1
{capability}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={folder}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {tls_port}
    ssl = yes
  }}
}}
"""


class ImapServer:
    def __init__(self, certificates: Certificates, *, capabilities: str | None = None):
        self.certificates = certificates
        self.capabilities = capabilities
        self.host = LOOPBACK
        self.port = free_port()
        self.tls_port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="dispatch-dovecot-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._users = itertools.count(1)
        self.passwords: dict[str, str] = {}

    # -- life --------------------------------------------------------------------------

    def __enter__(self) -> ImapServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if not Path(DOVECOT).exists():
            raise RuntimeError("dovecot is needed for the IMAP tests (scripts/system-deps "
                               "installs Debian's dovecot-imapd)")
        folder = self.folder
        folder.chmod(0o755)
        for sub in ("run", "state", "home", "tls"):
            (folder / sub).mkdir()
        cert, key = folder / "tls" / "server.pem", folder / "tls" / "server.key"
        shutil.copy(self.certificates.cert_file, cert)
        shutil.copy(self.certificates.key_file, key)
        # Every user made now: Dovecot re-reads a changed passwd-file at most once a second.
        self.passwords = {f"inbox{n}": f"s3cret{n}" for n in range(1, USERS + 1)}
        (folder / "passwd").write_text(
            "".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.passwords.items()))
        (folder / "passwd").chmod(0o644)
        if os.geteuid() == 0:
            login_user, internal_user = "dovenull", "dovecot"
            mail_user = pwd.getpwnam("nobody")
            os.chown(folder / "home", mail_user.pw_uid, mail_user.pw_gid)
        else:
            mail_user = pwd.getpwuid(os.getuid())
            login_user = internal_user = mail_user.pw_name
        config = folder / "dovecot.conf"
        config.write_text(_CONFIG.format(
            folder=folder, name=folder.name, host=self.host, port=self.port,
            tls_port=self.tls_port, cert=cert, key=key, login_user=login_user,
            internal_user=internal_user, uid=mail_user.pw_uid, gid=mail_user.pw_gid,
            capability=f"imap_capability = {self.capabilities}" if self.capabilities else "",
        ))
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(folder / "stderr.log", "wb"),  # noqa: SIM115 (closed with the process)
        )
        deadline = time.monotonic() + START_SECONDS
        while not (self._listening(self.port) and self._listening(self.tls_port)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not listen within {START_SECONDS:.0f}s:\n{self.log()}")
            time.sleep(0.02)

    def _listening(self, port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex((self.host, port)) == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        parts = []
        for name in ("stderr.log", "dovecot.log"):
            path = self.folder / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)[-5000:]

    # -- mailboxes ---------------------------------------------------------------------

    def add_user(self) -> str:
        """A user not handed out before (an empty mailbox); its password is in .passwords."""
        n = next(self._users)
        if n > USERS:
            raise RuntimeError(f"ImapServer has {USERS} users; make more")
        return f"inbox{n}"

    def client(self, user: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        conn.login(user, self.passwords[user])
        return conn

    def append(self, user: str, *messages: bytes, mailbox: str = "INBOX") -> None:
        conn = self.client(user)
        try:
            for raw in messages:
                status, data = conn.append(mailbox, None, None, raw)
                assert status == "OK", data
        finally:
            conn.logout()

    def messages(self, user: str, mailbox: str = "INBOX") -> list[bytes]:
        """The messages in `mailbox` (not deleted ones); [] if the mailbox doesn't exist."""
        conn = self.client(user)
        try:
            status, _ = conn.select(f'"{mailbox}"', readonly=True)
            if status != "OK":
                return []
            _, data = conn.uid("SEARCH", "UNDELETED")
            uids = data[0].split() if data and data[0] else []
            out = []
            for uid in uids:
                _, fetched = conn.uid("FETCH", uid, "(BODY.PEEK[])")
                out.extend(item[1] for item in fetched if isinstance(item, tuple))
            return out
        finally:
            conn.logout()

    def flags(self, user: str, mailbox: str = "INBOX") -> list[bytes]:
        conn = self.client(user)
        try:
            _, count = conn.select(f'"{mailbox}"', readonly=True)
            if count[0] == b"0":
                return []
            _, data = conn.fetch("1:*", "(FLAGS)")
            return [d for d in data if isinstance(d, bytes)]
        finally:
            conn.logout()
