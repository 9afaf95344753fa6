"""Ticket states of the documented triage workflow (product.md, steps 3 to 8)."""

from __future__ import annotations

from enum import StrEnum


class TicketState(StrEnum):
    OPEN = "open"  # waiting for operator triage
    ASSIGNED = "assigned"  # a team owns it
    IN_PROGRESS = "in_progress"  # a member works on it
    RESOLVED = "resolved"  # fixed, waiting for verification
    IN_QA = "in_qa"  # QA tests the fix
    CLOSED = "closed"  # done; the customer has been told

    @property
    def label(self) -> str:
        return _LABELS.get(self.value) or self.value.replace("_", " ").capitalize()


_LABELS = {"in_qa": "In QA"}


ACTIVE_STATES = frozenset({TicketState.OPEN, TicketState.ASSIGNED, TicketState.IN_PROGRESS})


def initial_state(team: str | None) -> TicketState:
    """A ticket routed straight to a team skips operator triage."""
    return TicketState.ASSIGNED if team else TicketState.OPEN
