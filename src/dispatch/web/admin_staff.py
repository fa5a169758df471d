"""The staff accounts, admins only: /admin/staff."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatch.staff import accounts
from dispatch.web.desk import Desk, Signed


def routes(desk: Desk) -> list[Route]:
    def staff_list(request: Request, who: Signed) -> Response:
        with desk.runtime.sessions() as session:
            rows = [
                {"name": r.name, "display_name": r.display_name,
                 "role": accounts.ROLE_WORDS[r.role], "active": "启用" if r.active else "停用",
                 "last_login": r.last_login_at}
                for r in accounts.rows(session)
            ]
        return desk.page("admin_staff.html.j2", who, rows=rows)

    return [desk.view("/admin/staff", staff_list, role="admin")]
