"""Faults of the machine, not of the data: how the long-running parts ride them out.

A database that is restarting, locked or unreachable, a full disk, a dropped socket are
*transient*: the part that met one logs one line, waits (`pause_after`: 0.5 s, 1, 2, 4 …
at most 10 s, jittered, back to the start after a success) and tries again. Anything else
raised while rendering is a fault of the data (a template error, a reader's bad field) and
fails only what it concerns.

`describe` is what goes into a log line or /healthz: the exception's type and the first
line of the driver's message, never the SQL or its parameters (they may hold readers'
addresses).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import timedelta

from jinja2 import TemplateError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from dispatch.deliver.retry import backoff

PAUSE_BASE = timedelta(seconds=0.5)
PAUSE_CAP = timedelta(seconds=10)
MAX_DESCRIPTION = 200

_rng = random.Random()


def is_transient(exc: BaseException) -> bool:
    """A fault of the database, the disk or the network: worth trying again later."""
    if isinstance(exc, TemplateError):  # TemplateNotFound is an IOError too
        return False
    return isinstance(exc, SQLAlchemyError | OSError | MemoryError)


def describe(exc: BaseException) -> str:
    """One line, at most MAX_DESCRIPTION characters: `Type: first line of the message`."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig  # the driver's own words, without SQLAlchemy's [SQL: …] [parameters: …]
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def pause_after(failures: int) -> float:
    """Seconds to wait after the `failures`-th fault in a row."""
    return backoff(failures, _rng, PAUSE_BASE, PAUSE_CAP).total_seconds()


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
