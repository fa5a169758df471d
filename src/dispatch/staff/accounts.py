"""Staff accounts: add, list, change password, disable and enable; every change kept in
staff_changes with who and when. Refusals are Chinese and name the field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

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


def _log(session: Session, staff: Staff, field: str, old: str | None, new: str | None,
         by: int | None) -> None:
    session.add(StaffChange(staff_id=staff.id, by_staff_id=by, field=field, old=old, new=new,
                            at=utcnow()))


def find(session: Session, name: str) -> Staff:
    staff = session.scalar(select(Staff).where(Staff.name == name))
    if staff is None:
        raise Refused(f"账号：没有名为“{name}”的账号")
    return staff


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


def set_password(session: Session, name: str, password: str, by: int | None = None) -> None:
    staff = find(session, name)
    staff.password_hash = passwords.hash_password(password)
    staff.session_epoch += 1  # a changed password ends every session
    _log(session, staff, "password", None, None, by)


def set_active(session: Session, name: str, active: bool, by: int | None = None) -> bool:
    """Disable or enable; False when it already was so (nothing logged)."""
    staff = find(session, name)
    if staff.active == active:
        return False
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
