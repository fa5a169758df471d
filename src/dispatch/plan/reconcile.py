"""The scheduler's one job: claim the finalized issues that are due and fan them out.

Whether an issue is due, claimed or sent lives in our tables (never in APScheduler's),
so restarts, downtime and several processes are harmless: the claim is one UPDATE …
RETURNING, and planning inserts with ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from dispatch import clock
from dispatch.db.session import transaction
from dispatch.plan.due import claim_due, finish_done, overdue
from dispatch.plan.outbox import plan_issue

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
    # Claim and plan in one transaction: a crash between the two must not leave an
    # issue 'sending' with an empty outbox (it would be closed as sent).
    with transaction(sessions) as session:
        for issue_id in claim_due(session, now, max_lateness):
            out.planned[issue_id] = plan_issue(session, issue_id, now=now)
    with transaction(sessions) as session:
        out.overdue = [i.id for i in overdue(session, now, max_lateness)]
        out.finished = finish_done(session)
    return out
