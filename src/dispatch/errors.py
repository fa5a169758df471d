"""Refusals: input or state the user must fix. The CLI turns each into one line and exit 1.

A leaf: it imports nothing of the project, so any module may raise or catch a refusal
without loading the others. Every refusal a user can cause is a `Refused` (or a subclass
that also carries where: IngestError, RulesError, UnknownIndustry …); it carries a message
naming what and where.
"""

from __future__ import annotations

import errno


class Refused(Exception):
    """The input or the state was refused; the message says what and where."""


# Why the system refused a file, a folder or a port, in Chinese: its own words (strerror)
# are English. The message around it says what was being done (读取, 写入, 监听 …).
_OS_REASONS = {
    errno.EACCES: "没有权限",
    errno.EPERM: "没有权限",
    errno.ENOENT: "文件或所在的文件夹不存在",
    errno.ENOTDIR: "路径中有一段不是文件夹",
    errno.EISDIR: "这是一个文件夹",
    errno.ENOSPC: "磁盘已满",
    errno.EDQUOT: "超出磁盘配额",
    errno.EROFS: "磁盘是只读的",
    errno.ENAMETOOLONG: "名字过长",
    errno.ELOOP: "符号链接绕成了圈",
    errno.EMFILE: "打开的文件太多",
    errno.ENFILE: "打开的文件太多",
    errno.EIO: "磁盘读写出错",
    errno.EEXIST: "已经存在",
    errno.EADDRINUSE: "端口已被占用",
    errno.EADDRNOTAVAIL: "本机没有这个地址",
    errno.ECONNREFUSED: "对方拒绝连接",
    errno.ETIMEDOUT: "超时",
    errno.EHOSTUNREACH: "连不到对方主机",
    errno.ENETUNREACH: "网络不通",
}


def os_reason(exc: OSError) -> str:
    """The reason of an OSError in Chinese; its number when it is a rare one."""
    return _OS_REASONS.get(exc.errno or 0, f"系统错误，错误号 {exc.errno}")


class Hinted(Refused):
    """A refusal whose message ends in what to do at the command line; `reason` is what
    was refused without it (the staff web shows that, beside its own buttons)."""

    def __init__(self, reason: str, hint: str):
        self.reason = reason
        super().__init__(f"{reason}{hint}")
