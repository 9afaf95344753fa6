"""What one event does to a ticket, as data: every source of change (an alert notification, a click, a change
made in Jira, a report, /triage new, an escalation reminder) has a pure planner that returns a ``Plan``, and
``bot`` only applies it, in one transaction with the event's job.
"""

from __future__ import annotations

from dataclasses import dataclass

from workflows.effects import CARD, Effect, EffectKind
from workflows.states import TicketState


@dataclass(frozen=True)
class Entry:
    """A line of the ticket's history: who, through which channel, what."""

    actor: str
    via: str  # monitoring, slack, jira, app, escalation
    note: str
    to: TicketState | None = None  # a move to this state (recorded with the state it left)


@dataclass(frozen=True)
class Plan:
    """The ticket's history entries (a move among them changes its workflow state) and the effects on the
    outside world. ``team``/``assignee`` are set when ``set_team``/``set_assignee`` say so (None is a value:
    nobody). ``show_in`` are channels where the card must have a copy;
    ``tell`` is a word for the person who acted alone (a refusal); ``in_jira`` says the change came from Jira,
    which already shows it.
    """

    history: tuple[Entry, ...] = ()
    effects: tuple[Effect, ...] = ()
    set_team: bool = False
    team: str | None = None
    set_assignee: bool = False
    assignee: str | None = None
    assignee_name: str | None = None  # set with the assignee: their name as Jira gave it (Slack's need none)
    show_in: tuple[str, ...] = ()
    tell: str | None = None
    in_jira: bool = False

    @property
    def to(self) -> TicketState | None:
        """The state the ticket ends in, if the plan moves it."""
        moves = [entry.to for entry in self.history if entry.to is not None]
        return moves[-1] if moves else None

    @property
    def changes_ticket(self) -> bool:
        return bool(self.history or self.set_team or self.set_assignee)


NOTHING = Plan()


def refusal(words: str) -> Plan:
    """Nothing changes; the person who acted hears why (our own mrkdwn: outside words escaped by the caller)."""
    return Plan(tell=words)


@dataclass(frozen=True)
class Opening:
    """A new ticket: the state it starts in, its team and the channel of its card, and the plan that records
    and announces it (its first history entry moves it into ``state``)."""

    state: TicketState
    team: str | None
    channel: str
    plan: Plan


def opening_effects() -> tuple[Effect, ...]:
    """What every new ticket asks of the world: its Jira issue and its card, each in its own lane, neither
    waiting for the other (the card says the issue is not there yet, and is edited when it is)."""
    return (Effect(EffectKind.JIRA_CREATE), CARD)
