"""Real SMTP servers on loopback for tests: aiosmtpd in a thread, on a free port.

    with MailServer(security="starttls", certificates=certs, users={"bulletin": "s3cret"},
                    faults={"gone@example.com": rcpt("550 5.1.1 user unknown")}) as server:
        ... send to server.host, server.port (channel_kwargs() has them) ...
        server.accepted      # every message the server answered 250 to DATA, in order
        server.connections   # how many connections said EHLO

security: "none", "starttls" (STARTTLS required before MAIL) or "tls" (implicit TLS).
users: AUTH required (LOGIN, PLAIN) with these passwords; none: no AUTH.
faults: recipient address -> what goes wrong for it, decided at RCPT, one per attempt:
  a Fault for every attempt, or a list of Faults consumed one per attempt (then normal):
    rcpt("451 4.7.1 greylisted")   answer RCPT TO with this
    data("554 5.7.1 spam")         answer the end of DATA with this
    DROP_IN_DATA                   take the message, close the connection, answer nothing
    slow(2.0)                      wait this long before answering DATA (then 250 if the
                                   client is still there; else the message goes to .late);
                                   the wait's start is in .delayed
Certificates come from make_certificates(folder): a private CA and a server certificate for
localhost / 127.0.0.1 / ::1, made with the openssl command.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

LOOPBACK = "127.0.0.1"


# -- certificates ----------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca_file: Path  # trust this (tls_ca_file)
    cert_file: Path  # the server's certificate, signed by the CA
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = dispatch test
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def make_certificates(folder: Path) -> Certificates:
    """A throw-away CA and a server certificate it signed, valid for two days."""
    folder.mkdir(parents=True, exist_ok=True)
    cnf = folder / "openssl.cnf"
    cnf.write_text(_OPENSSL_CONFIG)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    steps = [
        ["req", "-x509", "-new", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-config", "openssl.cnf", "-extensions", "ca_ext", "-subj", "/CN=dispatch test CA"],
        ["req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
         "-config", "openssl.cnf", "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2",
         "-extfile", "openssl.cnf", "-extensions", "server_ext"],
    ]
    for args in steps:
        try:
            subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
        except FileNotFoundError as exc:
            raise RuntimeError("the openssl command is needed to make test certificates") from exc
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"openssl {args[0]} failed: {exc.stderr.decode()}") from exc
    return Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")


# -- faults ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    stage: Literal["rcpt", "data"]
    reply: str | None = None  # answer this instead of 250
    drop: bool = False  # close the connection instead of answering
    delay: float = 0.0  # wait this long before answering


def rcpt(reply: str) -> Fault:
    return Fault("rcpt", reply=reply)


def data(reply: str) -> Fault:
    return Fault("data", reply=reply)


def slow(seconds: float) -> Fault:
    return Fault("data", delay=seconds)


DROP_IN_DATA = Fault("data", drop=True)


# -- the server --------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes  # as the client sent it, dot-stuffing undone, without the final CRLF.CRLF
    connection: int  # 1, 2, …: which connection it came by
    login: str | None  # the AUTH user, if any
    queue_id: str


@dataclass
class _State:
    accepted: list[Received] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (recipient, reply)
    dropped: list[str] = field(default_factory=list)  # recipients whose DATA was cut off
    late: list[str] = field(default_factory=list)  # slow answers nobody waited for
    delayed: list[str] = field(default_factory=list)  # slow answers begun (recipients)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, succeeded)
    servers: list[Any] = field(default_factory=list)  # one aiosmtpd SMTP per connection


class _Handler:
    def __init__(self, owner: MailServer):
        self.owner = owner
        self.queue_ids = itertools.count(1)

    def connection_number(self, server: Any) -> int:
        servers = self.owner.state.servers
        for n, known in enumerate(servers, start=1):
            if known is server:
                return n
        servers.append(server)
        return len(servers)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.connection_number(server)
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # AUTH required, checked here: aiosmtpd's auth_required warns when combined with
        # auth_require_tls=False, which implicit TLS needs.
        if self.owner.users and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        fault = self.owner._next_fault(address)
        envelope.fault = fault
        if fault is not None and fault.stage == "rcpt":
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                server.transport.abort()
                return "421 4.3.0 dropped"
            if fault.reply:
                self.owner.state.rejected.append((address, fault.reply))
                return fault.reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        recipient = envelope.rcpt_tos[0]
        fault: Fault | None = getattr(envelope, "fault", None)
        if fault is not None and fault.stage == "data":
            if fault.delay:
                self.owner.state.delayed.append(recipient)
                await asyncio.sleep(fault.delay)
                if server.transport is None or server.transport.is_closing():
                    self.owner.state.late.append(recipient)
                    return "451 4.3.0 too late"
            if fault.drop:
                self.owner.state.dropped.append(recipient)
                server.transport.abort()
                return "421 4.3.0 dropped"
            if fault.reply:
                self.owner.state.rejected.append((recipient, fault.reply))
                return fault.reply
        queue_id = f"Q{next(self.queue_ids):05d}"
        auth = session.auth_data
        self.owner.state.accepted.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=envelope.original_content,
                connection=self.connection_number(server),
                login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
                queue_id=queue_id,
            )
        )
        return f"250 2.0.0 Ok: queued as {queue_id}"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.owner.users.get(user) == password
        self.owner.state.logins.append((user, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class _Controller(Controller):
    """aiosmtpd's threaded controller, bound to port 0: the OS picks a free port."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class MailServer:
    """An aiosmtpd server in its own thread on a free loopback port."""

    def __init__(
        self,
        *,
        security: Literal["none", "starttls", "tls"] = "none",
        certificates: Certificates | None = None,
        users: dict[str, str] | None = None,
        faults: dict[str, Fault | list[Fault]] | None = None,
        host: str = LOOPBACK,
    ) -> None:
        if security != "none" and certificates is None:
            raise ValueError(f"security={security!r} needs certificates")
        self.security = security
        self.certificates = certificates
        self.users = dict(users or {})
        self.faults: dict[str, Fault | list[Fault]] = dict(faults or {})
        self.host = host
        self.port = 0
        self.state = _State()
        self._lock = threading.Lock()
        self._controller: _Controller | None = None

    # what the server saw
    @property
    def accepted(self) -> list[Received]:
        return self.state.accepted

    @property
    def connections(self) -> int:
        """Connections that said EHLO (aiosmtpd's own start-up probe does not count)."""
        return len(self.state.servers)

    @property
    def logins(self) -> list[tuple[str, bool]]:
        return self.state.logins

    def accepted_for(self, recipient: str) -> list[Received]:
        return [r for r in self.accepted if recipient in r.rcpt_tos]

    def channel_kwargs(self) -> dict[str, Any]:
        """Where an SmtpChannel finds this server: host, port, security, tls_ca_file."""
        return {
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "tls_ca_file": str(self.certificates.ca_file) if self.certificates else None,
        }

    def _next_fault(self, recipient: str) -> Fault | None:
        with self._lock:
            fault = self.faults.get(recipient)
            if isinstance(fault, list):
                return fault.pop(0) if fault else None
            return fault

    # life
    def start(self) -> MailServer:
        kwargs: dict[str, Any] = {"hostname": self.host, "port": 0, "server_hostname": "mx.test"}
        handler = _Handler(self)
        if self.users:
            kwargs["authenticator"] = handler.authenticate
        assert self.security == "none" or self.certificates is not None
        if self.security == "starttls":
            kwargs.update(tls_context=self.certificates.server_context(), require_starttls=True)
        elif self.security == "tls":
            kwargs.update(ssl_context=self.certificates.server_context())
            kwargs["auth_require_tls"] = False  # aiosmtpd can't tell implicit TLS; it is TLS
        else:
            kwargs["auth_require_tls"] = False  # loopback only
        self._controller = _Controller(handler, **kwargs)
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drop_connections(self) -> None:
        """Close every client connection, as a server does to idle ones; waits till done."""
        assert self._controller is not None

        async def close_all() -> None:
            for server in self.state.servers:
                if server.transport is not None:
                    server.transport.abort()
            await asyncio.sleep(0)  # let the loop run the aborts' callbacks

        asyncio.run_coroutine_threadsafe(close_all(), self._controller.loop).result(timeout=5)


def free_port() -> int:
    """A port nothing listens on (for 'server unreachable' tests)."""
    import socket

    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]
