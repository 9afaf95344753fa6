"""Escalation: a ticket left waiting in ``open`` or ``assigned`` reminds the people who should act, again
after each interval, up to a limit. Pure: the caller supplies the clock and the ticket's numbers."""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows.durations import format_duration
from workflows.effects import note
from workflows.plans import Entry, Plan
from workflows.policy import Audience, Policy
from workflows.states import TicketState

WAITING = frozenset({TicketState.OPEN, TicketState.ASSIGNED})


def due(
    state: TicketState,
    since: datetime,
    sent: int,
    last_sent: datetime | None,
    interval: timedelta | None,
    limit: int,
    now: datetime,
) -> bool:
    if interval is None or state not in WAITING or sent >= limit:
        return False
    return now - (last_sent or since) >= interval


def reminder(state: TicketState, waited: timedelta, number: int, limit: int) -> str:
    """The words of a reminder; the mentions are added by the card renderer from the policy's user ids."""
    task = "please triage it" if state is TicketState.OPEN else "please pick a member to work on it"
    return (
        f"this ticket has been {state.label.lower()} for {format_duration(waited)}: {task}. "
        f"(reminder {number} of {limit})"
    )


def audience_for(policy: Policy, state: TicketState, team: str | None) -> Audience:
    """Who should act on a waiting ticket: its team once assigned, the operators before."""
    if state is TicketState.ASSIGNED and team in policy.teams:
        return policy.teams[team]
    return policy.operators


def plan_reminder(
    policy: Policy, state: TicketState, team: str | None, waited: timedelta, number: int, limit: int
) -> Plan:
    """Reminder ``number``: a line in the thread of the card in the channel of the people it mentions."""
    audience = audience_for(policy, state, team)
    return Plan(
        history=(Entry("triage-bot", "escalation", f"reminder {number} sent"),),
        effects=(note(reminder(state, waited, number, limit), mention=audience.users, channel=audience.channel),),
    )
