"""The per-reader words of a digest. Pure."""

from __future__ import annotations


def greeting(name: str, position: str = "") -> str:
    """尊敬的 + 姓名 + 职务, as a letter to a leader opens (no escaping here)."""
    return f"尊敬的{name}{position}："
