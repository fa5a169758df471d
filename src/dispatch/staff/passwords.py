"""Password hashing: argon2id through argon2-cffi with its default parameters (a vetted,
memory-hard hash; its defaults follow RFC 9106). Nothing here logs a password."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dispatch.errors import Refused

MIN_LENGTH = 10
_hasher = PasswordHasher()


def check_new(password: str) -> None:
    """Refuse a password too short to keep (Chinese, naming the field)."""
    if len(password) < MIN_LENGTH:
        raise Refused(f"密码：至少 {MIN_LENGTH} 个字符")


def check_pair(password: str, again: str) -> None:
    """A new password as staff give it, typed twice (the CLI's prompts, the web's forms):
    both the same, and long enough."""
    if password != again:
        raise Refused("密码：两次输入的不一样，账号没有改动")
    check_new(password)


def hash_password(password: str) -> str:
    check_new(password)
    return _hasher.hash(password)


def verify(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether a hash made with older parameters should be made again (on sign-in)."""
    return _hasher.check_needs_rehash(stored_hash)


# A hash of nothing anyone types: verified against when the name is unknown, so an
# unknown name costs the same time as a wrong password (no account enumeration).
DUMMY_HASH = _hasher.hash("not-a-password: unknown account")
