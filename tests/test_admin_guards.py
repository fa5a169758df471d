"""Every /admin route's guards (issue 12, point 6), read off the app's route table, so a
page added later is covered without a line here: no session, no form token (or another
session's, or a cross-site post), an editor on an admin page. Each refusal changes
nothing: every table's rows are compared before and after.

A path's parameters are filled in: {x:int} with 1 (an id that exists: the sample issue,
the first account), {x:path} and {x} with a made-up name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from admin_site import PASSWORD, Site, admin_site, form_token
from sqlalchemy import select
from starlette.routing import Route

from dispatch.db.models import Base
from dispatch.web.desk import ROLE_RANK, Guarded

UNGUARDED = {"/admin/login", "/admin/static/{name}"}  # the sign-in form, our script
PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
EVIL = "https://evil.example"

Snapshot = dict[str, list[tuple[object, ...]]]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    # One site for the module: every test here checks that nothing changes.
    from dispatch.db.session import make_engine, migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('guards') / 'dispatch.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    with admin_site(url) as served:
        yield served


def concrete(path: str) -> str:
    return PARAM.sub(lambda m: "1" if m.group(2) == "int" else "anything", path)


def admin_routes(site: Site) -> list[Route]:
    return [r for r in site.routes if r.path.startswith("/admin") and r.path not in UNGUARDED]


def posts(site: Site) -> list[str]:
    return [concrete(r.path) for r in admin_routes(site) if "POST" in (r.methods or ())]


def snapshot(site: Site) -> Snapshot:
    """Every row of every table."""
    with site.runtime.sessions() as s:
        return {t.name: sorted((tuple(row) for row in s.execute(select(t))), key=repr)
                for t in Base.metadata.sorted_tables}


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    return [name for name in before if before[name] != after[name]]


def test_every_admin_route_goes_through_the_guards(site: Site) -> None:
    routes = admin_routes(site)
    unguarded = [(r.path, r.methods) for r in routes if not isinstance(r, Guarded)]
    assert unguarded == [], "add /admin routes with desk.view or desk.action"
    assert all(r.role in ROLE_RANK for r in routes if isinstance(r, Guarded))
    paths = {r.path for r in routes}
    assert paths >= {"/admin", "/admin/logout", "/admin/staff", "/admin/staff/{id:int}",
                     "/admin/account", "/admin/account/password", "/admin/{rest:path}"}


def test_every_admin_route_refuses_without_a_session(site: Site) -> None:
    before = snapshot(site)
    wrong = []
    for route in admin_routes(site):
        path = concrete(route.path)
        for method in sorted(route.methods or ()):
            if method == "GET":
                answer = site.get(path)
                expected = f"/admin/login?next={quote(path, safe='')}"
                if answer.status != 303 or answer.headers.get("location") != expected:
                    wrong.append(f"GET {path}: {answer.status} {answer.headers.get('location')}")
            elif method == "POST":
                answer = site.post(path, {"csrf": "1.forged"})
                if answer.status != 403:
                    wrong.append(f"POST {path}: {answer.status}")
    assert wrong == []
    assert changed(before, snapshot(site)) == []


def test_every_post_refuses_a_missing_foreign_or_cross_site_token(site: Site) -> None:
    admin, other = site.signed_in("zhang"), site.signed_in("li")
    token, other_token = site.token(admin), site.token(other)
    wrong = []
    for path in posts(site):
        before = snapshot(site)
        tries = {
            "no token": site.post(path, {}, admin),
            "forged": site.post(path, {"csrf": "1.forged"}, admin),
            "another session's": site.post(path, {"csrf": other_token}, admin),
            "cross-site": site.post(path, {"csrf": token}, admin, Origin=EVIL),
            "cross-site, by Sec-Fetch-Site": site.post(path, {"csrf": token}, admin,
                                                       **{"Sec-Fetch-Site": "cross-site"}),
        }
        wrong += [f"POST {path} ({kind}): {a.status}" for kind, a in tries.items()
                  if a.status != 403]
        wrong += [f"POST {path} changed {t}" for t in changed(before, snapshot(site))]
    assert wrong == []
    assert site.get("/admin", admin).status == 200  # the session lived through it all


def test_an_editor_is_refused_every_admin_page(site: Site) -> None:
    editor = site.signed_in("li")
    token = site.token(editor)
    admin_only = [r for r in admin_routes(site) if isinstance(r, Guarded) and r.role == "admin"]
    assert {r.path for r in admin_only} >= {"/admin/staff", "/admin/staff/new",
                                            "/admin/staff/{id:int}/active"}
    before = snapshot(site)
    wrong = []
    for route in admin_only:
        path = concrete(route.path)
        answer = (site.get(path, editor) if "GET" in (route.methods or ())
                  else site.post(path, {"csrf": token, "active": "0", "role": "editor"}, editor))
        if answer.status != 403 or "只有管理员" not in answer.text:
            wrong.append(f"{sorted(route.methods or ())} {path}: {answer.status}")
    assert wrong == []
    assert changed(before, snapshot(site)) == []
    assert "工作人员" not in site.get("/admin", editor).text.split("<main")[0]  # no menu item


def test_post_without_a_form_token_changes_nothing(site: Site) -> None:
    cookie = site.signed_in("zhang")
    epoch = site.staff("zhang").session_epoch
    assert site.post("/admin/logout", {}, cookie).status == 403
    assert site.post("/admin/logout", {"csrf": "1.forged"}, cookie).status == 403
    other = site.signed_in("li")  # a token of another session is no good either
    other_token = form_token(site.get("/admin", other).text)
    assert site.post("/admin/logout", {"csrf": other_token}, cookie).status == 403
    token = form_token(site.get("/admin", cookie).text)
    cross = site.post("/admin/logout", {"csrf": token}, cookie, Origin=EVIL)
    assert cross.status == 403
    assert site.staff("zhang").session_epoch == epoch
    assert site.get("/admin", cookie).status == 200
    # The sign-in form wants its own token too, bound to its page's own cookie: a token
    # another browser was given (another site's hidden form signing someone in as the
    # attacker) is refused, and so is the right one without its cookie.
    assert site.post("/admin/login", {"name": "zhang", "password": PASSWORD}).status == 403
    mine, theirs = site.get("/admin/login"), site.get("/admin/login")
    my_cookie = mine.headers["set-cookie"].split(";")[0]
    assert my_cookie.startswith("dispatch_login=") and my_cookie != theirs.headers["set-cookie"].split(";")[0]
    for attr in ("HttpOnly", "SameSite=strict", "Path=/admin/login"):
        assert attr.lower() in mine.headers["set-cookie"].lower()
    fields = {"name": "zhang", "password": PASSWORD, "next": "/admin"}
    assert site.post("/admin/login", {**fields, "csrf": form_token(theirs.text)},
                     Cookie=my_cookie).status == 403
    assert site.post("/admin/login", {**fields, "csrf": form_token(mine.text)}).status == 403
    assert site.post("/admin/login", {**fields, "csrf": form_token(mine.text)},
                     Cookie=my_cookie).status == 303
