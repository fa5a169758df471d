"""Refusals: input or state the user must fix. The CLI turns each into one line and exit 1.

A leaf: it imports nothing of the project, so any module may raise or catch a refusal
without loading the others. Every refusal a user can cause is a `Refused` (or a subclass
that also carries where: IngestError, RulesError, UnknownIndustry …); it carries a message
naming what and where.
"""

from __future__ import annotations


class Refused(Exception):
    """The input or the state was refused; the message says what and where."""
