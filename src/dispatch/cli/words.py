"""The words staff read for the states and channels the code names in English."""

from __future__ import annotations

ISSUE_WORDS = {"draft": "草稿", "finalized": "已定稿", "sending": "发送中", "sent": "已发送"}
DELIVERY_WORDS = {
    "queued": "排队", "sending": "发送中", "sent": "已发送", "retry": "待重试",
    "failed": "失败", "cancelled": "已取消",
}


def channel_word(channel: str) -> str:
    """邮件 for email, as the reader lists write it; a channel they don't know as named."""
    from dispatch.readers import channel_words

    return channel_words((channel,)) or channel
