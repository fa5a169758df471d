"""The scheduler's one job: claim the finalized issues that are due and fan them out.

Whether an issue is due, claimed or sent lives in our tables (never in APScheduler's),
so restarts, downtime and several processes are harmless: the claim is one UPDATE …
RETURNING, and planning inserts with ON CONFLICT DO NOTHING, chunk by chunk, and is
resumed by the next tick if a crash cut it short.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from dispatch import clock
from dispatch.db.session import transaction
from dispatch.lifecycle import claim_due, finish_done, overdue, unplanned
from dispatch.plan.fanout import fan_out

log = logging.getLogger(__name__)


@dataclass
class Reconciled:
    planned: dict[int, dict[str, int]] = field(default_factory=dict)  # issue → channel → rows
    overdue: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)


def reconcile(
    sessions: sessionmaker[Session], max_lateness: timedelta, now: datetime | None = None
) -> Reconciled:
    now = now or clock.utcnow()
    out = Reconciled()
    with transaction(sessions) as session:
        claimed = claim_due(session, now, max_lateness)
        # Claimed before and not planned to the end: a crash cut the fan-out short.
        resumed = [i for i in unplanned(session) if i not in claimed]
    for issue_id in resumed:
        log.warning("issue %s: its outbox is not fully planned (cut short, or planning elsewhere): planning what is missing", issue_id)
    for issue_id in [*claimed, *resumed]:
        out.planned[issue_id] = fan_out(sessions, issue_id, now=now)
    with transaction(sessions) as session:
        out.overdue = [i.id for i in overdue(session, now, max_lateness)]
        out.finished = finish_done(session)
    return out
