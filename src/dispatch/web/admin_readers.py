"""The staff web's readers pages (to come)."""

from __future__ import annotations

from starlette.routing import Route

from dispatch.web.desk import Desk


def routes(desk: Desk) -> list[Route]:
    return []
