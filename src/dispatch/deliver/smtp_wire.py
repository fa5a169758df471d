"""aiosmtplib's DATA preparation without the regex passes that would change nothing.

aiosmtplib (5.x) prepares every message with regex substitutions over the whole of it:
line endings to CRLF (twice when the server offers SIZE) and dot-stuffing. On our
~25 KB messages these were a third of a delivery worker's CPU (bench/deliver.py under
py-spy), and for what the render step makes (CRLF throughout, base64 or
quoted-printable bodies) they change nothing. The replacements below first check, with
C-speed byte counts, whether there is anything to change, and otherwise run
aiosmtplib's own code: the bytes on the wire are the same for any input
(tests/test_smtp_wire.py compares them).

`install()` is called once by dispatch.deliver.smtp. If a future aiosmtplib moves these
names, it logs and leaves the library as it is: slower, never wrong.
"""

from __future__ import annotations

import logging
import re
from types import ModuleType

from aiosmtplib import protocol as _protocol
from aiosmtplib import smtp as _smtp

log = logging.getLogger(__name__)

_normalize = _protocol.normalize_message_line_endings
_PERIOD: re.Pattern[bytes] = _protocol.PERIOD_REGEX


def normalize_message_line_endings(message: bytes) -> bytes:
    """aiosmtplib's normalize_message_line_endings, returning `message` itself when it
    already uses CRLF only and ends with one."""
    crlf = message.count(b"\r\n")
    if (
        message.endswith(b"\r\n")
        and message.count(b"\n") == crlf
        and message.count(b"\r") == crlf
    ):
        return message
    return _normalize(message)


class _PeriodQuoting:
    """Stands in for aiosmtplib's PERIOD_REGEX (`(?m)^\\.`), used as `.sub(b"..", m)`:
    the regex runs only when some line starts with a period."""

    pattern = _PERIOD.pattern
    flags = _PERIOD.flags

    def sub(self, repl: bytes, message: bytes, count: int = 0) -> bytes:
        if message.startswith(b".") or b"\n." in message:
            return _PERIOD.sub(repl, message, count)
        return message


def _replace(module: ModuleType, name: str, value: object) -> None:
    # By name: the stand-ins are duck-typed (a _PeriodQuoting is no re.Pattern), and
    # aiosmtplib's code looks these names up in its modules at call time.
    setattr(module, name, value)


def install() -> bool:
    """Put the fast paths in place (idempotent); False when this aiosmtplib differs."""
    if isinstance(getattr(_protocol, "PERIOD_REGEX", None), _PeriodQuoting):
        return True
    expected = (
        getattr(_protocol, "normalize_message_line_endings", None) is _normalize
        and getattr(_smtp, "normalize_message_line_endings", None) is _normalize
        and isinstance(getattr(_protocol, "PERIOD_REGEX", None), re.Pattern)
    )
    if not expected:
        log.warning("aiosmtplib's DATA preparation has changed: running it unmodified")
        return False
    _replace(_protocol, "normalize_message_line_endings", normalize_message_line_endings)
    _replace(_smtp, "normalize_message_line_endings", normalize_message_line_endings)
    _replace(_protocol, "PERIOD_REGEX", _PeriodQuoting())
    return True
