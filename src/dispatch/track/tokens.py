"""The token of a delivery: the one place that knows its format.

Random 160 bits in lower-case base32 (32 characters, no padding): unguessable, and
lower case because some mail servers lower-case the local part of an address.
"""

from __future__ import annotations

import base64
import re
import secrets

TOKEN_BYTES = 20
TOKEN_LENGTH = 32
TOKEN_RE = re.compile(r"[a-z2-7]{32}")


def new_token() -> str:
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii").lower()


def is_token(text: str) -> bool:
    return TOKEN_RE.fullmatch(text) is not None
