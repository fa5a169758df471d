"""The words staff read for the states and channels the code names in English."""

from __future__ import annotations

from dispatch.statewords import DELIVERY_WORDS, ISSUE_WORDS

__all__ = ["DELIVERY_WORDS", "ISSUE_WORDS", "channel_word"]


def channel_word(channel: str) -> str:
    """邮件 for email, as the reader lists write it; a channel they don't know as named."""
    from dispatch.readers import channel_words

    return channel_words((channel,)) or channel
