"""The words staff read for the issue and delivery states, and for who changed a reader,
which the code names in English.

A leaf (it imports nothing): refusals in `lifecycle` and `editorial` name a state, and the
CLI's tables do too, from this one place.
"""

from __future__ import annotations

ISSUE_WORDS = {"draft": "草稿", "finalized": "已定稿", "sending": "发送中", "sent": "已发送"}
DELIVERY_WORDS = {
    "queued": "排队", "sending": "发送中", "sent": "已发送", "retry": "待重试",
    "failed": "失败", "cancelled": "已取消",
}
# Who changed a reader (reader_changes.source).
CHANGE_SOURCE_WORDS = {
    "page": "网页", "one-click": "一键退订", "mail": "邮件", "staff": "工作人员",
    "import": "导入", "bounce": "退信", "wecom": "企业微信",
}
