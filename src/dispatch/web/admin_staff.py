"""Staff accounts in the staff web: admins manage every account; anyone changes their own
password.

    GET  /admin/staff                   the accounts (admins)
    GET  /admin/staff/new               the form for a new account (admins)
    POST /admin/staff/new               add it (admins)
    GET  /admin/staff/{id}              one account: role, new password, disable or enable,
                                        and its change log (admins)
    POST /admin/staff/{id}/role         editor or admin (admins)
    POST /admin/staff/{id}/password     set a new password: its sessions end (admins)
    POST /admin/staff/{id}/active       disable or enable (admins)
    GET  /admin/account                 my account and my change log (everyone)
    POST /admin/account/password        my new password, the old one required: my other
                                        sessions end, this one goes on with a new cookie

Every change goes through dispatch.staff.accounts with by= the signed-in staff member, so
staff_changes keeps who and when. A refusal (a short or mistyped password, a name already
taken, the last active admin disabling or demoting themselves) shows the page again with
the reason and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatch.db.session import transaction
from dispatch.errors import Refused
from dispatch.staff import accounts, passwords, sessions, throttle
from dispatch.web.desk import Desk, Posted, Signed

log = logging.getLogger(__name__)

# What the page says after a change went through (?done=… on the redirect: PRG).
DONE = {
    "created": "账号已添加。",
    "role": "角色已更改。",
    "role-same": "角色本来就是这样，没有改动。",
    "password": "新密码已设置，这个账号已登录的网页都已退出。",
    "disabled": "账号已停用，它已登录的网页都已退出。",
    "enabled": "账号已启用。",
    "mine": "您的新密码已设置，您在其他地方登录的网页都已退出。",
}
NO_ROLE = "角色：请选择编辑或管理员"

# One change to an account, given its name and the transaction's session: says what was
# done (a key of DONE), or raises Refused.
_Apply = Callable[[str, Session], str]


def routes(desk: Desk) -> list[Route]:
    return StaffPages(desk).routes()


class StaffPages:
    def __init__(self, desk: Desk):
        self.desk = desk

    def routes(self) -> list[Route]:
        desk = self.desk
        return [
            desk.view("/admin/staff", self.list_page, role="admin"),
            desk.view("/admin/staff/new", self.new_page, role="admin"),
            desk.action("/admin/staff/new", self.add, role="admin"),
            desk.view("/admin/staff/{id:int}", self.account_page, role="admin"),
            desk.action("/admin/staff/{id:int}/role", self.set_role, role="admin"),
            desk.action("/admin/staff/{id:int}/password", self.set_password, role="admin"),
            desk.action("/admin/staff/{id:int}/active", self.set_active, role="admin"),
            desk.view("/admin/account", self.own_page),
            desk.action("/admin/account/password", self.own_password),
        ]

    # -- the list and a new account -----------------------------------------------------

    def list_page(self, request: Request, who: Signed) -> Response:
        with self.desk.runtime.sessions() as session:
            rows = accounts.rows(session)
        return self.desk.page("admin_staff.html.j2", who, rows=rows, roles=accounts.ROLE_WORDS)

    def new_page(self, request: Request, who: Signed, values: dict[str, str] | None = None,
                 message: str = "") -> Response:
        return self.desk.page(
            "admin_staff_new.html.j2", who, roles=accounts.ROLE_WORDS,
            values=values or {"name": "", "display_name": "", "role": "editor"},
            message=message, min_length=passwords.MIN_LENGTH)

    def add(self, request: Request, who: Signed, posted: Posted) -> Response:
        values = {"name": posted.get("name").strip(),
                  "display_name": posted.get("display_name").strip(),
                  "role": posted.get("role")}
        if values["role"] not in accounts.ROLE_WORDS:
            return self.new_page(request, who, values, NO_ROLE)
        try:
            with transaction(self.desk.runtime.sessions) as session:
                passwords.check_pair(posted.get("password"), posted.get("password2"))
                staff = accounts.add(session, values["name"], posted.get("password"),
                                     values["role"], values["display_name"] or None, by=who.id)
                new_id = staff.id
        except Refused as refused:
            return self.new_page(request, who, values, str(refused))
        log.info("staff %d added staff account %d", who.id, new_id)
        return self.desk.redirect(f"/admin/staff/{new_id}?done=created")

    # -- one account ------------------------------------------------------------------------

    def account_page(self, request: Request, who: Signed, message: str = "") -> Response:
        staff_id = request.path_params["id"]
        with self.desk.runtime.sessions() as session:
            staff = accounts.get(session, staff_id)
            if staff is None:
                return self.desk.refused(404, "没有这个账号。", who)
            row = accounts.Row(staff.id, staff.name, staff.display_name, staff.role,
                               staff.active, staff.created_at, staff.last_login_at)
            changes = accounts.history(session, staff_id)
        done = "" if message else DONE.get(request.query_params.get("done", ""), "")
        return self.desk.page(
            "admin_staff_account.html.j2", who, account=row, changes=changes,
            roles=accounts.ROLE_WORDS, done=done, message=message,
            min_length=passwords.MIN_LENGTH)

    def _apply(self, request: Request, who: Signed, apply: _Apply) -> Response:
        """Run one change to the account of the path; its page again with the reason if
        it is refused (nothing written), else back to it with what was done."""
        staff_id = request.path_params["id"]
        try:
            with transaction(self.desk.runtime.sessions) as session:
                staff = accounts.get(session, staff_id)
                if staff is None:
                    return self.desk.refused(404, "没有这个账号。", who)
                done = apply(staff.name, session)
        except Refused as refused:
            return self.account_page(request, who, message=str(refused))
        log.info("staff %d changed staff account %d: %s", who.id, staff_id, done)
        return self.desk.redirect(f"/admin/staff/{staff_id}?done={done}")

    def set_role(self, request: Request, who: Signed, posted: Posted) -> Response:
        role = posted.get("role")
        if role not in accounts.ROLE_WORDS:
            return self.account_page(request, who, message=NO_ROLE)

        def apply(name: str, session: Session) -> str:
            return "role" if accounts.set_role(session, name, role, by=who.id) else "role-same"

        return self._apply(request, who, apply)

    def set_password(self, request: Request, who: Signed, posted: Posted) -> Response:
        def apply(name: str, session: Session) -> str:
            passwords.check_pair(posted.get("password"), posted.get("password2"))
            accounts.set_password(session, name, posted.get("password"), by=who.id)
            return "password"

        return self._apply(request, who, apply)

    def set_active(self, request: Request, who: Signed, posted: Posted) -> Response:
        active = posted.get("active") == "1"

        def apply(name: str, session: Session) -> str:
            accounts.set_active(session, name, active, by=who.id)
            return "enabled" if active else "disabled"

        return self._apply(request, who, apply)

    # -- my own account -------------------------------------------------------------------

    def own_page(self, request: Request, who: Signed, message: str = "",
                 status: int = 200) -> Response:
        with self.desk.runtime.sessions() as session:
            changes = accounts.history(session, who.id)
        done = "" if message else DONE.get(request.query_params.get("done", ""), "")
        return self.desk.page("admin_account.html.j2", who, status, changes=changes,
                              role=accounts.ROLE_WORDS.get(who.role, who.role), done=done,
                              message=message, min_length=passwords.MIN_LENGTH)

    def own_password(self, request: Request, who: Signed, posted: Posted) -> Response:
        address = request.client.host if request.client else ""
        # The old password is checked behind the sign-in throttle, in a transaction of its
        # own: a wrong guess is counted even though nothing else is written.
        with transaction(self.desk.runtime.sessions) as session:
            outcome = throttle.sign_in(session, who.name, posted.get("old_password"), address,
                                       self.desk.clock(), signing_in=False)
        if outcome.wait_minutes:
            return self.own_page(request, who, status=429, message=(
                f"原密码输错次数过多，请 {outcome.wait_minutes} 分钟后再试。"))
        if outcome.staff is None:
            return self.own_page(request, who, message="原密码：不对，密码没有改动")
        try:
            with transaction(self.desk.runtime.sessions) as session:
                epoch = accounts.change_own_password(
                    session, who.id, posted.get("password"), posted.get("password2"))
        except Refused as refused:
            return self.own_page(request, who, message=str(refused))
        log.info("staff %d changed their password", who.id)
        # The epoch went up, so every cookie of the account is void, this one too: the
        # browser that changed it gets a new one and stays signed in.
        response = self.desk.redirect("/admin/account?done=mine")
        cookie = sessions.issue(self.desk.runtime.signing_key, who.id, epoch, self.desk.clock())
        self.desk.set_cookie(response, cookie, sessions.MAX_AGE)
        return response
