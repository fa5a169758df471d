"""WeChat Work's errcodes: what each means for a call's deliveries, in the log's words and
in staff's. The one table: the channel judges by it (deliver/wecom.py), `dispatch status`
words a stored reason with it (deliver/report.py), `dispatch doctor` explains a failed
token with it. Imports nothing, so `dispatch status` need not load wechatpy.

Meanings from WeChat Work's 全局错误码 (developer.work.weixin.qq.com/document/path/90313).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Judgement = Literal["permanent", "temporary", "setup"]  # setup: temporary + ERROR log


class Meaning(NamedTuple):
    judgement: Judgement
    en: str  # for logs and the stored reason
    zh: str  # for staff


ERRCODES: dict[int, Meaning] = {
    81013: Meaning("permanent", "user, department and tag all invalid or not permitted",
                   "接收人全部无效或无权限"),
    -1: Meaning("temporary", "system busy", "企业微信系统繁忙"),
    45009: Meaning("temporary", "API call frequency over the limit", "接口调用超过频率限制"),
    45033: Meaning("temporary", "too many concurrent calls", "接口并发调用超过限制"),
    40014: Meaning("temporary", "access_token invalid, still after one refresh",
                   "访问令牌无效（刷新一次后仍无效）"),
    42001: Meaning("temporary", "access_token expired, still after one refresh",
                   "访问令牌过期（刷新一次后仍过期）"),
    40001: Meaning("setup", "wrong secret: set $DISPATCH_WECOM_SECRET to the agent's secret",
                   "应用密钥不对：请改正环境变量 $DISPATCH_WECOM_SECRET"),
    40013: Meaning("setup", "wrong corp id: check [wecom] corp_id",
                   "企业 ID 不对：请检查 [wecom] corp_id"),
    40056: Meaning("setup", "invalid agentid: check [wecom] agent_id",
                   "应用编号不对：请检查 [wecom] agent_id"),
    301002: Meaning("setup", "the secret is not this agent's: check [wecom] agent_id and $DISPATCH_WECOM_SECRET",
                    "密钥不是这个应用的：请核对 [wecom] agent_id 和 $DISPATCH_WECOM_SECRET"),
    60020: Meaning("setup", "this server's IP is not in the agent's trusted IPs (企业可信IP)",
                   "本机 IP 不在应用的“企业可信IP”里"),
    48002: Meaning("setup", "API not allowed for this agent: check its permissions",
                   "应用没有调用这个接口的权限"),
    60011: Meaning("setup", "no permission for the receivers: check the agent's visible range",
                   "应用对接收人没有权限：请检查应用的可见范围"),
    41001: Meaning("setup", "access_token missing", "缺少访问令牌"),
}
UNKNOWN = Meaning("temporary", "unknown errcode", "未知错误码")

# Reasons of single deliveries in an answer that was otherwise ok, or held back by the
# channel: as stored (English) → as staff read them.
INVALID_USER = "invaliduser: not a member, or outside the agent's visible range"
UNLICENSED_USER = "unlicenseduser: the member has no license for the API"
MEMBER_LIMIT = "member limit: 30 a minute, 1000 an hour (WeChat Work drops the excess)"
REASONS = {
    INVALID_USER: "企业微信账号无效：不是本企业成员，或不在应用的可见范围内",
    UNLICENSED_USER: "企业微信账号没有接口许可",
    MEMBER_LIMIT: "已达企业微信对单个成员的频率上限（每分钟 30 条、每小时 1000 条），稍后再发",
}


def meaning(errcode: int) -> Meaning:
    """What an errcode means (unknown codes: temporary)."""
    return ERRCODES.get(errcode, UNKNOWN)
