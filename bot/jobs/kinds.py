"""Every kind of job, and the lanes they run in.

A lane runs one job at a time, in the order the jobs were queued. A ticket has one lane per outside system
(``jira:7``, ``slack:7``, ``mail:7``): order is kept within a system, and no system waits for another.
Decisions have lanes of their own: notifications of one alert group (``group:...``), a ticket's clicks
(``click:7``) and the changes people make in Jira (``jira-in:7``) are each applied one at a time, and never
behind a call to an outside system.
"""

from __future__ import annotations

import secrets
from enum import StrEnum

from workflows.effects import EffectKind, System


class JobKind(StrEnum):
    # Decisions: read what came in, change the ticket, queue effects (one transaction each).
    ALERT_PROCESS = "alert.process"  # one stored alert notification
    SLACK_ACTION = "slack.action"  # one click or form submission
    JIRA_EVENT = "jira.event"  # one change someone made in Jira
    TICKET_NEW = "ticket.new"  # a ticket opened by hand with /triage new
    # Effects: carry a ticket to an outside system (see workflows.effects).
    JIRA_CREATE = EffectKind.JIRA_CREATE.value
    JIRA_SYNC = EffectKind.JIRA_SYNC.value
    JIRA_COMMENT = EffectKind.JIRA_COMMENT.value
    JIRA_ATTACH = EffectKind.JIRA_ATTACH.value
    SLACK_CARD = EffectKind.SLACK_CARD.value
    SLACK_NOTE = EffectKind.SLACK_NOTE.value
    MAIL_SEND = EffectKind.MAIL_SEND.value
    SLACK_EPHEMERAL = "slack.ephemeral"  # a word to one person about their click (a lane of its own each)


# Kinds whose failure for good holds their lane: what comes after them depends on them (a comment needs the
# issue its create makes, a thread note the card; notifications of a group build on each other). Any other kind
# that fails for good is kept as refused: shown by `triage-bot jobs`, retryable, but the jobs after it run.
HOLDS_ITS_LANE = frozenset(
    {
        JobKind.ALERT_PROCESS,
        JobKind.SLACK_ACTION,
        JobKind.JIRA_EVENT,
        JobKind.TICKET_NEW,
        JobKind.JIRA_CREATE,
        JobKind.SLACK_CARD,
    }
)
# Kinds retried for as long as their outside system's outage lasts (backoff capped at 5 minutes) rather than
# job_max_attempts times: every effect, so that the world converges after any outage without anyone's help.
PATIENT = frozenset(JobKind(kind.value) for kind in EffectKind)


def system_lane(system: System, ticket_id: int) -> str:
    """A ticket's lane for one outside system."""
    return f"{system_prefix(system)}{ticket_id}"


def system_prefix(system: System) -> str:
    """What every lane of one outside system starts with (``jira:``)."""
    return f"{system.value}:"


SYSTEM_LANE_PREFIXES = frozenset(system_prefix(system) for system in System)


def group_lane(dedup_hash: str) -> str:
    return f"group:{dedup_hash[:40]}"


def click_lane(ticket_id: int) -> str:
    """Clicks on one ticket are decided one at a time, in the order Slack sent them."""
    return f"click:{ticket_id}"


def jira_in_lane(ticket_id: int) -> str:
    """Changes made in Jira to one ticket, applied in the order Jira sent them."""
    return f"jira-in:{ticket_id}"


def new_ticket_lane(event_id: int) -> str:
    return f"new:{event_id}"


def own_lane(kind: JobKind) -> str:
    """A lane of its own: a job that holds up no other (a word to one person)."""
    return f"{kind.value}:{secrets.token_hex(8)}"


def ticket_of_lane(lane: str) -> int:
    """The ticket a per-ticket lane belongs to (``jira:7``, ``click:7``, ...)."""
    return int(lane.rsplit(":", 1)[1])
