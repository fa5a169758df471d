"""Who opened an issue: the one place for the rule that turns events into opens.

A delivery is *opened by a human* when any of its events (an open, a click, a web read)
is not a machine's (dispatch.track.machines): a click or a page read confirms an open
even when the pixel was blocked or fetched by a proxy. It is *machine only* when it has
events and all of them are machines'. docs/tracking.md says the same to staff.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from dispatch.db.models import Event

HUMAN = "human"
MACHINE_ONLY = "machine"


@dataclass(frozen=True)
class Opens:
    human: int  # deliveries opened by a person
    machine_only: int  # deliveries with events, all of them machines'


def open_states(session: Session, issue_id: int) -> dict[int, str]:
    """delivery id → HUMAN or MACHINE_ONLY, for each delivery of the issue with events."""
    # min(machine) over a delivery's events is 0 (false) as soon as one is a person's.
    rows = session.execute(
        select(Event.delivery_id, func.min(cast(Event.machine, Integer)))
        .where(Event.issue_id == issue_id)
        .group_by(Event.delivery_id)
    ).all()
    return {delivery_id: MACHINE_ONLY if all_machine else HUMAN for delivery_id, all_machine in rows}


def count_opens(session: Session, issue_id: int) -> Opens:
    states = list(open_states(session, issue_id).values())
    return Opens(human=states.count(HUMAN), machine_only=states.count(MACHINE_ONLY))
