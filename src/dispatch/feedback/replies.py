"""A reader's reply without the quoted original: the words they wrote.

(First cut: the whole text part. The splitter for Chinese and Western clients replaces it.)
"""

from __future__ import annotations

from email.message import EmailMessage


def reply_text(message: EmailMessage) -> str:
    """The reply's own text, quoted original and signature separators cut off."""
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    content = part.get_content()
    return content.strip() if isinstance(content, str) else ""
