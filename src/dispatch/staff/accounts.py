"""Staff accounts: add, list, change role or password, disable and enable; every change
kept in staff_changes with who made it (`by`: a staff member's id; None for the CLI on the
server) and when, and read back as `history`. Refusals are Chinese and name the field.

The staff web may not leave the service without an active admin (an admin disabling or
demoting themselves as the last one): nobody could manage accounts in the web then. The
CLI may, as it runs on the server, where `dispatch staff` can always make another admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from dispatch.clock import utcnow
from dispatch.db.models import STAFF_ROLES, Staff, StaffChange
from dispatch.errors import Refused
from dispatch.staff import passwords

ROLE_WORDS = {"editor": "编辑", "admin": "管理员"}
MAX_NAME = 100


@dataclass(frozen=True)
class Row:
    """An account as `staff list` and /admin/staff show it."""

    id: int
    name: str
    display_name: str
    role: str
    active: bool
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class Change:
    """One line of an account's change log, as staff read it (never a password)."""

    at: datetime
    by: str  # who made it: a display name, or the server's command line
    what: str


def _log(session: Session, staff: Staff, field: str, old: str | None, new: str | None,
         by: int | None) -> None:
    session.add(StaffChange(staff_id=staff.id, by_staff_id=by, field=field, old=old, new=new,
                            at=utcnow()))


def find(session: Session, name: str) -> Staff:
    staff = session.scalar(select(Staff).where(Staff.name == name))
    if staff is None:
        raise Refused(f"账号：没有名为“{name}”的账号")
    return staff


def get(session: Session, staff_id: int) -> Staff | None:
    return session.get(Staff, staff_id)


def _keep_an_admin(session: Session, staff: Staff, by: int | None, disabling: bool) -> None:
    """Refuse a change from the web (`by` set) that leaves no active admin: `staff`, an
    active admin, about to be disabled (or else demoted)."""
    if by is None or staff.role != "admin" or not staff.active:
        return
    others = session.scalar(select(func.count()).select_from(Staff).where(
        Staff.role == "admin", Staff.active, Staff.id != staff.id))
    if others:
        return
    whom = "自己" if by == staff.id else "这个账号"
    doing = f"停用{whom}" if disabling else f"把{whom}改为编辑"
    raise Refused(f"不能{doing}：这是唯一启用的管理员账号，之后就没有人能在网页上管理账号了。"
                  "请先让另一个账号成为管理员。")


def add(session: Session, name: str, password: str, role: str = "editor",
        display_name: str | None = None, by: int | None = None) -> Staff:
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(c.isspace() for c in name):
        raise Refused(f"账号名：不能为空、不能含空格，最多 {MAX_NAME} 个字符")
    if role not in STAFF_ROLES:
        raise Refused("角色：只能是 editor（编辑）或 admin（管理员）")
    shown = (display_name or name).strip()
    if not shown or len(shown) > MAX_NAME:
        raise Refused(f"显示名：不能为空，最多 {MAX_NAME} 个字符")
    if session.scalar(select(Staff.id).where(Staff.name == name)) is not None:
        raise Refused(f"账号名：“{name}”已经有了")
    staff = Staff(name=name, display_name=shown, role=role, active=True,
                  password_hash=passwords.hash_password(password), failed_logins=0,
                  session_epoch=0, created_at=utcnow())
    session.add(staff)
    session.flush()
    _log(session, staff, "created", None, role, by)
    return staff


def set_role(session: Session, name: str, role: str, by: int | None = None) -> bool:
    """Make the account an editor or an admin; False when it already was (nothing logged).
    Its sessions go on: every request reads the role afresh."""
    if role not in STAFF_ROLES:
        raise Refused("角色：只能是 editor（编辑）或 admin（管理员）")
    staff = find(session, name)
    if staff.role == role:
        return False
    if role != "admin":
        _keep_an_admin(session, staff, by, disabling=False)
    _log(session, staff, "role", staff.role, role, by)
    staff.role = role
    return True


def set_password(session: Session, name: str, password: str, by: int | None = None) -> None:
    staff = find(session, name)
    staff.password_hash = passwords.hash_password(password)
    staff.session_epoch += 1  # a changed password ends every session
    _log(session, staff, "password", None, None, by)


def change_own_password(session: Session, staff_id: int, new: str, again: str) -> int:
    """A staff member's own new password (typed twice), once the caller has confirmed the
    old one (throttle.sign_in with signing_in=False: guesses are counted like sign-ins);
    every session of the account ends. Returns the account's new session epoch, for the
    one session that goes on."""
    staff = session.get(Staff, staff_id)
    if staff is None:
        raise Refused("账号：不存在")
    passwords.check_pair(new, again)
    set_password(session, staff.name, new, by=staff.id)
    return staff.session_epoch


def set_active(session: Session, name: str, active: bool, by: int | None = None) -> bool:
    """Disable or enable; False when it already was so (nothing logged)."""
    staff = find(session, name)
    if staff.active == active:
        return False
    if not active:
        _keep_an_admin(session, staff, by, disabling=True)
    staff.active = active
    if not active:
        staff.session_epoch += 1  # a disabled account's sessions end now
    _log(session, staff, "active", str(not active).lower(), str(active).lower(), by)
    return True


def rows(session: Session) -> list[Row]:
    return [
        Row(s.id, s.name, s.display_name, s.role, s.active, s.created_at, s.last_login_at)
        for s in session.scalars(select(Staff).order_by(Staff.name))
    ]


def describe(field: str, old: str | None, new: str | None) -> str:
    """A change as staff read it (a password's change says only that it changed)."""
    if field == "created":
        return f"创建账号，角色：{ROLE_WORDS.get(new or '', new)}"
    if field == "role":
        return f"角色：{ROLE_WORDS.get(old or '', old)} → {ROLE_WORDS.get(new or '', new)}"
    if field == "active":
        return "启用账号" if new == "true" else "停用账号"
    if field == "password":
        return "设置了新密码"
    return f"{field}：{old or ''} → {new or ''}"


def history(session: Session, staff_id: int) -> list[Change]:
    """The account's changes, newest first, with who made each."""
    by = aliased(Staff)
    found = session.execute(
        select(StaffChange, by.display_name)
        .outerjoin(by, by.id == StaffChange.by_staff_id)
        .where(StaffChange.staff_id == staff_id)
        .order_by(StaffChange.at.desc(), StaffChange.id.desc())
    )
    return [
        Change(change.at, shown if shown is not None else "服务器命令行",
               describe(change.field, change.old, change.new))
        for change, shown in found
    ]
