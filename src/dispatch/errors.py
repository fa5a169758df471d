"""Refusals: input or state the user must fix. The CLI turns them into exit code 1."""

from __future__ import annotations


class Refused(Exception):
    """The input or the state was refused; the message says what and where."""


def _refusals() -> tuple[type[Exception], ...]:
    # Every exception that means "your input or state was refused"; each carries a
    # message naming what and where. Imported late: those modules import this one.
    from dispatch.industries import UnknownIndustry
    from dispatch.ingest.document import IngestError
    from dispatch.tagging.rules import RulesError

    return (Refused, IngestError, UnknownIndustry, RulesError)


REFUSALS = _refusals()
