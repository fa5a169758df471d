"""How dispatch secures its connections to mail servers (SMTP out, IMAP in): one rule.

Certificates are verified against the system's CAs, or only against `tls_ca_file` (a
private CA, PEM). `tls_verify = false` turns verification off and is accepted only for a
server on loopback (a local mail catcher or test server). A password is sent over an
unencrypted connection (`security = "none"`) only to a server on loopback: it never
crosses the network in clear.
"""

from __future__ import annotations

import ssl

from dispatch.errors import Refused
from dispatch.net import is_loopback


def tls_context(*, ca_file: str | None = None, verify: bool = True) -> ssl.SSLContext:
    """The client TLS context: system CAs, or only `ca_file`'s; no checks if not verify."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file or None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def check_security(
    section: str, host: str, *, security: str, tls_verify: bool, sends_password: bool
) -> None:
    """Refuse settings that would trust any certificate, or send a password in clear,
    beyond loopback. `section`: the config section named in the message ("smtp", "imap")."""
    if not tls_verify and security != "none" and not is_loopback(host):
        raise Refused(
            f"[{section}] tls_verify = false 只用于本机回环地址上的邮件服务器（如邮件捕获器），"
            f"不能用于 {host}：请改为把私有 CA 的证书设为 tls_ca_file"
        )
    if sends_password and security == "none" and not is_loopback(host):
        raise Refused(
            f"[{section}] 设置了 username，但 security = 'none'：密码会以明文发往 {host}；"
            "请改用 starttls 或 tls"
        )
